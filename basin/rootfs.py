"""Inside the new namespaces, before exec: mount the container's root and pivot into it.

Runs in the container's PID 1 between fork and exec (single-threaded, in the zygote's child),
so it uses plain blocking calls and raises OSError with a message that names the step."""

from __future__ import annotations

import os
import stat
from typing import Any

from basin import safepath
from basin import syscalls as sc

# Device nodes bind-mounted from the host rather than made with mknod: binds work the same
# under a devices cgroup that forbids mknod, and need no major/minor table here.
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")


def _mount_at(
    root_fd: int,
    path: str,
    source: str | None,
    fstype: str | None,
    flags: int,
    data: str | None = None,
    *,
    directory: bool = True,
) -> None:
    """Mount onto container path PATH, resolved (and made, if missing) inside the root: never
    a host path an image's symlink leads to (see basin.safepath)."""
    fd = safepath.open_in_root(root_fd, path, directory=directory)
    try:
        sc.mount(source, safepath.fd_path(fd), fstype, flags, data)
    except OSError as e:
        raise OSError(e.errno, f"mount {path}: {os.strerror(e.errno or 0)}") from None
    finally:
        os.close(fd)


def mount_root(spec: dict[str, Any]) -> str:
    """Mount the overlay (or bind the copied tree) at spec['merged'] and return it."""
    rf = spec["rootfs"]
    merged: str = rf["merged"]
    if rf.get("overlay", True):
        data = f"lowerdir={rf['lower']},upperdir={rf['upper']},workdir={rf['work']}"
        sc.mount("overlay", merged, "overlay", 0, data)
    else:
        sc.mount(rf["lower"], merged, None, sc.MS_BIND | sc.MS_REC)
    return merged


def bind_volumes(root_fd: int, volumes: list[dict[str, Any]]) -> None:
    for vol in volumes:
        path, is_dir = vol["container"], os.path.isdir(vol["host"])
        _mount_at(root_fd, path, vol["host"], None, sc.MS_BIND | sc.MS_REC, directory=is_dir)
        if vol.get("ro"):
            # a bind mount ignores MS_RDONLY on creation: it needs a remount to become
            # read-only, of the new mount, which only a fresh lookup of the path reaches (the
            # fd the bind went onto holds the directory underneath it)
            flags = sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | sc.MS_REC
            _mount_at(root_fd, path, None, None, flags, directory=is_dir)


def mount_proc_dev_sys(root_fd: int) -> None:
    _mount_at(root_fd, "/proc", "proc", "proc", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
    flags = sc.MS_NOSUID | sc.MS_STRICTATIME
    _mount_at(root_fd, "/dev", "tmpfs", "tmpfs", flags, "mode=755,size=65536k")
    # a fresh lookup reaches the tmpfs just mounted (an error ends this process, fd and all)
    dev_fd = safepath.open_in_root(root_fd, "/dev", directory=True)
    dev = safepath.fd_path(dev_fd)
    # a fresh tmpfs: nothing in it exists yet (no symlink of the image's to follow), so each
    # node (an empty file to bind the device onto) and directory is one call
    for name in DEVICES:
        node = os.path.join(dev, name)
        os.mknod(node, stat.S_IFREG | 0o644)
        sc.mount(f"/dev/{name}", node, None, sc.MS_BIND)
    pts = os.path.join(dev, "pts")
    os.mkdir(pts, 0o755)
    sc.mount(
        "devpts", pts, "devpts", sc.MS_NOSUID | sc.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"
    )
    os.symlink("pts/ptmx", os.path.join(dev, "ptmx"))
    shm = os.path.join(dev, "shm")
    os.mkdir(shm, 0o755)
    sc.mount(
        "shm", shm, "tmpfs", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC, "mode=1777,size=65536k"
    )
    os.symlink("/proc/self/fd", os.path.join(dev, "fd"))
    for i, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{i}", os.path.join(dev, name))
    os.close(dev_fd)

    flags = sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC
    _mount_at(root_fd, "/sys", "sysfs", "sysfs", flags)


def bind_files(root_fd: int, files: dict[str, str]) -> None:
    """Files the supervisor prepared on the host (hosts, resolv.conf, hostname)."""
    for container_path, host_path in files.items():
        _mount_at(root_fd, container_path, host_path, None, sc.MS_BIND, directory=False)


def pivot(root: str) -> None:
    # pivot_root(".", ".") stacks the old root under the new one; a lazy unmount then drops it
    # without needing a directory for it inside the image.
    os.chdir(root)
    sc.pivot_root(".", ".")
    sc.umount2(".", sc.MNT_DETACH)
    os.chdir("/")


def enter_workdir(path: str) -> None:
    """chdir into the working directory, made if missing. After pivot_root, where "/" is the
    container's: resolved as the paths above are all the same, so a dangling symlink on the
    way is followed as the container follows it, and an error names the path."""
    root_fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = safepath.open_in_root(root_fd, os.path.normpath(path), directory=True)
    finally:
        os.close(root_fd)
    try:
        os.fchdir(fd)
    finally:
        os.close(fd)


def setup(spec: dict[str, Any]) -> None:
    # Nothing we mount may propagate back to the host's namespace.
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
    root = mount_root(spec)
    # every path inside the root is resolved from this fd (see basin.safepath)
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        bind_volumes(root_fd, spec.get("volumes", []))
        mount_proc_dev_sys(root_fd)
        bind_files(root_fd, spec.get("files", {}))
    finally:
        os.close(root_fd)
    pivot(root)
    if spec.get("hostname"):
        import socket

        socket.sethostname(spec["hostname"])
