"""The hand-packed rtnetlink client and the namespace socket opener, on the real kernel.

Links are veths named rt + random hex, made in namespaces these tests create (processes
started with `unshare --net`) or on the host for a moment; addresses are in 10.234.129.0/24,
inside those namespaces only. Every namespace dies with its process at the end, and with it
whatever was made in it.
"""

from __future__ import annotations

import errno
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from plugins.network.netns import current_netns, socket_in
from plugins.network.rtnl import (
    NetlinkError,
    Rtnl,
    add_addr,
    add_default_route,
    set_link,
)

HOST_NS = os.stat("/proc/self/ns/net").st_ino
REPO = Path(__file__).resolve().parent.parent


def linkname() -> str:
    return "rt" + secrets.token_hex(4)


@pytest.fixture
def netns() -> Iterator[Callable[[], tuple[int, int]]]:
    """Fresh network namespaces: (pid of the process holding it, an fd open on it)."""
    procs: list[subprocess.Popen[bytes]] = []
    fds: list[int] = []

    def make() -> tuple[int, int]:
        p = subprocess.Popen(["unshare", "--net", "--", "sleep", "60"])
        procs.append(p)
        deadline = time.monotonic() + 5
        while os.stat(f"/proc/{p.pid}/ns/net").st_ino == HOST_NS:
            assert time.monotonic() < deadline, "unshare did not happen"
            time.sleep(0.002)
        fd = os.open(f"/proc/{p.pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        fds.append(fd)
        return p.pid, fd

    yield make
    for fd in fds:
        os.close(fd)
    for p in procs:
        p.kill()
        p.wait()


def in_ns(pid: int, *argv: str) -> str:
    return subprocess.run(
        ["nsenter", "-t", str(pid), "-n", *argv], capture_output=True, text=True, check=True
    ).stdout


def threads_in_host_ns() -> bool:
    return all(
        os.stat(f"/proc/self/task/{tid}/ns/net").st_ino == HOST_NS
        for tid in os.listdir("/proc/self/task")
    )


def test_socket_in_opens_there_and_every_thread_stays_home(
    netns: Callable[[], tuple[int, int]],
) -> None:
    _pid, fd = netns()
    with Rtnl(fd) as inside, Rtnl() as host:
        assert inside.link_names() == {"lo"}
        assert "lo" in host.link_names() and len(host.link_names()) > 1
    assert current_netns() == HOST_NS
    assert threads_in_host_ns()  # the helper thread too, idle between jobs


def test_socket_in_refuses_what_is_no_namespace(netns: Callable[[], tuple[int, int]]) -> None:
    with open("/dev/null") as f, pytest.raises(OSError) as e:
        socket_in(f.fileno(), socket.AF_NETLINK, socket.SOCK_RAW)
    assert e.value.errno == errno.EINVAL
    assert threads_in_host_ns()
    _pid, fd = netns()  # the helper still serves
    with Rtnl(fd) as inside:
        assert inside.link_names() == {"lo"}


def test_socket_in_from_many_threads(netns: Callable[[], tuple[int, int]]) -> None:
    spaces = [netns() for _ in range(6)]

    def make_pair(i: int) -> None:
        with Rtnl(spaces[i % len(spaces)][1]) as inside:
            inside.add_veth(f"v{i}", f"p{i}")

    with ThreadPoolExecutor(12) as pool:
        list(pool.map(make_pair, range(24)))
    for n, (_pid, fd) in enumerate(spaces):  # each namespace got its own pairs, and only them
        mine = {f"{k}{i}" for i in range(n, 24, len(spaces)) for k in "vp"}
        with Rtnl(fd) as inside:
            assert inside.link_names() == {"lo"} | mine
    assert not {f"v{i}" for i in range(24)} & set(os.listdir("/sys/class/net"))
    assert threads_in_host_ns()


def test_veth_into_a_namespace_then_configure_it_in_one_batch(
    netns: Callable[[], tuple[int, int]],
) -> None:
    pid, fd = netns()
    name = linkname()
    with Rtnl() as host, Rtnl(fd) as inside:
        host.add_veth(name, "eth0", peer_netns_fd=fd, up=True)
        try:
            assert Path(f"/sys/class/net/{name}").exists()
            assert int(Path(f"/sys/class/net/{name}/flags").read_text(), 16) & 1  # IFF_UP
            idx = inside.link_index("eth0")
            assert idx is not None and inside.link_index("nothere") is None
            assert not inside.has_default_route()
            inside.batch(
                add_addr(idx, "10.234.129.2", 24),
                set_link("eth0", up=True),
                set_link("lo", up=True),
                add_default_route("10.234.129.1"),
            )
            assert inside.has_default_route()
            assert "inet 10.234.129.2/24 scope global eth0" in in_ns(pid, "ip", "-o", "addr")
            assert "default via 10.234.129.1 dev eth0 proto static" in in_ns(pid, "ip", "route")
            assert "UP" in in_ns(pid, "ip", "link", "show", "eth0")
            with pytest.raises(NetlinkError) as e:
                host.add_veth(name, "eth0", peer_netns_fd=fd)
            assert e.value.errno == errno.EEXIST
        finally:
            assert host.del_link(name)
        assert not host.del_link(name)  # gone: False, not an error
        assert "eth0" not in inside.link_names()  # the peer went with it


def test_batch_reports_the_first_refusal_and_the_socket_stays_in_step(
    netns: Callable[[], tuple[int, int]],
) -> None:
    pid, fd = netns()
    with Rtnl(fd) as inside:
        inside.add_veth("a0", "b0")
        bogus = 999999
        with pytest.raises(NetlinkError) as e:
            inside.batch(
                set_link("a0", up=True),
                add_addr(bogus, "10.234.129.9", 24),  # ENODEV
                set_link("nosuchlink", up=True),  # ENODEV too: only the first is raised
                set_link("b0", up=True),  # still carried out, as the kernel does
            )
        assert e.value.errno == errno.ENODEV
        # the requests around the refusals were carried out: both ends are up
        assert "state UP" in in_ns(pid, "ip", "link", "show", "a0")
        assert "state UP" in in_ns(pid, "ip", "link", "show", "b0")
        # every ack was read: the next request gets its own answer, not a stale one
        assert inside.link_names() == {"lo", "a0", "b0"}
        assert inside.link_index("b0") is not None


def test_dump_over_many_datagrams(netns: Callable[[], tuple[int, int]]) -> None:
    _pid, fd = netns()
    with Rtnl(fd) as inside:
        for i in range(150):
            inside.add_veth(f"x{i}", f"y{i}")
        names = inside.link_names()
    assert len(names) == 301 and {"x0", "y149", "lo"} <= names


def test_wait_link_gone(netns: Callable[[], tuple[int, int]]) -> None:
    with Rtnl() as host:
        assert host.wait_link_gone(linkname(), 0.01)  # never there

        # the namespace dies with its last process (and fd): the kernel takes the pair
        p = subprocess.Popen(["unshare", "--net", "--", "sleep", "60"])
        try:
            while os.stat(f"/proc/{p.pid}/ns/net").st_ino == HOST_NS:
                time.sleep(0.002)
            fd = os.open(f"/proc/{p.pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            name = linkname()
            try:
                host.add_veth(name, "eth0", peer_netns_fd=fd, up=True)
            finally:
                os.close(fd)
        finally:
            p.kill()
            p.wait()
        t0 = time.monotonic()
        assert host.wait_link_gone(name, 10)
        assert time.monotonic() - t0 < 5
        assert not Path(f"/sys/class/net/{name}").exists()

        # a namespace someone still holds keeps it: False after the timeout
        _pid, fd = netns()
        kept = linkname()
        host.add_veth(kept, "eth0", peer_netns_fd=fd)
        try:
            t0 = time.monotonic()
            assert not host.wait_link_gone(kept, 0.2)
            assert time.monotonic() - t0 >= 0.2
        finally:
            host.del_link(kept)

        # deleted meanwhile from another thread: noticed by its notification
        _pid, fd = netns()
        other = linkname()
        host.add_veth(other, "eth0", peer_netns_fd=fd)

        def delete() -> None:
            with Rtnl() as nl:
                nl.del_link(other)

        timer = threading.Timer(0.05, delete)
        timer.start()
        try:
            assert host.wait_link_gone(other, 10)
        finally:
            timer.join()


def test_the_bridge_driver_needs_no_pyroute2() -> None:
    code = (
        "import sys, plugins.network.bridge;"
        "print('pyroute2' in sys.modules, 'asyncio' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True)  # fmt: skip
    assert out.stdout.split() == ["False", "False"]
