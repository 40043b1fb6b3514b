"""Size-rotated files, as docker's json-file driver keeps them: PATH is written, PATH.1 is the
newest full file, PATH.2 the one before, ... Writers rotate only between whole lines, so every
file holds complete lines.

Shared by the supervisor (writing container logs, its own log, the events file) and the thin
client (reading them, following across a rotation), so it imports nothing heavy."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def numbered(path: Path, n: int) -> Path:
    return path if n == 0 else path.with_name(f"{path.name}.{n}")


def rotate(path: Path, max_files: int) -> None:
    """Shift PATH -> PATH.1 -> PATH.2 ... keeping max_files files in all (PATH included);
    with max_files 1 the old content is simply dropped."""
    for n in range(max_files - 1, 0, -1):
        with contextlib.suppress(FileNotFoundError):
            os.replace(numbered(path, n - 1), numbered(path, n))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # only still there when max_files is 1
    # a file beyond the limit is left from an earlier, larger max_files: drop it too
    n = max_files
    while True:
        try:
            os.unlink(numbered(path, n))
        except FileNotFoundError:
            break
        n += 1


class RotatingFile:
    """Appends whole lines to PATH, rotating first when a write would take it past max_size.
    max_size None = never rotate. A single write larger than max_size still goes in whole
    (into a fresh file): a line is never split across files."""

    def __init__(self, path: Path, max_size: int | None = None, max_files: int = 1) -> None:
        self.path = path
        self.max_size = max_size
        self.max_files = max(1, max_files)
        self.fd = -1
        self.size = 0
        self._open()

    def _open(self) -> None:
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        self.size = os.fstat(self.fd).st_size

    def write(self, data: bytes) -> None:
        if self.max_size is not None and self.size > 0 and self.size + len(data) > self.max_size:
            os.close(self.fd)
            self.fd = -1
            rotate(self.path, self.max_files)
            self._open()
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            self.size += n
            view = view[n:]

    def write_lines(self, lines: list[bytes]) -> None:
        """Write many lines in as few calls as the size limit allows."""
        if self.max_size is None:
            self.write(b"".join(lines))
            return
        batch: list[bytes] = []
        size = self.size
        for line in lines:
            if batch and size + len(line) > self.max_size:
                self.write(b"".join(batch))
                batch, size = [], 0
            batch.append(line)
            size += len(line)
        if batch:
            self.write(b"".join(batch))

    def write_block(self, data: bytes) -> None:
        """Write whole lines joined in one bytes object: at once when they fit under the size
        limit, else line by line so that a rotation falls between lines."""
        if self.max_size is None or self.size + len(data) <= self.max_size:
            self.write(data)
        else:
            self.write_lines(data.splitlines(keepends=True))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _ino(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def _stat_ino(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def _open(path: Path) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None


def _read_rest(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        data = os.read(fd, 1 << 20)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


class ChainReader:
    """Reads PATH.N ... PATH.1, PATH in order, then (follow) keeps reading PATH and moves on
    to the new PATH when the writer rotates, without losing or repeating a byte as long as the
    reader is not more than max_files rotations behind."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1
        self._ino: tuple[int, int] | None = None

    def read_existing(self) -> bytes:
        """Everything the retained files hold now, oldest first."""
        return b"".join(self.iter_existing())

    def iter_existing(self, chunk: int = 1 << 30) -> Iterator[bytes]:
        """What read_existing returns, in pieces of at most ``chunk`` bytes: a large log
        never has to be in memory whole."""
        # newest first, so a rotation while we open shows up as the same inode twice (never as
        # a file we skipped); duplicates are then dropped
        fds: list[int] = []
        seen: set[tuple[int, int]] = set()
        n = 0
        while True:
            fd = _open(numbered(self.path, n))
            if fd is None:
                if n == 0:
                    n += 1
                    continue  # no current file (yet): the rotated ones may still exist
                break
            ino = _ino(fd)
            if ino in seen:
                os.close(fd)
            else:
                seen.add(ino)
                fds.append(fd)
            n += 1
        # keep the newest open: following continues from exactly where we stopped, and a
        # rotation since is found by its inode among the numbered files
        self._close()
        if fds:
            self._fd, self._ino = fds[0], _ino(fds[0])
        try:
            for fd in reversed(fds):
                while data := os.read(fd, chunk):
                    yield data
        finally:
            for fd in fds[1:]:
                os.close(fd)

    def skip_existing(self) -> None:
        """Follow only what is written from now on."""
        self._close()
        fd = _open(self.path)
        if fd is not None:
            os.lseek(fd, 0, os.SEEK_END)
            self._fd, self._ino = fd, _ino(fd)

    def read_new(self) -> bytes:
        """What was written since the last call (across rotations); never waits."""
        if self._fd < 0:
            # nothing read yet: whatever exists now (rotated files included) is new to us
            return self.read_existing()
        out = [_read_rest(self._fd)]
        current = _stat_ino(self.path)
        if current is None or current == self._ino:
            return out[0]  # not rotated (or caught between rename and create: next time)
        # rotated: what was written to our file before the rename is still readable here
        out.append(_read_rest(self._fd))
        out.extend(self._successors())
        return b"".join(out)

    def _successors(self) -> Iterator[bytes]:
        """The files newer than ours, oldest first; ends holding the current PATH open."""
        ours = self._ino
        self._close()
        names: list[Path] = []
        n = 1
        while True:
            p = numbered(self.path, n)
            ino = _stat_ino(p)
            if ino is None:
                break  # ours was dropped already: every retained file is newer
            if ino == ours:
                break
            names.append(p)
            n += 1
        for p in reversed(names):
            fd = _open(p)
            if fd is not None:
                yield _read_rest(fd)
                os.close(fd)
        fd = _open(self.path)
        if fd is not None:
            self._fd, self._ino = fd, _ino(fd)
            yield _read_rest(fd)

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd, self._ino = -1, None

    def close(self) -> None:
        self._close()
