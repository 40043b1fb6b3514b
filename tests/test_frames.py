"""basin.supervisor.frames.ClientOutput: order, backpressure, and a client that goes away.

The FIFO is replaced by a stand-in whose writes can be held up or broken: what is under test
is the queue's logic; tests/test_compiled_client.py drives the real thing end to end."""

from __future__ import annotations

from typing import cast

import trio
import trio.testing

from basin.supervisor.control import Reply
from basin.supervisor.frames import LIMIT, ClientOutput, frame


class SlowReply:
    """Takes writes only while `open` is set; `break_()` makes it gone, as a dead client."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.open = trio.Event()
        self.gone = False

    async def send_raw(self, data: bytes) -> None:
        await self.open.wait()
        if not self.gone:
            self.data += data

    def break_(self) -> None:
        self.gone = True
        self.open.set()


def _output(reply: SlowReply) -> ClientOutput:
    return ClientOutput(cast(Reply, reply))


def test_frames_arrive_in_order_and_end_with_the_last() -> None:
    async def main() -> None:
        reply = SlowReply()
        reply.open.set()
        out = _output(reply)
        async with trio.open_nursery() as n:
            n.start_soon(out.run)
            assert not out.push("stdout", b"one\n")
            assert not out.push("stderr", b"two")
            out.put(b"x", b"3")
            out.close()
            out.put(b"o", b"after close")  # ignored: nothing follows the exit code
        assert bytes(reply.data) == frame(b"o", b"one\n") + frame(b"e", b"two") + frame(b"x", b"3")
        assert frame(b"o", b"") == b"o0\n"

    trio.run(main)


def test_a_full_queue_holds_the_relay_until_the_client_reads() -> None:
    async def main() -> None:
        reply = SlowReply()
        out = _output(reply)
        chunk = b"x" * (LIMIT // 4)
        released = trio.Event()

        async def relay() -> None:
            for _ in range(12):
                if out.push("stdout", chunk):
                    await out.wait_room()
            released.set()

        async with trio.open_nursery() as n:
            n.start_soon(out.run)
            n.start_soon(relay)
            await trio.testing.wait_all_tasks_blocked()
            assert not released.is_set()  # the client takes nothing: the relay waits
            reply.open.set()
            await released.wait()
            out.close()
        assert len(reply.data) == 12 * len(frame(b"o", chunk))

    trio.run(main)


def test_after_the_exit_nothing_waits_for_a_stopped_client() -> None:
    async def main() -> None:
        reply = SlowReply()
        out = _output(reply)
        out.unbound()  # the container exited: its last output must not block its end
        with trio.fail_after(5):
            for _ in range(12):
                assert not out.push("stdout", b"y" * (LIMIT // 4))
                await out.wait_room()

    trio.run(main)


def test_a_client_that_went_away_holds_nothing_back() -> None:
    async def main() -> None:
        reply = SlowReply()
        out = _output(reply)
        async with trio.open_nursery() as n:
            n.start_soon(out.run)
            out.push("stdout", b"z")
            await trio.testing.wait_all_tasks_blocked()  # the sender holds it, blocked
            for _ in range(8):
                out.push("stdout", b"z" * (LIMIT // 4))
            waiter_done = trio.Event()

            async def waiter() -> None:
                await out.wait_room()
                waiter_done.set()

            n.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            assert not waiter_done.is_set()
            reply.break_()
            with trio.fail_after(5):
                await waiter_done.wait()
            assert not out.push("stdout", b"more")  # dropped, never waits
        assert len(reply.data) == 0

    trio.run(main)
