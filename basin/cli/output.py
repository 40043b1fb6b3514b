"""What the one-shot commands print: aligned tables, and a follower of json-file logs."""

from __future__ import annotations

import sys
from pathlib import Path

from basin import logfile
from basin.cli.table import table as table  # re-exported: the verbs' one import
from basin.rotation import ChainReader

TYPE_CHECKING = False  # typing costs the thin client ~3 ms to import
if TYPE_CHECKING:
    from typing import Any, BinaryIO


BLOCK = 4 << 20  # records decoded in bulk at a time


class LogFollower:
    """Reads a json-file log from the start (its rotated files first), writing each record's
    bytes to stdout or stderr as it appears, and keeps following across rotations. pump()
    takes what is there now; it never waits."""

    def __init__(self, path: Path, timestamps: bool = False) -> None:
        self.path = path
        self.timestamps = timestamps
        self._chain = ChainReader(path)
        self._started = False
        self._buf = b""

    def emit(self, rec: dict[str, Any]) -> None:
        sink: BinaryIO = sys.stderr.buffer if rec.get("stream") == "stderr" else sys.stdout.buffer
        data = logfile.payload(rec)
        if self.timestamps:
            data = rec.get("time", "").encode() + b" " + data
        sink.write(data)

    def read_existing(self) -> bytes:
        """The complete records every retained file holds now, oldest first, for the caller to
        filter and emit; following (pump) continues right after them."""
        self._started = True
        data = self._chain.read_existing()
        cut = data.rfind(b"\n") + 1
        self._buf = data[cut:]  # a record being written right now: pump completes it
        return data[:cut]

    def emit_existing(self) -> None:
        """Emit every complete record the retained files hold now, a few MB at a time (a log
        of gigabytes never sits in memory whole); following (pump) continues after them."""
        self._started = True
        for data in self._chain.iter_existing(BLOCK):
            self.feed(data)

    def pump(self) -> bool:
        data = self._chain.read_new() if self._started else self.read_existing()
        self._started = True
        if not data:
            return False
        self.feed(data)
        sys.stdout.buffer.flush()
        sys.stderr.buffer.flush()
        return True

    def feed(self, data: bytes) -> None:
        """Emit the complete records of what was read so far; keep a torn last one."""
        data = self._buf + data if self._buf else data
        cut = data.rfind(b"\n") + 1
        self._buf = data[cut:]
        self.emit_records(data[:cut])

    def emit_records(self, data: bytes) -> None:
        """Emit complete records: a few MB at a time in bulk where they are plain text of one
        stream (what the supervisor writes for most output), else one by one."""
        view = memoryview(data)
        start = 0
        while start < len(data):
            end = data.rfind(b"\n", start, start + BLOCK) + 1 or data.find(b"\n", start) + 1
            block = view[start:end].tobytes()
            start = end
            plain = None if self.timestamps else logfile.plain_payload(block)
            if plain is not None:
                stream, payload = plain
                (sys.stderr if stream == "stderr" else sys.stdout).buffer.write(payload)
                continue
            for line in block.split(b"\n"):
                rec = logfile.decode_line(line) if line else None
                if rec is not None:
                    self.emit(rec)

    def drain(self) -> None:
        self.pump()
        self.close()

    def close(self) -> None:
        self._chain.close()
