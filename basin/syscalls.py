"""The Linux calls Python's os module lacks (3.11): mount, umount2, pivot_root, unshare, setns,
prctl, clone, openat2. One thin seam so the code above reads as plain Python."""

from __future__ import annotations

import ctypes
import errno
import os
import signal

# The C library the interpreter itself is linked with, found through the process's own symbol
# table: ctypes.util.find_library would run `ldconfig -p` (a subprocess, ~1 ms, and a fork in
# whatever process imports us).
_libc = ctypes.CDLL(None, use_errno=True)
# the same functions called with the GIL held throughout (see clone)
_libc_gil = ctypes.PyDLL(None, use_errno=True)
_libc_gil.syscall.restype = ctypes.c_long
_MACHINE = os.uname().machine

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_STRICTATIME = 0x1000000
MNT_DETACH = 0x2

# openat2(2) resolve flags
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36

_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
# clone(flags, stack, ...) on these; s390x swaps the first two arguments, so it is left out
_SYS_CLONE = {"x86_64": 56, "aarch64": 220, "riscv64": 220, "ppc64le": 120}
# added after Linux 5.1 unified the numbering of new calls: the same on every architecture
_SYS_OPENAT2 = 437


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _b(s: str | None) -> bytes | None:
    return None if s is None else os.fsencode(s)


def mount(
    source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None
) -> None:
    ret = _libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data))
    _check(ret, f"mount {target}")


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), flags), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    nr = _SYS_PIVOT_ROOT[_MACHINE]
    _check(_libc.syscall(nr, _b(new_root), _b(put_old)), "pivot_root")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


class _StatFs(ctypes.Structure):
    # struct statfs on 64-bit Linux: f_type comes first; the rest is only room for the kernel
    _fields_ = [("f_type", ctypes.c_long), ("rest", ctypes.c_byte * 120)]


def statfs_type(path: str | os.PathLike[str]) -> int:
    """The filesystem's magic number (f_type of statfs(2)), which os.statvfs leaves out."""
    buf = _StatFs()
    if _libc.statfs(os.fsencode(path), ctypes.byref(buf)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"statfs {path}: {os.strerror(err)}")
    return int(buf.f_type)


def can_clone() -> bool:
    return _MACHINE in _SYS_CLONE


def clone(flags: int) -> int:
    """fork() into new namespaces in one system call: returns the child's pid in the parent
    and 0 in the child, which (with CLONE_NEWPID) is PID 1 of its new PID namespace. Instead of
    fork + unshare + fork, this saves an intermediate process and ~1.5 ms.

    Only for a single-threaded caller (the zygote): unlike os.fork, Python's own fork
    bookkeeping does not run (no at-fork hooks, no lock re-initialisation), which is sound only
    when no other thread can hold a lock at that moment. The call keeps the GIL held, so the
    child comes back holding it as the parent does."""
    nr = _SYS_CLONE[_MACHINE]
    # stack NULL: the child runs on a copy of the caller's stack, as after fork
    pid = _libc_gil.syscall(nr, ctypes.c_ulong(flags | signal.SIGCHLD), None, None, None, None)
    if pid < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"clone: {os.strerror(err)}")
    return int(pid)


class _OpenHow(ctypes.Structure):
    # struct open_how, the size the kernel has known since 5.6 (it is told the size)
    _fields_ = [
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    ]


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """open(2) relative to DIRFD with RESOLVE_* flags; returns the fd (close-on-exec)."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    # every argument a long: syscall(2) is variadic and reads each as one
    fd = _libc.syscall(
        ctypes.c_long(_SYS_OPENAT2),
        ctypes.c_long(dirfd),
        _b(path),
        ctypes.byref(how),
        ctypes.c_long(ctypes.sizeof(how)),
    )
    if fd < 0:
        err = ctypes.get_errno()
        if err == errno.ENOSYS:
            raise OSError(
                err,
                "openat2 is not available: basin needs Linux 5.6 or later to resolve paths "
                "inside a container's root safely",
            )
        raise OSError(err, f"openat2 {path}: {os.strerror(err)}")
    return int(fd)


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def prctl(option: int, arg: int) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0), "prctl")


SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
_IFREQ = "16sH22x"  # struct ifreq: the name, then ifr_flags at the start of a 24-byte union


def link_up(ifname: str) -> None:
    """Bring an interface of the calling thread's network namespace up. An ioctl rather than
    netlink: a fresh namespace's lo needs nothing more, and this costs microseconds."""
    import fcntl
    import socket
    import struct

    name = os.fsencode(ifname)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        got = fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack(_IFREQ, name, 0))
        flags = struct.unpack(_IFREQ, got)[1]
        if not flags & IFF_UP:
            fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack(_IFREQ, name, flags | IFF_UP))
