"""Paths inside a container's root, resolved as the container itself will see them.

The root is built before pivot_root, while "/" is still the host's root. A container path
joined onto the root directory and handed to open, mkdir or mount would follow a symlink from
the image out onto the host: an image whose /etc/hosts is a symlink to /etc/shadow, or whose
/data is a symlink to /root, would have basin create and mount over host files. So every
lookup here is one openat2(2) from an fd of the root with RESOLVE_IN_ROOT: the kernel treats
that directory as "/" for absolute symlinks and clamps '..' at it, as chroot would.
RESOLVE_NO_MAGICLINKS refuses /proc/PID/root-style links, which jump anywhere once /proc is
mounted in the root.

What is missing is created as `mkdir -p` would, each piece through an fd of its
already-resolved parent, never by a path the kernel would look up again from the host's root.
A dangling symlink is followed as the container would follow it (its target is created, in
the root), so an image whose /etc/hosts points nowhere still gets basin's hosts file.

The result is an O_PATH fd; mount onto fd_path(fd), a magic link to exactly that inode."""

from __future__ import annotations

import errno
import os

from basin import syscalls as sc

# as the kernel's own limit on symlinks followed in one lookup
MAX_SYMLINKS = 40
_RESOLVE = sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_MAGICLINKS


def fd_path(fd: int) -> str:
    """A path that names exactly what FD is open on: mount(2) follows this link to the inode
    without looking any name up again. (The host's /proc, seen before pivot_root.)"""
    return f"/proc/self/fd/{fd}"


def open_in_root(root_fd: int, path: str, *, directory: bool) -> int:
    """An O_PATH fd (close-on-exec) of container path PATH inside the root open at ROOT_FD,
    creating what is missing: directories, and the last component as an empty file unless
    DIRECTORY. PATH itself must not contain '..' (a symlink's target may: it stops at the
    root). Raises OSError naming PATH."""
    parts = _split(path)
    if ".." in parts:
        raise OSError(errno.EINVAL, f"path {path!r} must not contain '..'")
    try:
        return _walk(root_fd, parts, directory)
    except OSError as e:
        if e.errno is None or e.errno == errno.ENOSYS:  # its own message says it all
            raise
        raise OSError(e.errno, f"{path}: {os.strerror(e.errno)}") from None


def _split(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


def _walk(root_fd: int, parts: list[str], directory: bool) -> int:
    # Invariant: fd is parts[:i] resolved. Each step opens the whole prefix parts[:i+1] from
    # the root (not parts[i] from fd): a symlink met on the way must resolve against the
    # container's "/", which only the root fd gives openat2.
    fd = os.dup(root_fd)
    i = 0
    symlinks = 0
    try:
        while i < len(parts):
            want_dir = directory or i < len(parts) - 1
            flags = os.O_PATH | (os.O_DIRECTORY if want_dir else 0)
            try:
                step = sc.openat2(root_fd, "/".join(parts[: i + 1]), flags, _RESOLVE)
            except FileNotFoundError:
                # parts[i] is missing from the directory fd holds, or a symlink whose target is
                target = _readlink(fd, parts[i])
                if target is None:
                    _create(fd, parts[i], want_dir)
                    continue
                symlinks += 1
                if symlinks > MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP)) from None
                # the link's target takes its place in the path, then the walk goes on
                if target.startswith("/"):
                    parts = _split(target) + parts[i + 1 :]
                    os.close(fd)
                    fd, i = os.dup(root_fd), 0
                else:
                    parts = parts[:i] + _split(target) + parts[i + 1 :]
                continue
            os.close(fd)
            fd = step
            i += 1
        return fd
    except BaseException:
        os.close(fd)
        raise


def _readlink(dir_fd: int, name: str) -> str | None:
    """NAME's target if it is a symlink, None if nothing is there."""
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return None


def _create(dir_fd: int, name: str, directory: bool) -> None:
    # O_EXCL and O_NOFOLLOW: only ever a new entry in the directory dir_fd holds
    if directory:
        os.mkdir(name, 0o755, dir_fd=dir_fd)
    else:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        os.close(os.open(name, flags, 0o644, dir_fd=dir_fd))
