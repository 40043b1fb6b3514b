"""What the one-shot commands print: aligned tables, and a follower of json-file logs."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, BinaryIO

from basin import logfile


def table(headers: list[str], rows: list[list[str]], gap: int = 3) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = []
    for row in [headers, *rows]:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=True)]
        lines.append((" " * gap).join(cells).rstrip())
    return "\n".join(lines)


class LogFollower:
    """Reads a json-file log from the start, writing each record's bytes to stdout or stderr
    as it appears. pump() takes what is there now; it never waits."""

    def __init__(self, path: Path, timestamps: bool = False) -> None:
        self.path = path
        self.timestamps = timestamps
        self._fd = -1
        self._buf = b""

    def emit(self, rec: dict[str, Any]) -> None:
        sink: BinaryIO = sys.stderr.buffer if rec.get("stream") == "stderr" else sys.stdout.buffer
        data = logfile.payload(rec)
        if self.timestamps:
            data = rec.get("time", "").encode() + b" " + data
        sink.write(data)

    def open_at(self, offset: int) -> None:
        """Start following from offset (what the caller has already printed)."""
        try:
            self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        os.lseek(self._fd, offset, os.SEEK_SET)

    def pump(self) -> bool:
        if self._fd < 0:
            try:
                self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return False
        got = False
        while True:
            data = os.read(self._fd, 1 << 20)
            if not data:
                break
            got = True
            self._buf += data
            *lines, self._buf = self._buf.split(b"\n")
            for line in lines:
                rec = logfile.decode_line(line)
                if rec is not None:
                    self.emit(rec)
        if got:
            sys.stdout.buffer.flush()
            sys.stderr.buffer.flush()
        return got

    def drain(self) -> None:
        self.pump()
        self.close()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
