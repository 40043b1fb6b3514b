"""The control FIFO server: one JSON request a line in, JSON replies on the client's FIFO."""

from __future__ import annotations

import contextlib
import json
import os
import select
import stat
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
import trio

from basin.errors import BasinError
from basin.paths import Paths

log = structlog.get_logger()

MAX_REQUEST = 4096  # PIPE_BUF: a write of this size or less is never interleaved


class Reply:
    """The client's reply FIFO. Writes never block the loop; a client that went away only
    loses its replies."""

    def __init__(self, fd: int | None) -> None:
        self._stream = trio.lowlevel.FdStream(fd) if fd is not None else None

    async def send(self, msg: dict[str, Any]) -> None:
        if self._stream is None:
            return
        try:
            await self._stream.send_all((json.dumps(msg) + "\n").encode())
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            await self.close()

    async def send_raw(self, data: bytes) -> None:
        """Bytes as they are (the compiled client's frames, basin.supervisor.frames)."""
        if self._stream is None:
            return
        try:
            await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            await self.close()

    @property
    def gone(self) -> bool:
        """Nothing more can reach the client: it went away (or never had a FIFO)."""
        return self._stream is None

    async def wait_closed(self, timeout: float) -> None:
        """Wait until the client closes its end (it has read everything it wanted)."""
        if self._stream is None:
            return
        fd = self._stream.fileno()

        def wait() -> None:
            # with no events asked for, poll wakes only for POLLERR: the last reader is gone
            p = select.poll()
            p.register(fd, 0)
            p.poll(int(timeout * 1000))

        await trio.to_thread.run_sync(wait)

    async def close(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            await stream.aclose()


Handler = Callable[[dict[str, Any], Reply], Awaitable[None]]


def open_reply(paths: Paths, name: object) -> int | None:
    """Open the client's reply FIFO, refusing anything that is not a FIFO of ours inside the
    replies directory (the FIFO is the only way in: it must not become a way to write files)."""
    return open_fifo(paths, name, os.O_WRONLY)


def open_fifo(paths: Paths, name: object, mode: int) -> int | None:
    """Open a client's FIFO in the replies directory for reading or writing (non-blocking),
    with the same refusals as open_reply."""
    if not isinstance(name, str) or "/" in name or name.startswith("."):
        return None
    try:
        fd = os.open(paths.replies / name, mode | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    st = os.fstat(fd)
    if not stat.S_ISFIFO(st.st_mode) or st.st_uid != os.geteuid():
        os.close(fd)
        return None
    return fd


class ControlServer:
    def __init__(self, paths: Paths, handlers: dict[str, Handler]) -> None:
        self.paths = paths
        self.handlers = handlers

    def create_fifo(self) -> None:
        self.paths.replies.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.paths.replies, 0o700)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.paths.control)
        os.mkfifo(self.paths.control, 0o600)

    async def serve(self, nursery: trio.Nursery) -> None:
        rfd = os.open(self.paths.control, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        # our own writer keeps the FIFO from reporting EOF between clients
        keep = os.open(self.paths.control, os.O_WRONLY | os.O_CLOEXEC)
        stream = trio.lowlevel.FdStream(rfd)
        buf = b""
        try:
            while True:
                data = await stream.receive_some(65536)
                buf += data
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if line.strip():
                        nursery.start_soon(self._handle, line)
        finally:
            os.close(keep)
            await stream.aclose()

    async def _handle(self, line: bytes) -> None:
        started = time.monotonic()
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise ValueError("not an object")
        except ValueError:
            log.warning("request.malformed", size=len(line))
            return
        reply = Reply(open_reply(self.paths, req.get("reply")))
        op = str(req.get("op", ""))
        name = op
        if op == "cli" and isinstance(req.get("argv"), list) and req["argv"]:
            name = f"cli {str(req['argv'][0])[:32]}"  # the verb a compiled client forwarded
        outcome = "ok"
        error = None
        try:
            handler = self.handlers.get(op)
            if handler is None:
                raise BasinError(f"unknown request {op!r}")
            await handler(req, reply)
        except BasinError as e:
            outcome, error = "error", e.message
            await reply.send({"type": "error", "error": e.message, "code": e.code})
        except Exception as e:
            outcome, error = "error", f"internal error: {e}"
            log.exception("request.failed", request=op, error=str(e))
            await reply.send({"type": "error", "error": f"internal error: {e}", "code": 125})
        finally:
            await reply.close()
            log.debug(
                "request.handled",
                request=name,
                outcome=outcome,
                error=error,
                duration_ms=round((time.monotonic() - started) * 1000, 2),
            )
