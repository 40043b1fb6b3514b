"""The user's terminal during an attached session: raw mode, its size, and signals turned
into bytes on a pipe that the session's select() loop watches.

Everything changed here is put back exactly as found, whatever ends the session: basin's
shell runs sessions in its own process and expects its terminal and its handlers intact."""

from __future__ import annotations

import contextlib
import os
import signal
import termios
import threading
import tty
from types import FrameType
from typing import Any


def terminal_fd() -> int | None:
    """The terminal whose size the container follows: stdin, else stdout."""
    for fd in (0, 1):
        if os.isatty(fd):
            return fd
    return None


def size(fd: int | None) -> tuple[int, int] | None:
    if fd is None:
        return None
    try:
        cols, rows = os.get_terminal_size(fd)
    except OSError:
        return None
    return (rows, cols) if rows > 0 and cols > 0 else None


class RawMode:
    """Puts a terminal into raw mode (no echo, no line editing, no signals from keys, no
    output processing: the container's own terminal does all that) until restore()."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._saved: list[Any] | None = None

    def enter(self) -> None:
        if self._saved is None:
            self._saved = termios.tcgetattr(self.fd)
            tty.setraw(self.fd, termios.TCSADRAIN)

    def restore(self) -> None:
        if self._saved is not None:
            saved, self._saved = self._saved, None
            with contextlib.suppress(termios.error):
                termios.tcsetattr(self.fd, termios.TCSADRAIN, saved)


class SignalPipe:
    """Turns signals into bytes on a pipe (select() cannot wait for a flag). Only the main
    thread may set handlers: elsewhere it watches nothing and the session does without."""

    def __init__(self, signals: tuple[int, ...]) -> None:
        self.r, self.w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._old: dict[int, Any] = {}
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in signals:
            self._old[sig] = signal.signal(sig, self._handler)

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(OSError):
            os.write(self.w, bytes([signum]))

    def read(self) -> list[int]:
        try:
            return list(os.read(self.r, 256))
        except BlockingIOError:
            return []

    def close(self) -> None:
        for sig, old in self._old.items():
            # None: a handler set outside Python, which cannot be put back; default is closest
            signal.signal(sig, signal.SIG_DFL if old is None else old)
        self._old.clear()
        for fd in (self.r, self.w):
            if fd >= 0:
                os.close(fd)
        self.r = self.w = -1
