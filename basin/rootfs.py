"""Inside the new namespaces, before exec: mount the container's root and pivot into it.

Runs in the container's PID 1 between fork and exec (single-threaded, in the zygote's child),
so it uses plain blocking calls and raises OSError with a message that names the step."""

from __future__ import annotations

import os
import stat
from typing import Any

from basin import syscalls as sc

# Device nodes bind-mounted from the host rather than made with mknod: binds work the same
# under a devices cgroup that forbids mknod, and need no major/minor table here.
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")


def _mkdirs(path: str, mode: int = 0o755) -> None:
    os.makedirs(path, mode=mode, exist_ok=True)


def _touch(path: str) -> None:
    _mkdirs(os.path.dirname(path))
    if not os.path.exists(path):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))


def _inside(root: str, path: str) -> str:
    """Join a container path onto the new root without letting it climb out through '..'."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise OSError(22, f"path {path!r} must not contain '..'")
    return os.path.join(root, *parts)


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


def bind_volumes(root: str, volumes: list[dict[str, Any]]) -> None:
    for vol in volumes:
        target = _inside(root, vol["container"])
        if os.path.isdir(vol["host"]):
            _mkdirs(target)
        else:
            _touch(target)
        sc.mount(vol["host"], target, None, sc.MS_BIND | sc.MS_REC)
        if vol.get("ro"):
            # a bind mount ignores MS_RDONLY on creation: it needs a remount to become read-only
            sc.mount(None, target, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | sc.MS_REC)


def mount_proc_dev_sys(root: str) -> None:
    proc = _inside(root, "/proc")
    _mkdirs(proc)
    sc.mount("proc", proc, "proc", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)

    dev = _inside(root, "/dev")
    _mkdirs(dev)
    sc.mount("tmpfs", dev, "tmpfs", sc.MS_NOSUID | sc.MS_STRICTATIME, "mode=755,size=65536k")
    # a fresh tmpfs: nothing in it exists yet, so each node (an empty file to bind the
    # device onto) and directory is one call
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

    sys_dir = _inside(root, "/sys")
    _mkdirs(sys_dir)
    sc.mount("sysfs", sys_dir, "sysfs", sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)


def bind_files(root: str, files: dict[str, str]) -> None:
    """Files the supervisor prepared on the host (hosts, resolv.conf, hostname)."""
    for container_path, host_path in files.items():
        target = _inside(root, container_path)
        _touch(target)
        sc.mount(host_path, target, None, sc.MS_BIND)


def pivot(root: str) -> None:
    # pivot_root(".", ".") stacks the old root under the new one; a lazy unmount then drops it
    # without needing a directory for it inside the image.
    os.chdir(root)
    sc.pivot_root(".", ".")
    sc.umount2(".", sc.MNT_DETACH)
    os.chdir("/")


def setup(spec: dict[str, Any]) -> None:
    # Nothing we mount may propagate back to the host's namespace.
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
    root = mount_root(spec)
    bind_volumes(root, spec.get("volumes", []))
    mount_proc_dev_sys(root)
    bind_files(root, spec.get("files", {}))
    pivot(root)
    if spec.get("hostname"):
        import socket

        socket.sethostname(spec["hostname"])
