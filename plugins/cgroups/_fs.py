"""File operations shared by the v1 and v2 backends: control-file writes that report which limit
failed, and group removal that waits for the kernel to let go."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from basin.errors import BasinError

PREFIX = "basin-"
# How long remove() keeps retrying EBUSY: the kernel keeps a group busy until its last task is
# reaped, and the caller's reaper may still be a few scheduler ticks behind.
REMOVE_TIMEOUT = 2.0

_CID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def group_name(cid: str) -> str:
    # The id becomes a path component: refuse anything that could climb out or nest.
    if not _CID.fullmatch(cid):
        raise BasinError(f"invalid container id for a cgroup name: {cid!r}")
    return PREFIX + cid


class LimitError(Exception):
    """A control file refused a value; create() turns it into a BasinError after cleaning up."""

    def __init__(self, what: str, value: str, err: OSError) -> None:
        super().__init__(f"cannot set {what} to {value}: {err.strerror or err}")
        self.what, self.value, self.err = what, value, err


def write(path: Path, value: str | int, what: str | None = None) -> None:
    """One write() per value: cgroup files parse exactly one value per write call. Plain
    os calls (with open(path, "w")'s flags): no buffered text file around a single write."""
    text = str(value)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise LimitError(what or path.name, text, e) from e


def read(path: Path) -> str:
    return path.read_text().strip()


def read_int(path: Path, default: int = 0) -> int:
    try:
        return int(read(path))
    except (OSError, ValueError):
        return default


def read_keyed(path: Path) -> dict[str, int]:
    """A flat-keyed file ("key value" lines): memory.oom_control, memory.events, cpu.stat."""
    out: dict[str, int] = {}
    for line in path.read_text().splitlines():
        key, _, val = line.partition(" ")
        try:
            out[key] = int(val)
        except ValueError:
            continue
    return out


def procs(group: Path) -> list[int]:
    try:
        return [int(p) for p in path_lines(group / "cgroup.procs")]
    except FileNotFoundError:
        return []


def path_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().split() if line]


def kill_procs(groups: Iterable[Path], sig: int = signal.SIGKILL, timeout: float = 2.0) -> None:
    """Signal every process of the groups until they are empty. Without a freezer a process can
    fork between the read and the kill, hence the loop."""
    groups = list(groups)
    deadline = time.monotonic() + timeout
    while True:
        pids = {p for g in groups for p in procs(g)}
        if not pids or time.monotonic() > deadline:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        time.sleep(0.01)


def remove_tree(top: Path, rmdir: Callable[[Path], None] = os.rmdir) -> None:
    """rmdir ``top`` and any groups nested inside it (deepest first), retrying EBUSY until
    REMOVE_TIMEOUT. A missing directory counts as removed."""
    try:
        rmdir(top)  # the usual case: a leaf whose tasks are gone, removed in one call
        return
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as e:
        # cgroupfs says EBUSY for tasks and for nested groups alike (a plain directory says
        # ENOTEMPTY): walk it
        if e.errno not in (errno.EBUSY, errno.ENOTEMPTY):
            raise BasinError(f"cannot remove cgroup {top}: {e.strerror or e}") from e
    nested = [Path(d) for d, _, _ in os.walk(top, topdown=False)]
    deadline = time.monotonic() + REMOVE_TIMEOUT
    for d in nested:
        while True:
            try:
                rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise BasinError(f"cannot remove cgroup {d}: {e.strerror or e}") from e
                time.sleep(0.01)
