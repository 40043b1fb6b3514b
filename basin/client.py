"""The thin client: one JSON request over the control FIFO, replies over a FIFO of its own.

Imports nothing heavy (no trio, prompt_toolkit, pyroute2): `basin ps` and friends start in a
few milliseconds. Starts a supervisor in the background when none answers."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import select
import sys
import time
from collections.abc import Callable, Iterator

from basin.errors import BasinError
from basin.paths import Paths

TYPE_CHECKING = False  # typing costs the thin client ~3 ms to import
if TYPE_CHECKING:
    from typing import Any

START_TIMEOUT_S = 15.0
MAX_REQUEST = 4096


def _open_control(paths: Paths) -> int | None:
    """The control FIFO for writing, or None when no supervisor reads it (ENXIO/ENOENT)."""
    try:
        fd = os.open(paths.control, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        if e.errno in (errno.ENXIO, errno.ENOENT):
            return None
        raise BasinError(f"cannot reach the supervisor at {paths.control}: {e.strerror}") from None
    if supervisor_pid(paths) is None:
        # a supervisor that was just killed: its main thread is a zombie already, but its
        # other threads, still exiting, hold the FIFO open for a moment
        os.close(fd)
        return None
    return fd


def supervisor_pid(paths: Paths) -> int | None:
    try:
        pid = int(paths.pidfile.read_text())
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rpartition(b")")[2][1:2]
    except (OSError, ValueError):
        return None
    # a zombie is dead too: whoever inherited it may not have reaped it yet
    return None if state in (b"Z", b"X") else pid


def start_supervisor(paths: Paths) -> int:
    """Start a background supervisor unless one runs; return the control fd once it answers.
    Concurrent clients serialise on a lock so that only one of them starts a supervisor."""
    paths.run.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = os.open(paths.run / "start.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        fd = _open_control(paths)
        if fd is not None:
            return fd
        import subprocess  # only here: it costs every other client ~3 ms to import

        # the supervisor serves these paths, whatever this process's environment says (a
        # caller in-process, like the shell or a test, may hold Paths of its own)
        env = {**os.environ, "BASIN_ROOT": str(paths.root), "BASIN_RUN": str(paths.run)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "basin", "supervisor", "--background"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            fd = _open_control(paths)
            if fd is not None:
                return fd
            if proc.poll() is not None:
                err = (proc.stderr.read() if proc.stderr else b"").decode().strip()
                lastline = err.splitlines()[-1] if err else f"see {paths.supervisor_log}"
                raise BasinError(f"the supervisor failed to start: {lastline}")
            time.sleep(0.005)
        raise BasinError(f"the supervisor did not answer within {START_TIMEOUT_S:.0f}s")
    finally:
        os.close(lock)


def send_line(control_fd: int, msg: dict[str, Any]) -> None:
    """One request as one write of at most PIPE_BUF bytes, so that requests of concurrent
    clients never interleave in the FIFO."""
    line = (json.dumps(msg) + "\n").encode()
    if len(line) > MAX_REQUEST:
        raise BasinError(f"request too large ({len(line)} bytes, at most {MAX_REQUEST})")
    try:
        os.write(control_fd, line)
    except BlockingIOError:
        raise BasinError("the supervisor is not keeping up with requests: try again") from None


def request(
    paths: Paths,
    msg: dict[str, Any],
    start: bool = True,
    idle: Callable[[], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Send one request; yield its replies up to and including the final one. While waiting,
    call idle() every few milliseconds (the foreground run streams its log from there)."""
    fd = _open_control(paths)
    if fd is None:
        if not start:
            raise BasinError("the supervisor is not running")
        fd = start_supervisor(paths)
    name = f"{os.getpid()}-{os.urandom(4).hex()}.fifo"  # secrets would cost 4 ms to import
    reply_path = paths.replies / name
    try:
        os.mkfifo(reply_path, 0o600)
        rfd = os.open(reply_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        os.close(fd)
        raise BasinError(f"cannot make a reply FIFO in {paths.replies}: {e.strerror}") from None
    try:
        try:
            send_line(fd, {**msg, "reply": name})
        finally:
            os.close(fd)
        yield from _replies(paths, rfd, idle)
    finally:
        os.close(rfd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(reply_path)


def _replies(paths: Paths, rfd: int, idle: Callable[[], None] | None) -> Iterator[dict[str, Any]]:
    buf = b""
    opened = False  # before the supervisor opens our FIFO, a read says EOF: not an answer
    interval = 0.02 if idle else 0.5
    waited = 0.0
    while True:
        ready, _, _ = select.select([rfd], [], [], interval)
        if not ready:
            if idle:
                idle()
            waited += interval
            if waited >= 0.5:
                waited = 0.0
                if supervisor_pid(paths) is None:
                    raise BasinError("the supervisor died while handling the request")
            continue
        data = os.read(rfd, 65536)
        if not data:
            if opened:
                # its pid may linger a moment after its FIFO closed
                for _ in range(20):
                    if supervisor_pid(paths) is None:
                        raise BasinError("the supervisor died while handling the request")
                    time.sleep(0.01)
                raise BasinError("the supervisor closed the request without an answer")
            time.sleep(0.002)
            continue
        opened = True
        buf += data
        *lines, buf = buf.split(b"\n")
        for raw in lines:
            msg = json.loads(raw)
            yield msg
            if msg.get("type") in ("result", "error"):
                return


def call(paths: Paths, msg: dict[str, Any], start: bool = True) -> dict[str, Any]:
    """A request with a single answer; an error answer becomes a BasinError."""
    for reply in request(paths, msg, start=start):
        if reply["type"] == "error":
            raise BasinError(reply["error"], int(reply.get("code", 125)))
        if reply["type"] == "result":
            return reply
    raise BasinError("no answer from the supervisor")


def notify(paths: Paths, msg: dict[str, Any]) -> None:
    """Send a request that wants no answer (a window resize): never starts a supervisor,
    never waits, and a lost one is harmless."""
    fd = _open_control(paths)
    if fd is None:
        return
    try:
        line = (json.dumps(msg) + "\n").encode()
        if len(line) <= MAX_REQUEST:
            with contextlib.suppress(BlockingIOError):
                os.write(fd, line)
    finally:
        os.close(fd)
