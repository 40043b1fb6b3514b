"""Work inside another network namespace without moving any thread that does other work.

A network namespace belongs to a thread, not a process: setns(CLONE_NEWNET) moves only the
calling thread. A socket belongs to the namespace of the thread that created it, for life,
whichever thread uses it later. So socket_in() opens a socket in a container's namespace on
the one thread that ever visits namespaces, and the caller does the rest from where it is
(plugins.network.rtnl). Forking into the namespace is no option: the supervisor, a threaded
trio process, must not fork.

run_in_netns() runs a whole function there, on a fresh ``threading.Thread``: never a pooled
worker (trio's thread cache), because if switching back ever failed, a pooled thread would
carry the container's namespace into the next job and silently configure the wrong network;
ours just ends. Python 3.11 has no os.setns, hence ctypes.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import socket
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def setns(fd: int, nstype: int = CLONE_NEWNET) -> None:
    if _libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def ns_inode(path: str) -> int:
    return os.stat(path).st_ino


def current_netns() -> int:
    """Inode of the calling thread's network namespace (not the process's: /proc/self
    is the main thread)."""
    return ns_inode("/proc/thread-self/ns/net")


def run_in_netns(ns_fd: int, fn: Callable[[], T]) -> T:
    """Call fn on a new thread that has joined the namespace open at ns_fd; return its
    result or raise its exception."""
    result: list[T] = []
    error: list[BaseException] = []
    target = os.fstat(ns_fd).st_ino

    def body() -> None:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns(ns_fd)
            # the check that we are not about to configure the host after all
            if current_netns() != target:
                raise OSError("setns did not move the thread into the target namespace")
            result.append(fn())
        except BaseException as e:
            error.append(e)
        finally:
            try:
                setns(home)
            finally:
                os.close(home)

    t = threading.Thread(target=body, name="basin-netns", daemon=True)
    t.start()
    t.join()
    if error:
        raise error[0]
    return result[0]


# (namespace fd, family, type, proto, where the socket or the error goes)
_Job = tuple[int, int, int, int, "queue.SimpleQueue[socket.socket | BaseException]"]


class _Opener:
    """One long-lived thread that opens sockets inside other namespaces: setns there,
    socket(), setns home, check it is home. ~0.1 ms a socket against ~0.6 ms for a fresh
    thread per call (run_in_netns), and the socket stays in the namespace it was opened in
    whichever thread then uses it. Only this thread ever leaves the host's namespace, for
    one syscall; if it could not get back, it fails what it holds and ends, and the next
    call starts another: no job is ever served from the wrong namespace."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[_Job] | None = None

    def open(self, ns_fd: int, family: int, kind: int, proto: int) -> socket.socket:
        done: queue.SimpleQueue[socket.socket | BaseException] = queue.SimpleQueue()
        with self._lock:
            if self._jobs is None:
                self._jobs = queue.SimpleQueue()
                threading.Thread(
                    target=self._serve, args=(self._jobs,), name="basin-netns", daemon=True
                ).start()
            self._jobs.put((ns_fd, family, kind, proto, done))
        out = done.get()
        if isinstance(out, BaseException):
            raise out
        return out

    def _serve(self, jobs: queue.SimpleQueue[_Job]) -> None:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        home_ino = os.fstat(home).st_ino
        while True:
            ns_fd, family, kind, proto, done = jobs.get()
            out: socket.socket | BaseException
            try:
                setns(ns_fd)
                if current_netns() != os.fstat(ns_fd).st_ino:
                    raise OSError("setns did not move the thread into the target namespace")
                out = socket.socket(family, kind, proto)
            except BaseException as e:
                out = e
            with contextlib.suppress(OSError):
                setns(home)
            if current_netns() == home_ino:
                done.put(out)
                continue
            if isinstance(out, socket.socket):
                out.close()
            lost = OSError("the namespace helper thread could not return to its namespace")
            done.put(lost)
            with self._lock:
                if self._jobs is jobs:
                    self._jobs = None
            # whatever was queued before the line above is failed, never served from here
            while not jobs.empty():
                jobs.get()[4].put(lost)
            os.close(home)
            return


_opener = _Opener()


def socket_in(ns_fd: int, family: int, kind: int, proto: int = 0) -> socket.socket:
    """A socket in the network namespace open at ns_fd (its namespace for life)."""
    return _opener.open(ns_fd, family, kind, proto)
