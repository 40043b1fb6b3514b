"""The supervisor's side of the zygote: find (or start) it, spawn through it, hand it the fds
it keeps for each container, and learn from it how each container exited.

The zygote outlives the supervisor (see basin/zygote.py): it listens on $BASIN_RUN/zygote.sock
and, on "hello", hands a new supervisor what it holds for every container (output read ends,
stdin write end, PTY master, and the exit status of one that ended meanwhile)."""

from __future__ import annotations

import array
import contextlib
import fcntl
import json
import os
import select
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import structlog
import trio

from basin.errors import BasinError
from basin.paths import Paths
from basin.zygote import recv_with_fds

log = structlog.get_logger()

# how long a new supervisor waits for an old zygote that is on its way out
LOCK_WAIT_S = 5.0
HELLO_TIMEOUT_S = 10.0
MAX_FDS = 8


@dataclass
class Held:
    """What the zygote kept for one container, as handed over on hello."""

    pid: int
    fds: dict[str, int] = field(default_factory=dict)
    status: int | None = None  # its wait status if it ended while no supervisor ran


def _start(paths: Paths) -> subprocess.Popen[bytes] | None:
    """Start a zygote, bound to the socket path, holding zygote.lock. None if an old zygote
    still holds the lock (it is leaving, or answers again: the caller retries connecting)."""
    lock = os.open(paths.run / "zygote.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        path = paths.run / "zygote.sock"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # left by a zygote that was killed: we hold the lock now
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        old = os.umask(0o177)
        try:
            listener.bind(str(path))  # 0600 from the start: no window with another mode
        finally:
            os.umask(old)
        listener.listen(8)
        with listener:
            fd = listener.fileno()
            # its own session: a foreground supervisor's terminal (^C, hangup) never reaches it
            return subprocess.Popen(
                [sys.executable, "-m", "basin.zygote", str(fd), str(lock)],
                pass_fds=[fd, lock],
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
    finally:
        os.close(lock)  # the zygote's inherited copy keeps the lock


class Zygote:
    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        self.proc: subprocess.Popen[bytes] | None = None  # set if we started it
        self.held: dict[str, Held] = {}
        self.pid = 0
        sock = self._hello()
        self._raw = sock
        self._sock = trio.socket.from_stdlib_socket(sock)
        self._lock = trio.Lock()
        self._pending = ""  # the container id of the spawn waiting for its reply
        self._reply: dict[str, Any] | None = None
        self._replied = trio.Event()
        self._statuses: dict[str, int] = {
            cid: h.status for cid, h in self.held.items() if h.status is not None
        }
        self._waiters: dict[str, trio.Event] = {}
        self._known = set(self.held)  # the containers this zygote reaps and reports
        self.lost = trio.Event()
        self._revived = trio.Event()

    # ---- connecting (blocking, before trio runs) ------------------------------------------
    def _hello(self) -> socket.socket:
        deadline = time.monotonic() + LOCK_WAIT_S
        path = str(self.paths.run / "zygote.sock")
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                sock.connect(path)
                sock.settimeout(HELLO_TIMEOUT_S)
                sock.send(b'{"op": "hello"}')
                if self._take_held(sock):
                    sock.settimeout(None)
                    return sock
            except (FileNotFoundError, ConnectionRefusedError, ConnectionResetError):
                pass
            sock.close()
            for h in self.held.values():  # half a hello from a zygote that left meanwhile
                for fd in h.fds.values():
                    os.close(fd)
            self.held.clear()
            if self.proc is None:
                self.proc = _start(self.paths)
            if time.monotonic() > deadline:
                raise BasinError(
                    f"cannot reach the zygote at {path}: another one holds "
                    f"{self.paths.run / 'zygote.lock'} but does not answer"
                )
            if self.proc is None:
                time.sleep(0.02)  # an old zygote is on its way out

    def _take_held(self, sock: socket.socket) -> bool:
        """Read hello's answer; False if the zygote went away in the middle of it."""
        while True:
            got = recv_with_fds(sock)
            if got is None:
                return False
            msg, fds = got
            if msg.get("op") == "ready":
                self.pid = int(msg.get("pid", 0))
                return True
            if msg.get("op") == "held":
                self.held[msg["id"]] = Held(
                    int(msg["pid"]), dict(zip(msg["names"], fds, strict=True)), msg.get("status")
                )
            else:
                for fd in fds:
                    os.close(fd)

    # ---- the running supervisor --------------------------------------------------------
    async def run(self) -> None:
        """Read the zygote's messages: spawn replies and exit statuses. Runs for the
        supervisor's whole life; marks the zygote lost on EOF, and reads from the next one
        once a spawn has started it."""
        while True:
            await self._read_until_eof()
            self._mark_lost()  # (a cancellation, the supervisor shutting down, never gets here)
            log.warning("zygote.lost", pid=self.pid)
            await self._revived.wait()

    async def _read_until_eof(self) -> None:
        while True:
            try:
                msg, anc, _flags, _addr = await self._sock.recvmsg(
                    65536, socket.CMSG_LEN(MAX_FDS * 4), socket.MSG_CMSG_CLOEXEC
                )
            except OSError:
                return
            if not msg:
                return
            for level, kind, data in anc:  # nothing sent to us now carries fds
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    for fd in array.array("i", data[: len(data) - len(data) % 4]):
                        os.close(fd)
            self._dispatch(json.loads(msg))

    async def _revive(self) -> None:
        """Start a new zygote after ours died (killed by hand, OOM): the containers it had
        came to us, the subreaper, and are reaped by exit_status' fallback."""
        self._sock.close()
        if self.proc is not None:
            self.proc.poll()  # reap the dead one
            self.proc = None
        sock = await trio.to_thread.run_sync(self._hello)
        for h in self.held.values():  # a fresh zygote holds nothing: this is defensive
            for fd in h.fds.values():
                os.close(fd)
        self.held.clear()
        self._raw = sock
        self._sock = trio.socket.from_stdlib_socket(sock)
        self._known = set()
        self.lost = trio.Event()
        revived, self._revived = self._revived, trio.Event()
        revived.set()
        log.info("zygote.restarted", pid=self.pid)

    def _dispatch(self, msg: dict[str, Any]) -> None:
        op = msg.get("op")
        if op == "exited":
            cid = str(msg["id"])
            self._statuses[cid] = int(msg["status"])
            ev = self._waiters.pop(cid, None)
            if ev is not None:
                ev.set()
        elif op == "spawned":
            if msg.get("id") == self._pending:
                self._reply = msg
                self._replied.set()
            elif "pid" in msg:
                # the answer to a spawn that was cancelled: its child reads EOF on "go" and
                # exits; the zygote need keep nothing for it
                self.release(str(msg.get("id")))

    def _mark_lost(self) -> None:
        self.lost.set()
        self._replied.set()
        for ev in self._waiters.values():
            ev.set()
        self._waiters.clear()

    async def spawn(self, spec: dict[str, Any], fds: list[int]) -> int:
        async with self._lock:  # one spawn at a time: the zygote forks them one by one
            if self.lost.is_set():
                await self._revive()
            self._pending = str(spec["id"])
            self._reply = None
            self._replied = trio.Event()
            try:
                await self._sock.sendmsg(
                    [json.dumps({**spec, "op": "spawn"}).encode()],
                    [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))],
                )
                await self._replied.wait()
            finally:
                self._pending = ""
            reply = self._reply
        if reply is None:
            raise BasinError("the zygote is gone: restart the supervisor")
        if "pid" not in reply:
            raise BasinError(str(reply.get("error", "spawn failed")))
        self._known.add(str(spec["id"]))
        return int(reply["pid"])

    async def exit_status(self, cid: str, pid: int) -> int | None:
        """The wait status of a container the zygote reaped; None if it cannot be known."""
        while cid not in self._statuses:
            if self.lost.is_set() or cid not in self._known:
                # the zygote died: its orphans came to us, the subreaper, if we started it
                try:
                    got, status = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    return None
                return status if got else None
            await self._waiters.setdefault(cid, trio.Event()).wait()
        return self._statuses.pop(cid)

    # ---- what the zygote keeps -----------------------------------------------------------
    def hold(self, cid: str, fds: dict[str, int]) -> None:
        """Give the zygote a copy of fds to keep for a container (the PTY master)."""
        self._post({"op": "hold", "id": cid, "names": list(fds)}, list(fds.values()))

    def drop(self, cid: str, names: list[str]) -> None:
        """The zygote closes its copies (the stdin write end once the client's stdin ended:
        the container reads EOF only when no copy is left)."""
        self._post({"op": "drop", "id": cid, "names": names})

    def release(self, cid: str) -> None:
        """The container is finished and recorded: the zygote forgets it."""
        self._statuses.pop(cid, None)
        self._known.discard(cid)
        self._post({"op": "release", "id": cid})

    def _post(self, msg: dict[str, Any], fds: list[int] | None = None) -> None:
        if self.lost.is_set():
            return
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        data = [json.dumps(msg).encode()]
        for _ in range(2):
            try:
                self._raw.sendmsg(data, anc)
                return
            except BlockingIOError:
                # a few hundred bytes into a socket the zygote drains: full only if it hangs
                select.select([], [self._raw], [], 1.0)
            except OSError:
                return  # gone: run() notices the EOF

    def close(self, stop: bool) -> None:
        """Called after trio.run has returned. stop: tell the zygote to exit (nothing runs
        any more) and wait for it; otherwise leave it keeping the containers for the next
        supervisor."""
        sock = socket.socket(fileno=self._sock.detach())
        try:
            if stop and not self.lost.is_set():
                sock.setblocking(True)
                sock.settimeout(5)
                sock.send(b'{"op": "exit"}')
                while recv_with_fds(sock) is not None:  # EOF: it has closed the connection to leave
                    pass
        except OSError:
            pass
        finally:
            sock.close()
        if self.proc is not None and stop:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
