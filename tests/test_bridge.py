"""The bridge driver against the real kernel: bridges, veths, network namespaces, iptables.

Traffic stays between the host, bridges this file makes and namespaces it makes. Each test
uses its own subnet in 10.234.100-119.0/24 (and 127, 129) and bridges named bt + random
hex, and cleans up after itself even when it fails (fixtures below), so the leak check sees
nothing.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pyroute2 import IPRoute

from basin.errors import BasinError, Conflict, NotFound
from basin.network import PortMapping
from basin.paths import Paths
from plugins.network import iptables
from plugins.network.bridge import BridgeDriver, net_marker, veth_name
from plugins.network.netns import current_netns, run_in_netns
from tests.netutil import free_port

BUSYBOX = "/bin/busybox"
HOST_NS = os.stat("/proc/self/ns/net").st_ino


def rules() -> set[str]:
    """basin's rules and chains: other tools (podman in a neighbour's test) may change
    theirs meanwhile."""
    text = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    return {
        line
        for line in text.splitlines()
        if line.startswith(("-A", ":BASIN")) and ("basin" in line or "BASIN" in line)
    }


def links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def netname() -> str:
    return "bt" + secrets.token_hex(4)


def in_ns(pid: int, *argv: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nsenter", "-t", str(pid), "-n", *argv], capture_output=True, text=True, timeout=timeout
    )


def wget(url: str, pid: int | None = None) -> str:
    # busybox 1.35's wget -T segfaults here: bound it with timeout(1) instead
    argv = ["timeout", "5", BUSYBOX, "wget", "-qO-", url]
    if pid is not None:
        argv = ["nsenter", "-t", str(pid), "-n", *argv]
    return subprocess.run(argv, capture_output=True, text=True).stdout


@pytest.fixture
def driver(tmp_path: Path) -> BridgeDriver:
    return BridgeDriver(Paths(tmp_path, tmp_path / "run"))


@pytest.fixture
def network(driver: BridgeDriver) -> Iterator[Callable[..., dict[str, object]]]:
    """Create networks; afterwards detach whatever is attached and remove them, then sweep
    rules and bridges by name in case the driver itself is what failed."""
    made: list[tuple[str, str]] = []

    def create(
        subnet: str, gateway: str | None = None, name: str | None = None
    ) -> dict[str, object]:
        name = name or netname()
        made.append((name, subnet))
        return driver.create(name, subnet, gateway)

    yield create
    for name, _ in made:
        try:
            for cid in driver.ipam.get(name)["allocations"]:
                driver.detach(name, cid)
            driver.remove(name)
        except NotFound:
            pass
        iptables.cleanup_rules(net_marker(name))
    with iptables.host_lock():
        iptables.prune()
    with IPRoute() as ipr:
        for name, _ in made:
            for idx in ipr.link_lookup(ifname=name):
                ipr.link("del", index=idx)


@pytest.fixture
def spawn() -> Iterator[Callable[..., int]]:
    """Start processes in fresh network namespaces ("containers"); kill them afterwards."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*argv: str) -> int:
        p = subprocess.Popen(["unshare", "--net", "--", *(argv or (BUSYBOX, "sleep", "60"))])
        procs.append(p)
        # Popen returns before unshare ran: attaching now would configure the host
        deadline = time.monotonic() + 5
        while os.stat(f"/proc/{p.pid}/ns/net").st_ino == HOST_NS:
            assert time.monotonic() < deadline, "unshare did not happen"
            time.sleep(0.002)
        return p.pid

    yield start
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


def host_addrs() -> set[str]:
    with IPRoute() as ipr:
        return {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(family=socket.AF_INET)}


# --- tests ---


def test_create_and_remove_leave_nothing(driver: BridgeDriver, tmp_path: Path) -> None:
    before_rules, before_links = rules(), links()
    name = netname()
    rec = driver.create(name, "10.234.100.0/24", None)
    try:
        assert rec["bridge"] == name and rec["gateway"] == "10.234.100.1"
        assert (tmp_path / "networks" / f"{name}.json").exists()
        assert Path(f"/sys/class/net/{name}/bridge").is_dir()
        assert Path(f"/proc/sys/net/ipv4/conf/{name}/route_localnet").read_text() == "1\n"
        assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == "1\n"
        assert "10.234.100.1" in host_addrs()
        added = rules() - before_rules
        assert any("MASQUERADE" in r and "10.234.100.0/24" in r for r in added)
        assert ":BASIN-NAT - [0:0]" in rules()
    finally:
        driver.remove(name)
    assert rules() == before_rules
    assert links() == before_links
    assert not (tmp_path / "networks" / f"{name}.json").exists()
    with pytest.raises(NotFound):
        driver.remove(name)


def test_long_name_gets_hashed_bridge(driver: BridgeDriver) -> None:
    name = netname() + "-with-a-long-name"
    rec = driver.create(name, "10.234.101.0/28", "10.234.101.14")
    try:
        assert str(rec["bridge"]).startswith("basin-") and len(str(rec["bridge"])) == 15
        assert Path(f"/sys/class/net/{rec['bridge']}/bridge").is_dir()
    finally:
        driver.remove(name)
    assert not Path(f"/sys/class/net/{rec['bridge']}").exists()


def test_two_containers_talk(
    driver: BridgeDriver, network: Callable[..., dict[str, object]], spawn: Callable[..., int]
) -> None:
    name = str(network("10.234.102.0/24")["name"])
    host_before = host_addrs()
    a, b = spawn(), spawn()
    ea = driver.attach(name, "ctra0001", a, [])
    eb = driver.attach(name, "ctrb0002", b, [])
    assert (ea.ip, eb.ip, ea.prefixlen, ea.gateway) == (
        "10.234.102.2",
        "10.234.102.3",
        24,
        "10.234.102.1",
    )
    assert ea.host_veth == veth_name(name, "ctra0001")
    assert Path(f"/sys/class/net/{ea.host_veth}/master").resolve().name == name

    # configured inside, not on the host
    assert host_addrs() == host_before
    assert "10.234.102.2/24" in in_ns(a, "ip", "-o", "addr", "show", "eth0").stdout
    assert "default via 10.234.102.1 dev eth0" in in_ns(a, "ip", "route").stdout
    assert "UP" in in_ns(a, "ip", "link", "show", "lo").stdout

    assert in_ns(a, BUSYBOX, "ping", "-c1", "-W2", eb.ip).returncode == 0
    assert in_ns(a, BUSYBOX, "ping", "-c1", "-W2", ea.gateway).returncode == 0
    assert in_ns(b, BUSYBOX, "ping", "-c1", "-W2", ea.ip).returncode == 0

    with pytest.raises(Conflict, match=r"has attached containers: ctra0001, ctrb0002"):
        driver.remove(name)
    with pytest.raises(Conflict, match="already attached"):
        driver.attach(name, "ctra0001", a, [])

    driver.detach(name, "ctra0001")
    driver.detach(name, "ctra0001")  # idempotent
    assert not Path(f"/sys/class/net/{ea.host_veth}").exists()
    assert "eth0" not in in_ns(a, "ip", "-o", "link").stdout  # its end went with it
    driver.detach(name, "ctrb0002")
    driver.remove(name)


def test_published_port(
    driver: BridgeDriver,
    network: Callable[..., dict[str, object]],
    spawn: Callable[..., int],
    tmp_path: Path,
) -> None:
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("hello from basin\n")
    before = rules()
    name = str(network("10.234.103.0/24")["name"])
    net_rules = rules()
    pid = spawn(BUSYBOX, "httpd", "-f", "-p", "8080", "-h", str(www))
    other = spawn()
    hport = free_port()
    att = driver.attach(name, "web00001", pid, [PortMapping(hport, 8080, "tcp")])
    driver.attach(name, "client01", other, [])

    urls = [f"http://127.0.0.1:{hport}/", f"http://{att.gateway}:{hport}/"]
    deadline = time.monotonic() + 5
    while wget(urls[0]) != "hello from basin\n":  # httpd may still be starting
        assert time.monotonic() < deadline, "published port never answered"
        time.sleep(0.05)
    assert wget(urls[1]) == "hello from basin\n"
    # another container through the host's published port (br_netfilter hairpin)
    assert wget(urls[1], pid=other) == "hello from basin\n"

    # the same host port again: refused, and the failed attach leaves nothing behind
    third = spawn()
    links_before = links()
    with pytest.raises(Conflict, match=rf"host port {hport}/tcp is already published"):
        driver.attach(name, "thief001", third, [PortMapping(hport, 80)])
    assert links() == links_before
    assert "thief001" not in driver.ipam.get(name)["allocations"]
    # udp on the same number is a different port
    driver.attach(name, "udp00001", third, [PortMapping(hport, 53, "udp")])
    driver.detach(name, "udp00001")

    driver.detach(name, "web00001")
    assert rules() == net_rules
    assert wget(urls[0]) == ""
    driver.detach(name, "client01")
    driver.remove(name)
    assert rules() == before


def test_thirty_parallel_attaches(
    driver: BridgeDriver, network: Callable[..., dict[str, object]], spawn: Callable[..., int]
) -> None:
    name = str(network("10.234.104.0/24")["name"])
    pids = [spawn() for _ in range(30)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(30) as pool:
        atts = list(pool.map(lambda i: driver.attach(name, f"par{i:05d}", pids[i], []), range(30)))
    elapsed = time.perf_counter() - t0
    assert len({a.ip for a in atts}) == 30
    assert len({a.host_veth for a in atts}) == 30
    assert set(driver.ipam.get(name)["allocations"].values()) == {a.ip for a in atts}
    for a, pid in zip(atts, pids, strict=True):
        assert Path(f"/sys/class/net/{a.host_veth}/master").resolve().name == name
        assert f"{a.ip}/24" in in_ns(pid, "ip", "-o", "addr", "show", "eth0").stdout
    assert in_ns(pids[0], BUSYBOX, "ping", "-c1", "-W2", atts[29].ip).returncode == 0
    print(f"\n30 parallel attaches: {elapsed * 1000:.0f} ms")
    with ThreadPoolExecutor(30) as pool:
        list(pool.map(lambda i: driver.detach(name, f"par{i:05d}"), range(30)))
    assert not any(Path(f"/sys/class/net/{a.host_veth}").exists() for a in atts)
    driver.remove(name)


def test_full_subnet(
    driver: BridgeDriver, network: Callable[..., dict[str, object]], spawn: Callable[..., int]
) -> None:
    name = str(network("10.234.105.0/29")["name"])
    for i in range(5):  # .2 - .6: .0 network, .1 gateway, .7 broadcast
        driver.attach(name, f"full{i}", spawn(), [])
    links_before = links()
    with pytest.raises(BasinError, match=rf"^network {name}: no free address in 10.234.105.0/29$"):
        driver.attach(name, "full5", spawn(), [])
    assert links() == links_before
    driver.detach(name, "full2")
    assert driver.attach(name, "full6", spawn(), []).ip == "10.234.105.4"


def test_bad_input_creates_nothing(
    driver: BridgeDriver,
    network: Callable[..., dict[str, object]],
    spawn: Callable[..., int],
    tmp_path: Path,
) -> None:
    name = str(network("10.234.106.0/24")["name"])
    # a route of the host's that basin did not make: our own bridge, not a basin network
    foreign = netname()
    with IPRoute() as ipr:
        ipr.link("add", ifname=foreign, kind="bridge")
        try:
            idx = ipr.link_lookup(ifname=foreign)[0]
            ipr.addr("add", index=idx, address="10.234.107.1", prefixlen=24)
            ipr.link("set", index=idx, state="up")
            before = (rules(), links(), sorted(os.listdir(tmp_path / "networks")))
            bad_creates: list[tuple[str, str, str | None, type[BasinError], str]] = [
                ("-bad", "10.234.108.0/24", None, BasinError, "invalid network name"),
                (netname(), "10.234.108.1/24", None, BasinError, "host bits set"),
                (netname(), "10.234.108.0/42", None, BasinError, "invalid subnet"),
                (netname(), "10.234.108.0/24", "10.234.109.1", BasinError, "outside subnet"),
                (netname(), "10.234.106.128/25", None, Conflict, f"overlaps network {name}"),
                (netname(), "10.234.107.0/25", None, Conflict, "overlaps host route 10.234.107"),
                (name, "10.234.108.0/24", None, Conflict, "already exists"),
                (foreign, "10.234.108.0/24", None, Conflict, f"interface {foreign} already"),
            ]
            for net, subnet, gw, exc, msg in bad_creates:
                with pytest.raises(exc, match=msg):
                    driver.create(net, subnet, gw)
            p80 = PortMapping(8000, 80)
            bad_attaches: list[tuple[str, str, int, list[PortMapping], type[BasinError], str]] = [
                ("nonet", "c1", spawn(), [], NotFound, "no such network"),
                (name, "c1", os.getpid(), [], BasinError, "host's network namespace"),
                (name, "c/1", spawn(), [], BasinError, "invalid container name"),
                (name, "c1", spawn(), [PortMapping(0, 80)], BasinError, "invalid port 0"),
                (name, "c1", spawn(), [PortMapping(80, 80, "sctp")], BasinError, "protocol"),
                (name, "c1", spawn(), [p80, p80], BasinError, "given twice"),
            ]
            for net, cid, pid, ports, exc, msg in bad_attaches:
                with pytest.raises(exc, match=msg):
                    driver.attach(net, cid, pid, ports)
            assert (rules(), links(), sorted(os.listdir(tmp_path / "networks"))) == before
            assert driver.ipam.get(name)["allocations"] == {}
        finally:
            ipr.link("del", index=ipr.link_lookup(ifname=foreign)[0])


def test_chains_go_with_the_last_network(
    driver: BridgeDriver, network: Callable[..., dict[str, object]]
) -> None:
    # other basin networks on this host (another test run) would keep the chains: not here
    if any(":BASIN" in r for r in rules()):
        pytest.skip("basin chains already in use on this host")
    first = str(network("10.234.110.0/24")["name"])
    second = str(network("10.234.111.0/24")["name"])
    driver.remove(first)
    assert {":BASIN-NAT - [0:0]", ":BASIN-POSTROUTING - [0:0]", ":BASIN-FWD - [0:0]"} <= rules()
    assert not any(first in r for r in rules())
    driver.remove(second)
    assert not any("BASIN" in r or "basin" in r for r in rules())


def test_cleanup_rules_by_marker(
    driver: BridgeDriver, network: Callable[..., dict[str, object]], spawn: Callable[..., int]
) -> None:
    """A crashed supervisor leaves rules behind: the network's marker finds all of them,
    the container's as well."""
    name = str(network("10.234.112.0/24")["name"])
    driver.attach(name, "crash001", spawn(), [PortMapping(free_port(), 80)])
    assert any(f"basin:net={name}:ctr=crash001" in r for r in rules())
    assert iptables.cleanup_rules(net_marker(name)) == 6  # 2 masquerade, 2 forward, 1 dnat, 1 fwd
    assert not any(name in r for r in rules())
    assert iptables.cleanup_rules(net_marker(name)) == 0


def test_run_in_netns_moves_only_its_thread(spawn: Callable[..., int]) -> None:
    pid = spawn()
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    try:
        inside = run_in_netns(fd, current_netns)
        assert inside == os.fstat(fd).st_ino != HOST_NS
        assert current_netns() == HOST_NS
        with pytest.raises(ZeroDivisionError):
            run_in_netns(fd, lambda: 1 // 0)
        assert current_netns() == HOST_NS
    finally:
        os.close(fd)


def test_timings(
    driver: BridgeDriver, network: Callable[..., dict[str, object]], spawn: Callable[..., int]
) -> None:
    """Not an assertion on speed; prints what attach costs (run with -s)."""
    name = str(network("10.234.113.0/24")["name"])
    plumb, rule = [], []
    for i in range(10):
        driver.attach(name, f"time{i}", spawn(), [PortMapping(free_port(), 80)])
        plumb.append(driver.timings["plumb"])
        rule.append(driver.timings["rules"])
    for i in range(10):
        driver.detach(name, f"time{i}")
    plumb.sort()
    rule.sort()
    print(
        f"\nattach veth+addr+route: median {plumb[5] * 1000:.1f} ms (min {plumb[0] * 1000:.1f}, "
        f"max {plumb[-1] * 1000:.1f}); port rules: median {rule[5] * 1000:.1f} ms"
    )


def test_detach_after_the_container_died(
    driver: BridgeDriver, network: Callable[..., dict[str, object]]
) -> None:
    """The namespace dies with its last process and takes the veth pair along (the kernel
    does it asynchronously): detach must still clean up and not fail."""
    name = str(network("10.234.114.0/24")["name"])
    proc = subprocess.Popen(["unshare", "--net", "--", BUSYBOX, "sleep", "60"])
    try:
        while os.stat(f"/proc/{proc.pid}/ns/net").st_ino == HOST_NS:
            time.sleep(0.002)
        att = driver.attach(name, "dead0001", proc.pid, [PortMapping(free_port(), 80)])
    finally:
        proc.kill()
        proc.wait()
    driver.detach(name, "dead0001")
    assert not any("dead0001" in r for r in rules())
    assert driver.ipam.get(name)["allocations"] == {}
    deadline = time.monotonic() + 5
    while Path(f"/sys/class/net/{att.host_veth}").exists():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with pytest.raises(NotFound, match="no such process"):
        driver.attach(name, "dead0001", proc.pid, [])
    driver.remove(name)


def test_from_trio_worker_threads(
    driver: BridgeDriver, network: Callable[..., dict[str, object]], spawn: Callable[..., int]
) -> None:
    """How the supervisor will call the driver: sync pyroute2 in trio's (reused) worker
    threads, several at once, while the trio loop keeps running."""
    import trio

    name = str(network("10.234.115.0/24")["name"])
    pids = [spawn() for _ in range(4)]
    ips: list[str] = []

    async def main() -> None:
        async def one(i: int) -> None:
            att = await trio.to_thread.run_sync(driver.attach, name, f"trio{i}", pids[i], [])
            ips.append(att.ip)

        async with trio.open_nursery() as nursery:
            for i in range(4):
                nursery.start_soon(one, i)
        for i in range(4):
            await trio.to_thread.run_sync(driver.detach, name, f"trio{i}")

    trio.run(main)
    assert len(set(ips)) == 4
    assert current_netns() == HOST_NS


def test_leftover_veth_is_reported_not_deleted(
    driver: BridgeDriver, network: Callable[..., dict[str, object]], spawn: Callable[..., int]
) -> None:
    name = str(network("10.234.117.0/24")["name"])
    stale = veth_name(name, "stale001")
    with IPRoute() as ipr:
        ipr.link("add", ifname=stale, kind="veth", peer={"ifname": "bt" + secrets.token_hex(4)})
    pid = spawn()
    with pytest.raises(Conflict, match=f"interface {stale} already exists"):
        driver.attach(name, "stale001", pid, [])
    assert Path(f"/sys/class/net/{stale}").exists()  # not the failed attach's to delete
    assert driver.ipam.get(name)["allocations"] == {}
    driver.detach(name, "stale001")  # what the message tells the user to do
    assert not Path(f"/sys/class/net/{stale}").exists()
    driver.attach(name, "stale001", pid, [])


def test_same_name_in_another_root_leaves_the_first_alone(
    driver: BridgeDriver, network: Callable[..., dict[str, object]], tmp_path: Path
) -> None:
    name = str(network("10.234.118.0/24")["name"])
    mine = rules()
    other = BridgeDriver(Paths(tmp_path / "other", tmp_path / "other-run"))
    with pytest.raises(Conflict, match=f"interface {name} already exists"):
        other.create(name, "10.234.119.0/24", None)
    assert rules() == mine
    assert Path(f"/sys/class/net/{name}").exists()


def test_detach_exited_lets_the_namespace_take_the_veth(
    driver: BridgeDriver, network: Callable[..., dict[str, object]]
) -> None:
    """What the supervisor does once a container has exited: no delete of its own (the
    namespace's death does it), the address released once the veth is gone."""
    name = str(network("10.234.116.0/24")["name"])
    proc = subprocess.Popen(["unshare", "--net", "--", BUSYBOX, "sleep", "60"])
    try:
        while os.stat(f"/proc/{proc.pid}/ns/net").st_ino == HOST_NS:
            time.sleep(0.002)
        att = driver.attach(name, "gone0001", proc.pid, [])
    finally:
        proc.kill()
        proc.wait()
    assert driver.ipam.get(name)["allocations"] == {"gone0001": att.ip}
    t0 = time.monotonic()
    driver.detach_exited(name, "gone0001", grace=10)
    assert time.monotonic() - t0 < 5  # the namespace's own end, not the grace period
    assert not Path(f"/sys/class/net/{att.host_veth}").exists()
    assert driver.ipam.get(name)["allocations"] == {}
    driver.detach_exited(name, "gone0001")  # idempotent
    driver.remove(name)


def test_detach_exited_deletes_what_a_held_namespace_keeps(
    driver: BridgeDriver, network: Callable[..., dict[str, object]], spawn: Callable[..., int]
) -> None:
    name = str(network("10.234.116.0/24")["name"])
    att = driver.attach(name, "held0001", spawn(), [])  # still running: its netns lives
    t0 = time.monotonic()
    driver.detach_exited(name, "held0001", grace=0.2)
    assert time.monotonic() - t0 >= 0.2
    assert not Path(f"/sys/class/net/{att.host_veth}").exists()
    assert driver.ipam.get(name)["allocations"] == {}
    driver.remove(name)


def test_unpublish_frees_the_host_port_and_leaves_the_rest(
    driver: BridgeDriver, network: Callable[..., dict[str, object]], spawn: Callable[..., int]
) -> None:
    name = str(network("10.234.116.0/24")["name"])
    port = free_port()
    net_rules = rules()
    att = driver.attach(name, "pub00001", spawn(), [PortMapping(port, 80)])
    assert any(f"basin:net={name}:ctr=pub00001" in r for r in rules())
    driver.unpublish(name, "pub00001")
    driver.unpublish(name, "pub00001")  # idempotent
    assert rules() == net_rules
    assert Path(f"/sys/class/net/{att.host_veth}").exists()
    assert driver.ipam.get(name)["allocations"] == {"pub00001": att.ip}
    # the port is free for the next container at once
    driver.attach(name, "pub00002", spawn(), [PortMapping(port, 80)])
    driver.detach(name, "pub00001")
    driver.detach(name, "pub00002")
    assert rules() == net_rules
    driver.remove(name)


def test_second_network_gets_eth1_and_no_second_default_route(
    driver: BridgeDriver, network: Callable[..., dict[str, object]], spawn: Callable[..., int]
) -> None:
    first = str(network("10.234.127.0/24")["name"])
    second = str(network("10.234.129.0/24")["name"])
    pid = spawn()
    a = driver.attach(first, "twonet01", pid, [])
    b = driver.attach(second, "twonet01", pid, [])
    assert a.host_veth != b.host_veth
    assert "10.234.127.2/24" in in_ns(pid, "ip", "-o", "addr", "show", "eth0").stdout
    assert "10.234.129.2/24" in in_ns(pid, "ip", "-o", "addr", "show", "eth1").stdout
    routes = in_ns(pid, "ip", "route").stdout
    assert routes.count("default") == 1 and "default via 10.234.127.1 dev eth0" in routes
    assert in_ns(pid, BUSYBOX, "ping", "-c1", "-W2", "10.234.129.1").returncode == 0
    driver.detach(second, "twonet01")
    assert "eth1" not in in_ns(pid, "ip", "-o", "link").stdout
    driver.detach(first, "twonet01")
    driver.remove(first)
    driver.remove(second)


def test_attach_to_a_network_whose_bridge_is_gone(
    driver: BridgeDriver, network: Callable[..., dict[str, object]], spawn: Callable[..., int]
) -> None:
    rec = network("10.234.116.0/24")
    name = str(rec["name"])
    with IPRoute() as ipr:
        ipr.link("del", index=ipr.link_lookup(ifname=str(rec["bridge"]))[0])
    links_before = links()
    with pytest.raises(BasinError, match=f"network {name}: its bridge {name} is gone"):
        driver.attach(name, "orphan01", spawn(), [])
    assert links() == links_before
    assert driver.ipam.get(name)["allocations"] == {}
