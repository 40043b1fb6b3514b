"""Run a function inside another network namespace, on a thread of its own.

A network namespace belongs to a thread, not a process: setns(CLONE_NEWNET) moves only the
calling thread. pyroute2's IPRoute opens its netlink socket in the namespace of the thread
that creates it and (0.9) keeps per-thread state, so the whole life of a namespace's IPRoute
must happen on one thread after setns. ``IPRoute(netns=...)`` is no help: it forks a child to
open the socket, and the supervisor, a threaded trio process, must not fork.

The thread is a fresh ``threading.Thread``, never a pooled worker (trio's thread cache): if
switching back to the host namespace ever failed, a pooled thread would carry the container's
namespace into the next job and silently configure the wrong network; ours just ends.
Python 3.11 has no os.setns, hence ctypes.
"""

from __future__ import annotations

import ctypes
import os
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
