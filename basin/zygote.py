"""The zygote: a single-threaded helper that forks containers for the supervisor.

The trio supervisor runs worker threads, so it must never fork() itself. It sends this process
a spawn request (JSON) with the container's fds (SCM_RIGHTS) over a SOCK_SEQPACKET socket.
The zygote forks; that child unshares the namespaces and forks again, so the grandchild is
PID 1 of the new PID namespace; the child exits at once, and the grandchild is re-parented to
the supervisor, which is PR_SET_CHILD_SUBREAPER. The grandchild then waits on its "go" pipe
while the supervisor puts it into its cgroups and network, mounts its root and execs.

Started as ``python -m basin.zygote FD``; it imports only the standard library and basin's
ctypes seam, so it starts in a few milliseconds.
"""

from __future__ import annotations

import array
import fcntl
import json
import os
import signal
import socket
import struct
import sys
import termios
from typing import Any, NoReturn

from basin import syscalls as sc

MAX_FDS = 8
BASE_FLAGS = sc.CLONE_NEWNS | sc.CLONE_NEWUTS | sc.CLONE_NEWIPC | sc.CLONE_NEWPID


def _recv(sock: socket.socket) -> tuple[dict[str, Any], list[int]] | None:
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


def _container(spec: dict[str, Any], fds: dict[str, int]) -> NoReturn:
    """PID 1 of the new namespaces: wait for go, build the root, exec."""
    status = fds["status"]
    try:
        if os.read(fds["go"], 1) != b"g":
            os._exit(125)  # the supervisor gave up on this container
        os.close(fds.pop("go"))
        if spec.get("netns", True):
            sc.link_up("lo")  # a new network namespace starts with lo down, even 127.0.0.1
        from basin import rootfs

        rootfs.setup(spec)
    except OSError as e:
        _fail(status, f"container setup failed: {e.strerror or e}", 125)
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
        workdir = spec.get("workdir") or "/"
        os.makedirs(workdir, exist_ok=True)
        os.chdir(workdir)
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


def _spawn(spec: dict[str, Any], fdlist: list[int]) -> dict[str, Any]:
    fds = dict(zip(spec["fds"], fdlist, strict=True))
    flags = BASE_FLAGS | (sc.CLONE_NEWNET if spec.get("netns", True) else 0)
    rd, wr = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(rd)
            sc.unshare(flags)
            pid = os.fork()
            if pid == 0:
                os.close(wr)
                _container(spec, fds)
            os.write(wr, str(pid).encode())
            os._exit(0)
        except BaseException as e:  # anything, so the zygote never ends up with two copies
            try:
                os.write(wr, f"error: {e}".encode())
            finally:
                os._exit(1)
    os.close(wr)
    answer = os.read(rd, 512).decode()
    os.close(rd)
    os.waitpid(child, 0)
    for fd in fdlist:
        os.close(fd)
    if answer.isdigit():
        return {"pid": int(answer)}
    return {"error": answer.removeprefix("error: ") or "spawn failed"}


def serve(sock: socket.socket) -> None:
    while True:
        try:
            got = _recv(sock)
        except ConnectionResetError:
            return
        if got is None:
            return
        spec, fdlist = got
        try:
            reply = _spawn(spec, fdlist)
        except Exception as e:
            reply = {"error": f"spawn failed: {e}"}
        sock.send(json.dumps(reply).encode())


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=int(sys.argv[1]))
    serve(sock)


if __name__ == "__main__":
    main()
