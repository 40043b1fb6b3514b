"""The `attach` and `resize` requests, and `run`'s attached mode.

An attaching client makes two FIFOs in the replies directory and names them in its request:
"stdin" (we read its keystrokes) and "stdout" (we write the container's terminal output). They
are opened like reply FIFOs (O_NOFOLLOW, must be a FIFO of ours) and unlinked at once, so a
client killed mid-session leaves nothing behind. Resize events come as separate `resize`
requests on the control FIFO, without a reply."""

from __future__ import annotations

import contextlib
import os
from typing import Any

from basin.errors import BasinError
from basin.paths import Paths
from basin.records import Container
from basin.supervisor.console import DETACHED, ENDED, MAX_BEHIND, TOO_SLOW, Client, Console
from basin.supervisor.control import Reply, open_fifo
from basin.supervisor.runtime import Live


def winsize(req: dict[str, Any]) -> tuple[int, int] | None:
    ws = req.get("winsize")
    if ws is None:
        return None
    if (
        not isinstance(ws, list)
        or len(ws) != 2
        or not all(isinstance(v, int) and 0 < v < 65536 for v in ws)
    ):
        raise BasinError("winsize must be [rows, cols], each between 1 and 65535")
    return ws[0], ws[1]


def seq(req: dict[str, Any]) -> int:
    """A resize's order: its client's monotonic clock in ns (see Console.resize)."""
    value = req.get("seq", 0)
    if not isinstance(value, int):
        raise BasinError("seq must be an integer")
    return value


def _open(paths: Paths, name: object, mode: int, what: str) -> int | None:
    if name is None:
        return None
    fd = open_fifo(paths, name, mode)
    if fd is None:
        raise BasinError(f"cannot open the client's {what} FIFO {name!r}")
    with contextlib.suppress(OSError):
        os.unlink(paths.replies / str(name))  # both ends are open: the name is not needed
    return fd


def open_client(paths: Paths, req: dict[str, Any]) -> Client:
    """The client's FIFOs named in a request's "attach" object ({"stdin": .., "stdout": ..})."""
    spec = req.get("attach")
    if not isinstance(spec, dict):
        raise BasinError("attach must name the client's FIFOs")
    reply = req.get("reply")
    if isinstance(reply, str) and "/" not in reply and not reply.startswith("."):
        # open already (control.py); a session may last long and its client may be killed
        with contextlib.suppress(OSError):
            os.unlink(paths.replies / reply)
    in_fd = _open(paths, spec.get("stdin"), os.O_RDONLY, "input")
    try:
        out_fd = _open(paths, spec.get("stdout"), os.O_WRONLY, "output")
    except BaseException:
        if in_fd is not None:
            os.close(in_fd)
        raise
    return Client(in_fd, out_fd)


def close_client(client: Client) -> None:
    for fd in (client.in_fd, client.out_fd):
        if fd is not None:
            os.close(fd)
    client.in_fd = client.out_fd = None


async def serve(ctr: Container, live: Live, client: Client, reply: Reply) -> None:
    """Relay between a container and one client, then answer how the session ended."""
    console = live.console or Console(None, tty=False)  # no stdin, no PTY: wait for the end
    reason = await console.serve(client, live.done)
    if reason == ENDED or live.done.is_set():
        await live.done.wait()
        await reply.send({"type": "result", "id": ctr.id, "exit_code": ctr.state.exit_code})
    elif reason == DETACHED:
        await reply.send({"type": "result", "id": ctr.id, "detached": True})
    elif reason == TOO_SLOW:
        raise BasinError(
            f"disconnected: fell more than {MAX_BEHIND >> 10} KiB behind the container's output"
        )
    # GONE: the client went away; nobody is left to answer
