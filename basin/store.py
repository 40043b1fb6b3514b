"""Atomic JSON records on disk: write to a temp file, fsync (or not), rename; read tolerantly."""

from __future__ import annotations

import json
import os
from pathlib import Path

TYPE_CHECKING = False  # typing costs the thin client ~3 ms to import
if TYPE_CHECKING:
    from typing import Any


class CorruptRecord(Exception):
    """A record that exists but cannot be parsed (half-written by a crash, edited by hand)."""


def write_json(path: Path, data: Any, sync: bool = True) -> None:
    """Replace the record at path atomically: a reader sees the old or the new one, whole.

    sync: fsync before the rename, so the record also survives a power loss (~0.4-1.3 ms on
    ext4 here). Without it a crash of the writer still leaves the old or the new record; a
    power loss can too where the filesystem flushes a file renamed over another before the
    rename commits (ext4's auto_da_alloc, the default, and btrfs do), which is why
    basin.records writes state.json, always replacing an fsynced first one, without it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    payload = json.dumps(data, indent=1, sort_keys=True).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, payload)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


def sync_files(paths: list[Path]) -> None:
    """fsync records written with sync=False; one removed meanwhile is skipped."""
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_json(path: Path) -> Any:
    """Return the parsed record; raise FileNotFoundError or CorruptRecord."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return json.loads(raw)
    except ValueError as e:
        raise CorruptRecord(f"{path}: {e}") from None
