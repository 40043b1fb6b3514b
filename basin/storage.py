"""How a container's root is made: an overlayfs on the image's tree (the normal case), or a
private copy of the tree where overlayfs cannot stack (BASIN_ROOT itself on overlayfs, as in a
container-in-container). BASIN_STORAGE=overlay|copy forces one."""

from __future__ import annotations

import ctypes
import os
import shutil
from pathlib import Path

from basin.errors import BasinError

OVERLAYFS_MAGIC = 0x794C7630


class _StatFs(ctypes.Structure):
    # struct statfs on 64-bit Linux: f_type comes first; the rest is only room for the kernel
    _fields_ = [("f_type", ctypes.c_long), ("rest", ctypes.c_byte * 120)]


# the process's own libc: find_library() would fork /sbin/ldconfig, and this runs in the
# trio supervisor, which must never fork
_libc = ctypes.CDLL(None, use_errno=True)


def fs_type(path: Path) -> int:
    buf = _StatFs()
    if _libc.statfs(os.fsencode(path), ctypes.byref(buf)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"statfs {path}: {os.strerror(err)}")
    return int(buf.f_type)


def mode_for(containers: Path) -> str:
    """'overlay' or 'copy' for containers whose state lives under `containers`."""
    forced = os.environ.get("BASIN_STORAGE", "")
    if forced:
        if forced not in ("overlay", "copy"):
            raise BasinError(f"BASIN_STORAGE must be overlay or copy, not {forced!r}")
        return forced
    return "copy" if fs_type(containers) == OVERLAYFS_MAGIC else "overlay"


def copy_tree(image_root: Path, dest: Path) -> None:
    """A private copy of the image for one container (symlinks kept as links, owners and
    modes kept): slower than an overlay, but it works on any filesystem."""
    shutil.copytree(image_root, dest, symlinks=True, copy_function=shutil.copy2)
