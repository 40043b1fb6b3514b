"""An attached session (`run -i/-t`, `attach`): the user's terminal relayed to a container
through the supervisor, in one select() loop of the standard library.

Transport (design.md): the client makes FIFOs in the supervisor's 0700 replies directory and
names them in its request: "stdin" carries keystrokes to the supervisor, "stdout" carries the
container's terminal output back (-t only; without a PTY the output is the json-file log,
which the session follows like `run` does, keeping stdout and stderr apart). Closing our end
of "stdin" tells the supervisor we left (detach) or, without a PTY, that stdin ended. Window
size changes travel as `resize` requests on the control FIFO.

The session never exits the process and restores what it changed (terminal mode, signal
handlers) on every way out, so basin's shell can call it in-process."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import select
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

from basin import client
from basin.cli import detachkeys, output, terminal
from basin.errors import BasinError
from basin.paths import Paths

# after detaching or the container's exit, how long to wait for the supervisor's last word
FINAL_WAIT_S = 2.0


@dataclass
class Mode:
    tty: bool  # the container has a PTY: its output comes over our "stdout" FIFO
    stdin: bool  # relay our stdin to the container
    detach_keys: bytes = b"\x10\x11"  # ctrl-p ctrl-q
    log_from_end: bool = False  # without a PTY: follow the log from now (attach), not from 0


def check_stdin(mode: Mode) -> None:
    if mode.tty and mode.stdin and not os.isatty(0):
        raise BasinError("the input device is not a TTY (use -i without -t for a pipe)")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            select.select([], [fd], [])


class _Session:
    def __init__(self, paths: Paths, mode: Mode) -> None:
        self.paths = paths
        self.mode = mode
        self.fifos: list[str] = []
        self.reply_fd = -1
        self.in_fd = -1  # our write end of the "stdin" FIFO (opened O_RDWR: never ENXIO)
        self.out_fd = -1
        self.term_fd = terminal.terminal_fd()
        self.raw = terminal.RawMode(0) if mode.tty and mode.stdin else None
        self.sigs = terminal.SignalPipe((signal.SIGWINCH, signal.SIGTERM, signal.SIGHUP))
        self.matcher = detachkeys.Matcher(mode.detach_keys)
        self.pending = bytearray()  # keystrokes the supervisor has not taken yet
        self.stdin_open = mode.stdin
        self.attached = False
        self.opened = False  # the supervisor opened our reply FIFO
        self.buf = b""
        self.follower: output.LogFollower | None = None
        self.cid = ""
        self.name = ""
        self.token = ""

    # ---- setup / teardown -------------------------------------------------------------
    def _fifo(self, suffix: str, flags: int) -> tuple[str, int]:
        name = f"{self.token}.{suffix}"
        os.mkfifo(self.paths.replies / name, 0o600)
        self.fifos.append(name)
        return name, os.open(self.paths.replies / name, flags | os.O_NONBLOCK | os.O_CLOEXEC)

    def send(self, msg: dict[str, Any]) -> None:
        ctl = client._open_control(self.paths) or client.start_supervisor(self.paths)
        try:
            self.token = f"{os.getpid()}-{secrets.token_hex(4)}"
            try:
                reply, self.reply_fd = self._fifo("fifo", os.O_RDONLY)
                attach: dict[str, str | None] = {"stdin": None, "stdout": None}
                if self.mode.tty or self.mode.stdin:
                    attach["stdin"], self.in_fd = self._fifo("in", os.O_RDWR)
                if self.mode.tty:
                    attach["stdout"], self.out_fd = self._fifo("out", os.O_RDONLY)
            except OSError as e:
                raise BasinError(f"cannot make FIFOs in {self.paths.replies}: {e}") from None
            msg = {**msg, "reply": reply, "attach": attach, "seq": time.monotonic_ns()}
            size = terminal.size(self.term_fd)
            if size is not None and self.mode.tty:
                msg["winsize"] = list(size)
            client.send_line(ctl, msg)
        finally:
            os.close(ctl)

    def close(self) -> None:
        if self.raw is not None:
            self.raw.restore()
        self.sigs.close()
        for attr in ("reply_fd", "in_fd", "out_fd"):
            self._close_fd(attr)
        for name in self.fifos:
            with contextlib.suppress(OSError):
                os.unlink(self.paths.replies / name)
        if self.follower is not None:
            self.follower.close()

    def _close_fd(self, attr: str) -> None:
        fd = getattr(self, attr)
        if fd >= 0:
            setattr(self, attr, -1)
            os.close(fd)

    # ---- the loop ---------------------------------------------------------------------
    def loop(self) -> int:
        idle = 0.0
        while True:
            rlist = [self.reply_fd, self.sigs.r]
            if self.attached and self.out_fd >= 0:
                rlist.append(self.out_fd)
            if self.attached and self.stdin_open and not self.pending:
                rlist.append(0)
            wlist = [self.in_fd] if self.pending and self.in_fd >= 0 else []
            timeout = 0.02 if self.follower is not None else 0.5
            r, w, _ = select.select(rlist, wlist, [], timeout)
            if self.follower is not None:
                self.follower.pump()
            if not r and not w:
                idle += timeout
                if idle >= 0.5:
                    idle = 0.0
                    if client.supervisor_pid(self.paths) is None:
                        raise BasinError("the supervisor died during the session")
                continue
            idle = 0.0
            if self.sigs.r in r:
                code = self._signals()
                if code is not None:
                    return code
            if self.reply_fd in r:
                for msg in self._replies():
                    code = self._reply(msg)
                    if code is not None:
                        return code
            if self.out_fd in r and self.out_fd >= 0:
                self._output()
            if 0 in r:
                code = self._stdin()
                if code is not None:
                    return code
            if self.in_fd in w:
                self._flush_input()

    def _signals(self) -> int | None:
        for sig in self.sigs.read():
            if sig == signal.SIGWINCH:
                size = terminal.size(self.term_fd)
                if size is not None and self.cid:
                    msg = {"op": "resize", "ref": self.cid, "winsize": list(size)}
                    client.notify(self.paths, {**msg, "seq": time.monotonic_ns()})
            else:  # SIGTERM, SIGHUP: leave the container running, as a detach does
                return 128 + sig
        return None

    def _replies(self) -> list[dict[str, Any]]:
        data = os.read(self.reply_fd, 65536)
        if not data:
            if self.opened:
                raise BasinError("the supervisor closed the request without an answer")
            time.sleep(0.002)  # it has not opened our FIFO yet
            return []
        self.opened = True
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        return [json.loads(raw) for raw in lines if raw.strip()]

    def _reply(self, msg: dict[str, Any]) -> int | None:
        kind = msg.get("type")
        if kind in ("started", "attached"):
            self.cid, self.name = str(msg.get("id", "")), str(msg.get("name", ""))
            self.attached = True
            if self.raw is not None:
                self.raw.enter()
            if not self.mode.tty:
                self.follower = output.LogFollower(self.paths.container_log(self.cid))
                if self.mode.log_from_end:
                    with contextlib.suppress(OSError):
                        self.follower.read_existing()  # follow from now on
            return None
        if kind == "error":
            self._restore()
            print(f"basin: {msg.get('error')}", file=sys.stderr)
            return int(msg.get("code", 125))
        if kind == "result":
            if msg.get("detached"):
                return 0
            self._drain_output()
            return int(msg.get("exit_code") or 0)
        return None

    def _output(self) -> None:
        try:
            data = os.read(self.out_fd, 65536)
        except BlockingIOError:
            return
        if not data:
            self._close_fd("out_fd")  # the container's output ended (or we were cut off)
            return
        sys.stdout.flush()
        _write_all(1, data)

    def _drain_output(self) -> None:
        """The container exited: take the rest of its output (the supervisor closes our
        FIFO once all of it is written)."""
        deadline = time.monotonic() + FINAL_WAIT_S
        while self.out_fd >= 0 and time.monotonic() < deadline:
            r, _, _ = select.select([self.out_fd], [], [], deadline - time.monotonic())
            if r:
                self._output()
        if self.follower is not None:
            self.follower.drain()
            self.follower = None

    def _stdin(self) -> int | None:
        try:
            data = os.read(0, 65536)
        except BlockingIOError:
            return None
        except OSError as e:
            if e.errno != errno.EIO:  # EIO: our terminal hung up
                raise
            data = b""
        if self.raw is not None:
            if not data:
                return self._detach(announce=False)
            data, detached = self.matcher.feed(data)
            self.pending += data
            self._flush_input()
            return self._detach(announce=True) if detached else None
        if not data:
            self.stdin_open = False  # the container's stdin closes once pending input is in
        self.pending += data
        self._flush_input()
        return None

    def _flush_input(self) -> None:
        if self.in_fd < 0:
            self.pending.clear()
            return
        if self.pending:
            with contextlib.suppress(BlockingIOError):
                del self.pending[: os.write(self.in_fd, self.pending)]
        if not self.pending and not self.stdin_open and not self.mode.tty:
            self._close_fd("in_fd")  # EOF on the container's stdin

    def _detach(self, announce: bool) -> int:
        """Leave the container running: closing our input end tells the supervisor."""
        self._close_fd("in_fd")
        deadline = time.monotonic() + FINAL_WAIT_S
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.reply_fd], [], [], deadline - time.monotonic())
            if not r:
                break
            try:
                msgs = self._replies()
            except (BasinError, ValueError):
                break
            if any(m.get("type") in ("result", "error") for m in msgs):
                break
        self._restore()
        if announce:
            ref = self.name or self.cid[:12]
            print(f"\ndetached from {ref} (basin attach {ref} to return)", file=sys.stderr)
        return 0

    def _restore(self) -> None:
        if self.raw is not None:
            self.raw.restore()


def run(paths: Paths, msg: dict[str, Any], mode: Mode) -> int:
    """Send a run (with "attach") or attach request and relay until the session ends; return
    the container's exit code (0 after a detach)."""
    check_stdin(mode)
    session = _Session(paths, mode)
    try:
        session.send(msg)
        return session.loop()
    finally:
        session.close()
