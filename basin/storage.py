"""How a container's root is made: an overlayfs on the image's tree (the normal case), or a
private copy of the tree where overlayfs cannot stack (BASIN_ROOT itself on overlayfs, as in a
container-in-container). BASIN_STORAGE=overlay|copy forces one."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from basin import syscalls as sc
from basin.errors import BasinError

OVERLAYFS_MAGIC = 0x794C7630


def fs_type(path: Path) -> int:
    return sc.statfs_type(path)


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
