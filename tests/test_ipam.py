"""Network records, address allocation and the pure helpers of the bridge driver. Nothing
here touches the host's network; only tmp dirs."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from basin.errors import BasinError, Conflict, NotFound
from basin.paths import Paths
from plugins.network import iptables
from plugins.network.etcfiles import hosts_file, resolv_conf
from plugins.network.ipam import (
    Ipam,
    bridge_name,
    check_gateway,
    check_ifname,
    check_name,
    check_overlap,
    host_routes,
    parse_subnet,
)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def ipam(tmp_path: Path) -> Iterator[Ipam]:
    yield Ipam(Paths(tmp_path, tmp_path / "run"))
    # records are the state under test here, not leaks: no bridge was ever made for them
    for rec in (tmp_path / "networks").glob("*.json"):
        rec.unlink()


def make(ipam: Ipam, name: str, subnet: str, gateway: str | None = None) -> dict[str, object]:
    net = parse_subnet(subnet)
    with ipam.locked():
        rec = ipam.new_record(name, net, check_gateway(net, gateway), bridge_name(name))
        ipam.save_locked(rec)
    return rec


# --- validation ---


@pytest.mark.parametrize("name", ["a", "web", "my-net_1.2", "0net", "x" * 64])
def test_good_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "-net", ".net", "_n", "a/b", "a b", "net:1", "é", "x" * 65])
def test_bad_names(name: str) -> None:
    with pytest.raises(BasinError, match="invalid network name"):
        check_name(name)


def test_ifname_length() -> None:
    assert check_ifname("x" * 15) == "x" * 15
    with pytest.raises(BasinError, match="longer than 15"):
        check_ifname("x" * 16)


@pytest.mark.parametrize(
    ("text", "msg"),
    [
        ("10.234.1.1/24", "has host bits set"),
        ("10.234.1.0/33", "invalid subnet"),
        ("10.234.1/24", "invalid subnet"),
        ("banana", "invalid subnet"),
        ("10.234.1.0/31", "too small"),
        ("fd00::/64", "only IPv4"),
    ],
)
def test_bad_subnets(text: str, msg: str) -> None:
    with pytest.raises(BasinError, match=msg):
        parse_subnet(text)


def test_gateway() -> None:
    net = parse_subnet("10.234.1.0/24")
    assert str(check_gateway(net, None)) == "10.234.1.1"
    assert str(check_gateway(net, "10.234.1.254")) == "10.234.1.254"
    outside = r"^gateway 10\.234\.2\.1 is outside subnet 10\.234\.1\.0/24$"
    with pytest.raises(BasinError, match=outside):
        check_gateway(net, "10.234.2.1")
    with pytest.raises(BasinError, match="network or broadcast"):
        check_gateway(net, "10.234.1.255")
    with pytest.raises(BasinError, match="not an IPv4 address"):
        check_gateway(net, "10.234.1")


def test_bridge_name() -> None:
    assert bridge_name("web") == "web"
    assert bridge_name("x" * 15) == "x" * 15
    long = bridge_name("a-rather-long-network-name")
    assert long.startswith("basin-") and len(long) == 15
    assert long == bridge_name("a-rather-long-network-name")  # stable: found again on remove
    assert long != bridge_name("a-rather-long-network-namf")


def test_host_routes_parses_proc_format(tmp_path: Path) -> None:
    f = tmp_path / "route"
    f.write_text(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
        "br0\t0000EA0A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n"
    )
    assert host_routes(str(f)) == [
        ipaddress.IPv4Network("192.0.2.0/24"),
        ipaddress.IPv4Network("10.234.0.0/16"),
    ]
    host_routes()  # the real file parses too


def test_overlap() -> None:
    net = parse_subnet("10.234.1.0/24")
    others = [{"name": "a", "subnet": "10.234.0.0/16"}]
    with pytest.raises(Conflict, match=r"overlaps network a \(10.234.0.0/16\)"):
        check_overlap(net, others, [])
    with pytest.raises(Conflict, match=r"overlaps host route 10\.234\.1\.128/25"):
        check_overlap(net, [], [ipaddress.IPv4Network("10.234.1.128/25")])
    check_overlap(net, [{"name": "b", "subnet": "10.234.2.0/24"}], [])


# --- records and allocation ---


def test_record_fields(ipam: Ipam, tmp_path: Path) -> None:
    make(ipam, "n1", "10.234.120.0/24")
    rec = json.loads((tmp_path / "networks" / "n1.json").read_text())
    assert {
        k: rec[k] for k in ("name", "driver", "subnet", "gateway", "bridge", "allocations")
    } == {
        "name": "n1",
        "driver": "bridge",
        "subnet": "10.234.120.0/24",
        "gateway": "10.234.120.1",
        "bridge": "n1",
        "allocations": {},
    }
    assert rec["created"].endswith("+00:00")
    assert ipam.get("n1") == rec
    assert [r["name"] for r in ipam.list()] == ["n1"]


def test_duplicate_and_overlapping_networks(ipam: Ipam, tmp_path: Path) -> None:
    make(ipam, "n1", "10.234.121.0/24")
    with pytest.raises(Conflict, match="network n1 already exists"):
        make(ipam, "n1", "10.234.122.0/24")
    with pytest.raises(Conflict, match="overlaps network n1"):
        make(ipam, "n2", "10.234.121.128/25")
    with pytest.raises(NotFound, match="no such network: n2"):
        ipam.get("n2")


def test_allocate_skips_gateway_and_reuses_released(ipam: Ipam, tmp_path: Path) -> None:
    make(ipam, "n", "10.234.123.0/29", gateway="10.234.123.3")
    got = [ipam.allocate("n", f"c{i}") for i in range(5)]
    # .0 network, .3 gateway, .7 broadcast
    assert got == ["10.234.123.1", "10.234.123.2", "10.234.123.4", "10.234.123.5", "10.234.123.6"]
    with pytest.raises(BasinError, match=r"^network n: no free address in 10.234.123.0/29$"):
        ipam.allocate("n", "c5")
    with pytest.raises(Conflict, match="already attached"):
        ipam.allocate("n", "c1")
    assert ipam.release("n", "c1") == "10.234.123.2"
    assert ipam.release("n", "c1") is None  # idempotent
    assert ipam.release("gone", "c1") is None  # also without the network
    assert ipam.allocate("n", "c6") == "10.234.123.2"
    assert ipam.get("n")["allocations"]["c6"] == "10.234.123.2"


def test_parallel_allocations_threads(ipam: Ipam, tmp_path: Path) -> None:
    make(ipam, "n", "10.234.124.0/24")
    with ThreadPoolExecutor(30) as pool:
        ips = list(pool.map(lambda i: ipam.allocate("n", f"c{i}"), range(100)))
    assert len(set(ips)) == 100
    assert ipam.get("n")["allocations"] == {f"c{i}": ip for i, ip in enumerate(ips)}


def test_parallel_allocations_processes(ipam: Ipam, tmp_path: Path) -> None:
    """The flock, not just a thread mutex, guards the record."""
    make(ipam, "n", "10.234.125.0/24")
    code = (
        "import sys; from pathlib import Path; from basin.paths import Paths;"
        "from plugins.network.ipam import Ipam;"
        "ipam = Ipam(Paths(Path(sys.argv[1]), Path(sys.argv[1]) / 'run'));"
        "[ipam.allocate('n', f'p{sys.argv[2]}-{i}') for i in range(10)]"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path), str(n)], cwd=REPO)
        for n in range(8)
    ]
    assert [p.wait() for p in procs] == [0] * 8
    allocs = ipam.get("n")["allocations"]
    assert len(allocs) == 80 and len(set(allocs.values())) == 80


def test_corrupt_record(ipam: Ipam, tmp_path: Path) -> None:
    (tmp_path / "networks").mkdir()
    (tmp_path / "networks" / "bad.json").write_text("{half")
    with pytest.raises(BasinError, match="corrupt record"):
        ipam.get("bad")
    assert ipam.list() == []


# --- iptables helpers (no iptables run) ---


def test_iptables_join_and_markers() -> None:
    assert iptables.join(["-A", "X", "!", "-o", "br", "--comment", "basin:net=a"]) == (
        "-A X ! -o br --comment basin:net=a"
    )
    assert iptables.join(["--comment", "two words"]) == '--comment "two words"'
    with pytest.raises(BasinError):
        iptables.join(['say "hi"'])
    rule = ["-A", "BASIN-NAT", "-m", "comment", "--comment", "basin:net=a:ctr=c1", "-j", "DNAT"]
    assert iptables.matches("basin:net=a", rule)
    assert iptables.matches("basin:net=a:ctr=c1", rule)
    assert not iptables.matches("basin:net=a:ctr=c", rule)
    assert not iptables.matches("basin:net=ab", ["-A", "X", "--comment", "basin:net=a"])
    assert not iptables.matches("basin:net=a", ["-A", "X", "--comment", "basin:net=ab"])


# --- resolv.conf and hosts ---

STUB = "# managed by resolved\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n"
UPSTREAM = "nameserver 192.0.2.53\nnameserver 127.0.0.1\nnameserver 2001:db8::53\nsearch lan\n"


def test_resolv_conf_replaces_loopback_with_upstream() -> None:
    assert resolv_conf(STUB, UPSTREAM) == (
        "# managed by resolved\nnameserver 192.0.2.53\nnameserver 2001:db8::53\n"
        "options edns0 trust-ad\nsearch lan\n"
    )


def test_resolv_conf_drops_loopback_without_upstream() -> None:
    text = "nameserver 127.0.0.1\nnameserver ::1\nnameserver 192.0.2.9\n"
    assert resolv_conf(text, None) == "nameserver 192.0.2.9\n"
    assert resolv_conf(STUB, None) == "# managed by resolved\noptions edns0 trust-ad\nsearch lan\n"


def test_resolv_conf_keeps_plain_host_file() -> None:
    text = "search example\nnameserver 192.0.2.1\nnameserver 192.0.2.1\n"
    assert resolv_conf(text, UPSTREAM) == "search example\nnameserver 192.0.2.1\n"
    assert resolv_conf("", None) == ""


def test_hosts_file() -> None:
    text = hosts_file("abc123", "web", "10.234.1.2")
    assert text.startswith("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    assert text.endswith("\n10.234.1.2\tabc123 web\n")
    assert hosts_file("web", "web", "10.234.1.2").endswith("\n10.234.1.2\tweb\n")
    assert hosts_file("web", "web", None).endswith("\n127.0.1.1\tweb\n")
