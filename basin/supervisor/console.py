"""A running container's terminal (or stdin pipe) and the clients attached to it.

The container's output is read by one relay task (runtime._relay) that writes the log and hands
each chunk to `Console.broadcast`. Broadcasting never waits: a chunk goes straight into a
client's output FIFO when there is room, otherwise into that client's own buffer, which a task
of the client drains. A client whose buffer passes MAX_BEHIND is disconnected, so a slow or
stopped client can hold back neither the log nor the container nor any other client.

Input from every attached client is written to the PTY master (or the stdin pipe) by that
client's task; a lock keeps one writer at a time, since trio lets only one task wait for an fd
to become writable."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct
import termios
from collections.abc import Callable

import trio

# how far (bytes) a client may fall behind the container's output before it is disconnected
MAX_BEHIND = 1 << 20
# once the container has exited, how long a client gets to take the rest of its output
FLUSH_TIMEOUT_S = 5.0

ENDED = "ended"  # the container's output ended: the client got all of it
DETACHED = "detached"  # the client closed its input (detach keys, or it went away)
TOO_SLOW = "too slow"  # fell MAX_BEHIND behind: disconnected
GONE = "gone"  # its output FIFO broke: the client went away


def _close(fd: int) -> None:
    # wake any task waiting on the fd first: closing under a waiter is an error in trio
    trio.lowlevel.notify_closing(fd)
    os.close(fd)


class Client:
    """One attached client: the FIFO we read its keystrokes from, the FIFO we write the
    container's output to (either may be absent), and the output it has not taken yet."""

    def __init__(self, in_fd: int | None, out_fd: int | None) -> None:
        self.in_fd = in_fd
        self.out_fd = out_fd
        self.buf = bytearray()
        self.reason = ""
        self.gone = trio.Event()
        self._ready = trio.Event()
        for fd in (in_fd, out_fd):
            if fd is not None:
                os.set_blocking(fd, False)

    def push(self, data: bytes) -> None:
        """Queue output for this client; never waits."""
        if self.reason or self.out_fd is None:
            return
        if not self.buf:
            try:
                n = os.write(self.out_fd, data)
            except BlockingIOError:
                n = 0
            except OSError:
                self.drop(GONE)
                return
            data = data[n:]
            if not data:
                return
        if len(self.buf) + len(data) > MAX_BEHIND:
            self.drop(TOO_SLOW)
            return
        self.buf += data
        self._ready.set()

    def end(self) -> None:
        """The container's output is over: flush what is queued, then close."""
        if not self.reason:
            self.reason = ENDED
            self._ready.set()
            if not self.buf:
                self._close_all()

    def drop(self, reason: str) -> None:
        if self.gone.is_set() or (self.reason and self.reason != ENDED):
            return
        self.reason = reason
        self.buf.clear()
        self._close_all()

    def _close_all(self) -> None:
        for attr in ("in_fd", "out_fd"):
            fd = getattr(self, attr)
            if fd is not None:
                setattr(self, attr, None)
                _close(fd)
        self.gone.set()

    async def send_loop(self) -> None:
        """Drain the queued output into the client's FIFO as it makes room."""
        while not self.gone.is_set():
            if not self.buf:
                await self._ready.wait()
                self._ready = trio.Event()
                continue
            fd = self.out_fd
            if fd is None:
                return
            try:
                await trio.lowlevel.wait_writable(fd)
            except trio.ClosedResourceError:
                return
            try:
                n = os.write(fd, self.buf[:65536])
            except BlockingIOError:
                continue
            except OSError:
                self.drop(GONE)
                return
            del self.buf[:n]
            if not self.buf and self.reason == ENDED:
                self._close_all()


class Console:
    """The supervisor's end of a container's stdin: a PTY master (tty) or a pipe (-i)."""

    def __init__(self, fd: int | None, tty: bool, interactive: bool = True) -> None:
        self.fd = fd  # where input goes; None once closed
        self.tty = tty
        self.interactive = interactive  # -t without -i: a terminal for output only
        self.clients: set[Client] = set()
        self.ended = False
        self._write_lock = trio.Lock()
        self._winsize_seq = -1
        # called when a client's EOF closes the container's stdin (-i): another holder of the
        # pipe's write end (the zygote) must close its copy too
        self.on_input_eof: Callable[[], None] | None = None
        if fd is not None:
            os.set_blocking(fd, False)

    # ---- output ------------------------------------------------------------------------
    def broadcast(self, data: bytes) -> None:
        for client in list(self.clients):
            client.push(data)

    def close(self) -> None:
        """The container's output ended: finish every client and close our input end."""
        self.ended = True
        for client in list(self.clients):
            client.end()
        self.close_input()

    # ---- input -------------------------------------------------------------------------
    def close_input(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            _close(fd)

    async def write_input(self, data: bytes) -> None:
        if not self.interactive:
            return
        async with self._write_lock:
            view = memoryview(data)
            while view:
                fd = self.fd
                if fd is None:
                    return
                try:
                    n = os.write(fd, view)
                except BlockingIOError:
                    try:
                        await trio.lowlevel.wait_writable(fd)
                    except trio.ClosedResourceError:
                        return
                    continue
                except OSError:
                    return  # EIO/EPIPE: the container's side is gone
                view = view[n:]

    def resize(self, rows: int, cols: int, seq: int = 0) -> None:
        """Set the terminal size; the kernel sends SIGWINCH to the foreground job. Requests
        race each other on the control FIFO, so an older one (by its client's monotonic
        clock, which all clients on this machine share) never undoes a newer one."""
        if not self.tty or self.fd is None or seq < self._winsize_seq:
            return
        self._winsize_seq = seq
        with contextlib.suppress(OSError):
            fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    # ---- one client ------------------------------------------------------------------
    def add(self, client: Client) -> None:
        """Start sending output to a client (before anything can await, so it misses none)."""
        self.clients.add(client)
        if self.ended:
            client.end()

    async def serve(self, client: Client, container_done: trio.Event) -> str:
        """Relay for one client until it detaches, falls behind, or the container's output
        ends and it has taken all of it. Returns why it stopped."""
        self.add(client)
        try:
            async with trio.open_nursery() as n:
                n.start_soon(client.send_loop)
                if client.in_fd is not None:
                    n.start_soon(self._input_loop, client)
                n.start_soon(self._end_with, client, container_done)
                await client.gone.wait()
                n.cancel_scope.cancel()
        finally:
            self.clients.discard(client)
            client.drop(client.reason or GONE)
        return client.reason

    async def _end_with(self, client: Client, container_done: trio.Event) -> None:
        await container_done.wait()
        client.end()
        # a client that takes its last output too slowly is cut off, not waited for forever
        await trio.sleep(FLUSH_TIMEOUT_S)
        client.drop(TOO_SLOW)

    async def _input_loop(self, client: Client) -> None:
        while True:
            fd = client.in_fd
            if fd is None:
                return
            try:
                await trio.lowlevel.wait_readable(fd)
            except trio.ClosedResourceError:
                return
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue
            except OSError as e:
                if e.errno != errno.EBADF:
                    client.drop(GONE)
                return
            if data:
                await self.write_input(data)
                continue
            # EOF: the client closed its input end
            if self.tty:
                client.drop(DETACHED)  # a terminal is never "ended" by one client leaving
            else:
                self.close_input()  # -i: EOF on the client's stdin is EOF on the container's
                if self.on_input_eof is not None:
                    self.on_input_eof()
                if client.out_fd is None:
                    return  # nothing else to relay; the request waits for the exit
                client.in_fd = None
                _close(fd)
            return
