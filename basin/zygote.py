"""The zygote: a single-threaded helper that forks containers and outlives the supervisor.

The trio supervisor runs worker threads, so it must never fork() itself. It sends this process
a spawn request (JSON) with the container's fds (SCM_RIGHTS) over a SOCK_SEQPACKET socket.
The zygote clones the container straight into its new namespaces (one clone(2) with the
CLONE_NEW* flags: the child is PID 1 of the new PID namespace and the zygote its parent). The
child brings up lo and mounts and pivots into its root at once, while the supervisor puts it
into its cgroups and network; then it waits on its "go" pipe and execs. Where clone cannot be
called this way (an architecture whose clone arguments we do not know), the zygote forks, the
child unshares and forks again, and the grandchild is re-parented to the zygote, which is
PR_SET_CHILD_SUBREAPER.

Surviving the supervisor: the zygote keeps a copy of each container's output read ends, its
stdin write end (-i) and PTY master (-t), so nothing a container writes to closes when the
supervisor dies; reaps the containers (their parent) and tells the supervisor each status.
When the supervisor goes, the zygote waits on $BASIN_RUN/zygote.sock for the next one and
hands it every fd and status on "hello". It exits when told to, or when it holds nothing and
no supervisor came for IDLE_EXIT_S.

Started as ``python -m basin.zygote LISTEN_FD LOCK_FD`` by a supervisor holding
zygote.lock (so one zygote per BASIN_RUN); it imports only the standard library and basin's
ctypes seam and rootfs (before any fork, so no container compiles or imports them again), and
keeps its memory small: every clone copies its page tables.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import json
import os
import select
import signal
import socket
import struct
import sys
import termios
import time

from basin import rootfs
from basin import syscalls as sc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dataclasses import dataclass, field
    from typing import Any, NoReturn
else:  # without dataclasses' imports (inspect, ast...): a smaller zygote is cheaper to clone
    from basin.plainclass import dataclass, field

MAX_FDS = 8
# with no container held and no supervisor connected, the zygote leaves after this long
IDLE_EXIT_S = 3.0
BASE_FLAGS = sc.CLONE_NEWNS | sc.CLONE_NEWUTS | sc.CLONE_NEWIPC | sc.CLONE_NEWPID


def recv_with_fds(sock: socket.socket) -> tuple[dict[str, Any], list[int]] | None:
    fds = array.array("i")
    # MSG_CMSG_CLOEXEC: a received fd must not leak into the container's command (the status
    # pipe's EOF at exec is how the supervisor learns the exec succeeded)
    msg, ancdata, _flags, _addr = sock.recvmsg(
        65536, socket.CMSG_LEN(MAX_FDS * fds.itemsize), socket.MSG_CMSG_CLOEXEC
    )
    if not msg:
        return None
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    return json.loads(msg), list(fds)


def _fail(status_fd: int, message: str, code: int) -> NoReturn:
    try:
        os.write(status_fd, json.dumps({"error": message, "code": code}).encode())
    finally:
        os._exit(code)


def _exec_error(argv0: str, err: OSError) -> tuple[str, int]:
    if isinstance(err, FileNotFoundError):
        if "/" in argv0:
            return f"exec: {argv0!r}: no such file or directory", 127
        return f"exec: {argv0!r}: executable file not found in $PATH", 127
    if isinstance(err, PermissionError | IsADirectoryError):
        return f"exec: {argv0!r}: permission denied", 126
    return f"exec: {argv0!r}: {err.strerror or err}", 126


def _attach_tty(spec: dict[str, Any], console_fd: int) -> None:
    """Open a PTY from the container's own devpts (so `tty` says /dev/pts/0), hand the
    master to the supervisor over the console socket, and make the slave our terminal."""
    master, slave = os.openpty()
    rows, cols = spec.get("winsize") or (24, 80)
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    console = socket.socket(fileno=console_fd)
    console.sendmsg([b"m"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [master]))])
    console.close()
    os.close(master)
    for target in (0, 1, 2):
        os.dup2(slave, target)
    if slave > 2:
        os.close(slave)


def _prepare(spec: dict[str, Any]) -> str:
    """Everything that needs neither the cgroups nor the network the supervisor is setting up
    meanwhile: lo, the root, pivot_root. Returns why it failed, or ""."""
    try:
        if spec.get("netns", True):
            sc.link_up("lo")  # a new network namespace starts with lo down, even 127.0.0.1
        rootfs.setup(spec)
    except OSError as e:
        return f"container setup failed: {e.strerror or e}"
    except Exception as e:  # a malformed request: still reported through the status pipe
        return f"container setup failed: {e}"
    return ""


def _container(spec: dict[str, Any], fds: dict[str, int]) -> NoReturn:
    """PID 1 of the new namespaces: build the root, wait for go, exec.

    The root is built before go, overlapping the supervisor's cgroup and network work; a
    failure is reported only after go, so the supervisor sees it where it always has (the
    status pipe, once it has let the container go)."""
    status = fds["status"]
    failure = _prepare(spec)
    try:
        go = os.read(fds["go"], 1)
    except OSError:
        go = b""
    if go != b"g":
        os._exit(125)  # the supervisor gave up on this container
    os.close(fds.pop("go"))
    if failure:
        _fail(status, failure, 125)
    os.setsid()
    try:
        if spec.get("tty"):
            _attach_tty(spec, fds.pop("console"))  # it closes the socket itself
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        else:
            for target, name in enumerate(("stdin", "stdout", "stderr")):
                os.dup2(fds[name], target)
        for name, fd in fds.items():
            if name != "status" and fd > 2:
                os.close(fd)
        rootfs.enter_workdir(spec.get("workdir") or "/")
    except OSError as e:
        _fail(status, f"container setup failed: {e.strerror or e}", 125)
    argv: list[str] = spec["argv"]
    env: dict[str, str] = spec["env"]
    # exec keeps ignored signals ignored: give the command the defaults, not the zygote's
    # (SIGINT ignored by the zygote would make Ctrl-C do nothing in a container's terminal;
    # Python itself ignores SIGPIPE and SIGXFSZ)
    for sig in (signal.SIGPIPE, signal.SIGINT, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as e:
        _fail(status, *_exec_error(argv[0], e))


def _child(spec: dict[str, Any], fds: dict[str, int], keep: dict[str, int]) -> NoReturn:
    """The container's side of a spawn, in its new namespaces. Never returns to the loop:
    anything unexpected ends it, so the zygote never ends up with two copies of itself."""
    try:
        # the zygote's own signal plumbing is not the container's
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in keep.values():
            os.close(fd)
        _container(spec, fds)
    finally:
        os._exit(125)


def _spawn(spec: dict[str, Any], fdlist: list[int]) -> tuple[dict[str, Any], dict[str, int]]:
    """Start the container; return the reply and the fds to hold for it ("keep.NAME" in the
    request: the supervisor's ends of its pipes)."""
    fds = dict(zip(spec["fds"], fdlist, strict=True))
    keep = {name.removeprefix("keep."): fds.pop(name) for name in list(fds) if name[:5] == "keep."}
    flags = BASE_FLAGS | (sc.CLONE_NEWNET if spec.get("netns", True) else 0)
    pid, error = 0, ""
    try:
        if sc.can_clone():
            pid = sc.clone(flags)
            if pid == 0:
                _child(spec, fds, keep)
        else:
            pid = _fork_unshare_fork(flags, spec, fds, keep)
    except OSError as e:
        pid, error = 0, f"spawn failed: {e.strerror or e}"
    finally:
        for fd in fds.values():
            os.close(fd)
    if pid > 0:
        return {"op": "spawned", "pid": pid}, keep
    for fd in keep.values():
        os.close(fd)
    return {"op": "spawned", "error": error}, {}


def _fork_unshare_fork(
    flags: int, spec: dict[str, Any], fds: dict[str, int], keep: dict[str, int]
) -> int:
    """What clone does in one call, in three: fork, unshare, fork again (a new PID namespace
    takes effect for the caller's children only). The intermediate exits at once; its child,
    PID 1, is re-parented to us, the subreaper. Returns PID 1's pid."""
    rd, wr = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(rd)
            sc.unshare(flags)
            pid = os.fork()
            if pid == 0:
                os.close(wr)
                _child(spec, fds, keep)
            os.write(wr, str(pid).encode())
            os._exit(0)
        except BaseException as e:  # anything, so the zygote never ends up with two copies
            try:
                os.write(wr, f"{e}".encode())
            finally:
                os._exit(1)
    os.close(wr)
    answer = os.read(rd, 512).decode()
    os.close(rd)
    os.waitpid(child, 0)
    if not answer.isdigit():
        raise OSError(0, answer or "fork failed")
    return int(answer)


def exit_code_of(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


@dataclass
class Held:
    """What the zygote keeps for one container until the supervisor releases it."""

    pid: int
    state_path: str  # its state.json, for an exit while no supervisor is connected
    fds: dict[str, int] = field(default_factory=dict)
    status: int | None = None  # the wait status, once reaped

    def close(self, names: list[str] | None = None) -> None:
        for name in list(self.fds) if names is None else names:
            fd = self.fds.pop(name, -1)
            if fd >= 0:
                os.close(fd)


class Server:
    """The zygote's loop: one supervisor connection at a time, the listening socket while none
    is connected, and SIGCHLD (through a wakeup pipe) for the containers it reaps."""

    def __init__(self, listener: socket.socket, sock_path: str) -> None:
        self.listener = listener
        self.sock_path = sock_path
        self.conn: socket.socket | None = None
        self.held: dict[str, Held] = {}
        self.quit = False
        self.idle_since = time.monotonic()
        self.wake_r, wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        # a Python-level handler, so the signal is delivered (and writes the wakeup pipe)
        signal.signal(signal.SIGCHLD, lambda _sig, _frame: None)

    # ---- the loop ------------------------------------------------------------------------
    def serve(self) -> None:
        try:
            while not self.quit:
                poller = select.poll()
                poller.register(self.wake_r, select.POLLIN)
                sock = self.conn if self.conn is not None else self.listener
                poller.register(sock, select.POLLIN)
                timeout_ms = None
                if self.conn is None and not self.held:
                    left = IDLE_EXIT_S - (time.monotonic() - self.idle_since)
                    if left <= 0:
                        return  # nothing to keep and nobody to serve
                    timeout_ms = int(left * 1000) + 1
                for fd, _ev in poller.poll(timeout_ms):
                    if fd == self.wake_r:
                        with contextlib.suppress(BlockingIOError):
                            os.read(self.wake_r, 4096)
                        self._reap()
                    elif self.conn is not None and fd == self.conn.fileno():
                        self._on_message()
                    elif fd == self.listener.fileno() and self.conn is None:
                        self._accept()
        finally:
            # gone before the lock is (at exit): a new zygote binds the path only holding it
            with contextlib.suppress(OSError):
                os.unlink(self.sock_path)
            self.listener.close()

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except BlockingIOError:
            return
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        if uid != os.geteuid():
            conn.close()  # the socket is 0600 in a 0700 directory: a belt to those braces
            return
        conn.setblocking(True)
        self.conn = conn

    def _disconnect(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
            self.idle_since = time.monotonic()

    def _send(self, msg: dict[str, Any], fds: list[int] | None = None) -> None:
        if self.conn is None:
            return
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        try:
            self.conn.sendmsg([json.dumps(msg).encode()], anc)
        except OSError:
            self._disconnect()  # a supervisor that died: the next one gets it all on hello

    # ---- requests ------------------------------------------------------------------------
    def _on_message(self) -> None:
        assert self.conn is not None
        try:
            got = recv_with_fds(self.conn)
        except OSError:
            got = None
        if got is None:
            self._disconnect()
            return
        msg, fds = got
        op = msg.get("op")
        if op == "spawn":
            try:
                reply, keep = _spawn(msg, fds)
            except Exception as e:
                reply, keep = {"op": "spawned", "error": f"spawn failed: {e}"}, {}
            reply["id"] = msg["id"]
            if "pid" in reply:
                self.held[msg["id"]] = Held(reply["pid"], str(msg.get("state", "")), keep)
            self._send(reply)
            return
        held = self.held.get(str(msg.get("id")))
        if op == "hold" and held is not None:
            for name, fd in zip(msg["names"], fds, strict=True):
                held.close([name])
                held.fds[name] = fd
            return
        for fd in fds:  # nothing else carries fds
            os.close(fd)
        if op == "drop" and held is not None:
            held.close(list(msg.get("names", [])))
        elif op == "release" and held is not None:
            held.close()
            del self.held[str(msg["id"])]
        elif op == "hello":
            self._reap()  # statuses first, so the supervisor sees the latest
            for cid, h in self.held.items():
                names = list(h.fds)
                self._send(
                    {"op": "held", "id": cid, "pid": h.pid, "names": names, "status": h.status},
                    [h.fds[n] for n in names],
                )
            self._send({"op": "ready", "count": len(self.held), "pid": os.getpid()})
        elif op == "exit":
            self.quit = True

    # ---- reaping -------------------------------------------------------------------------
    def _reap(self) -> None:
        """Reap every child that has exited: containers re-parented to us (we are their
        subreaper). The intermediate children of spawns are waited for in _spawn itself."""
        by_pid = {h.pid: (cid, h) for cid, h in self.held.items() if h.status is None}
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            found = by_pid.get(pid)
            if found is None:
                continue
            cid, h = found
            h.status = status
            if self.conn is not None:
                self._send({"op": "exited", "id": cid, "status": status})
            else:
                _record_exit(h)


def _record_exit(h: Held) -> None:
    """With no supervisor connected, write the exit code into the container's state.json (as
    basin.store does: temp file, fsync, rename), so `ps` shows it, and it survives even the
    zygote's own end. The status stays "running": it tells the next supervisor (which gets the
    status on hello) that the container is still to be finished (drained, released)."""
    if not h.state_path or h.status is None:
        return
    from pathlib import Path

    from basin import logfile
    from basin.store import read_json, write_json

    path = Path(h.state_path)
    try:
        state = read_json(path)
        if state.get("status") == "running" and state.get("pid") == h.pid:
            state["exit_code"] = exit_code_of(h.status)
            state["finished_at"] = logfile.timestamp()
            write_json(path, state)
    except Exception:  # a record being removed, or unreadable: the supervisor decides
        pass


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # containers re-parent to us when the intermediate child exits, so their exit statuses
    # stay with a process that outlives the supervisor
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
    os.chdir("/")  # never pin the starting directory's mount
    listener = socket.socket(fileno=int(sys.argv[1]))
    listener.setblocking(False)
    # sys.argv[2] is the fd of zygote.lock, locked: held (inherited) for as long as we live
    Server(listener, listener.getsockname()).serve()


if __name__ == "__main__":
    main()
