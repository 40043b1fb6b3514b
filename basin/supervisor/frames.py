"""Replies to the compiled client (client/basin.c): framed bytes instead of JSON lines, so a
small C program can copy them to its stdout and stderr without a JSON parser.

A frame is one kind byte, the payload's length in decimal, a newline, then the payload:
  o  bytes for the client's stdout        e  bytes for its stderr
  x  the exit code (payload: decimal)     F  "run the full Python CLI with the same argv"

Output of a foreground `run` goes through `ClientOutput`, a queue one sender task writes to
the FIFO in order. A relay that finds it past LIMIT waits (the container then blocks on its
pipe, as any program writing to a slow terminal does) until the container has exited; a
client that went away takes nothing more and holds nothing back."""

from __future__ import annotations

import trio

from basin.supervisor.control import Reply

LIMIT = 1 << 20


def frame(kind: bytes, payload: bytes) -> bytes:
    return b"%s%d\n%s" % (kind, len(payload), payload)


class ClientOutput:
    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self._buf = bytearray()
        self._wake = trio.Event()
        self._room = trio.Event()
        self._closed = False
        self._unbounded = False

    def push(self, stream: str, data: bytes) -> bool:
        """Queue a chunk of the container's output; True if the caller must wait_room()."""
        self.put(b"o" if stream == "stdout" else b"e", data)
        return not self._unbounded and len(self._buf) > LIMIT

    def put(self, kind: bytes, payload: bytes) -> None:
        if self.reply.gone or self._closed:
            return
        self._buf += frame(kind, payload)
        self._wake.set()

    async def wait_room(self) -> None:
        while not self._unbounded and len(self._buf) > LIMIT and not self.reply.gone:
            await self._room.wait()

    def unbound(self) -> None:
        """The container has exited: take the rest of its output without waiting, so that a
        stopped client can hold up neither its exit nor a `basin stop`."""
        self._unbounded = True
        self._room.set()

    def close(self) -> None:
        """No more frames: the sender finishes once the queue is written."""
        self._closed = True
        self._wake.set()

    async def run(self) -> None:
        """The sender task: write queued frames in order until closed and empty."""
        while True:
            if not self._buf or self.reply.gone:
                self._buf.clear()
                if self._closed or self.reply.gone:
                    self._room.set()
                    return
                self._wake = trio.Event()
                await self._wake.wait()
                continue
            chunk = bytes(self._buf)
            self._buf.clear()
            self._room.set()
            self._room = trio.Event()
            await self.reply.send_raw(chunk)
