"""`basin network ...` and `basin run --network/-p` end to end: the real CLI and supervisor,
real bridges, veths and iptables rules.

Traffic stays between the host and the bridges and containers these tests make. Each test
uses its own subnet in 10.234.200-239.0/24 or 10.234.128.0/24 (other test files use others)
and networks named nt + random hex; the basin fixture removes containers and networks
afterwards and the leak check sees that bridges, veths, rules and records are gone.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Basin
from tests.netutil import free_port


def netname() -> str:
    return "nt" + secrets.token_hex(4)


def links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def ports_of(bridge: str) -> set[str]:
    """The veths plugged into a bridge: what a container on it adds to the host. (Tests
    look at their own bridges only: other tests make and remove links meanwhile.)"""
    return set(os.listdir(f"/sys/class/net/{bridge}/brif"))


def rules(marker: str) -> list[str]:
    text = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    return [line for line in text.splitlines() if marker in line]


def inspect(basin: Basin, name: str) -> dict[str, Any]:
    out: list[dict[str, Any]] = json.loads(basin.ok("network", "inspect", name))
    assert len(out) == 1
    return out[0]


def state(basin: Basin, cid: str) -> dict[str, Any]:
    d = basin.root / "containers" / cid
    return dict(json.loads((d / "state.json").read_text()))


def fetch(url: str, deadline_s: float = 10) -> str:
    """GET url, retrying while the server in the container is still starting."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=3) as r:
                return str(r.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def one_error_line(res: subprocess.CompletedProcess[str], code: int = 125) -> str:
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("basin: "), lines
    return lines[0]


def no_containers(basin: Basin) -> None:
    d = basin.root / "containers"
    assert not d.exists() or os.listdir(d) == []


# --- networks -------------------------------------------------------------------------------


def test_create_ls_inspect_rm(basin: Basin) -> None:
    name = netname()
    assert basin.ok("network", "create", "-d", "bridge", "--subnet", "10.234.200.0/24",
                    "--gateway", "10.234.200.254", name) == f"{name}\n"  # fmt: skip
    assert name in links() and Path(f"/sys/class/net/{name}/bridge").is_dir()
    addr = subprocess.run(["ip", "-o", "-4", "addr", "show", "dev", name],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "10.234.200.254/24" in addr
    assert rules(f"basin:net={name}")  # NAT and forwarding rules are in place

    table = basin.ok("network", "ls").splitlines()
    assert table[0].split() == ["NAME", "IpRange", "Driver", "CONTAINERS"]
    assert [name, "10.234.200.0/24", "bridge", "0"] in [row.split() for row in table[1:]]
    assert basin.ok("network", "ps", "-q").split() == [name]
    rec = json.loads(basin.ok("network", "ls", "--format", "json"))
    assert rec["name"] == name and rec["containers"] == 0 and rec["gateway"] == "10.234.200.254"

    info = inspect(basin, name)
    assert info["subnet"] == "10.234.200.0/24" and info["gateway"] == "10.234.200.254"
    assert info["bridge"] == name and info["driver"] == "bridge" and info["containers"] == []

    assert basin.ok("network", "rm", name) == f"{name}\n"
    assert name not in links()
    assert rules(f"basin:net={name}") == []
    assert basin.ok("network", "ls", "-q") == ""
    one_error_line(basin("network", "inspect", name))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--subnet", "10.234.201.0/33"], "invalid subnet"),
        (["--subnet", "nonsense"], "invalid subnet"),
        (["--subnet", "10.234.201.1/24"], "host bits"),
        (["--subnet", "10.234.201.0/24", "--gateway", "10.234.202.1"], "outside"),
        (["--subnet", "10.234.201.0/24", "--gateway", "banana"], "invalid gateway"),
        (["-d", "macvlan", "--subnet", "10.234.201.0/24"], "unknown network driver"),
        (["--driver", "bridge"], "--subnet"),
        (["--subnet", "10.234.201.0/24", "--bogus"], "unknown flag"),
    ],
)
def test_create_bad_input(basin: Basin, args: list[str], message: str) -> None:
    name = netname()
    line = one_error_line(basin("network", "create", *args, name))
    assert message in line
    assert name not in links() and rules(f"basin:net={name}") == []
    assert basin.ok("network", "ls", "-q") == ""


@pytest.mark.parametrize("name", ["x" * 65, "../etc", "-rf", "a/b", ""])
def test_create_bad_name(basin: Basin, name: str) -> None:
    line = one_error_line(basin("network", "create", "--subnet", "10.234.203.0/24", "--", name))
    assert "invalid network name" in line
    assert basin.ok("network", "ls", "-q") == ""


def test_create_name_taken_and_overlap(basin: Basin) -> None:
    name, other = netname(), netname()
    basin.ok("network", "create", "--subnet", "10.234.204.0/24", name)
    line = one_error_line(basin("network", "create", "--subnet", "10.234.205.0/24", name))
    assert "already exists" in line
    for subnet in ("10.234.204.0/24", "10.234.204.128/25", "10.234.0.0/16"):
        line = one_error_line(basin("network", "create", "--subnet", subnet, other))
        assert "overlaps" in line and name in line
    assert other not in links()
    assert basin.ok("network", "ls", "-q").split() == [name]
    # a name of 16-64 characters gets a hashed bridge name that fits IFNAMSIZ
    long = "n" * 40 + secrets.token_hex(4)
    basin.ok("network", "create", "--subnet", "10.234.206.0/24", long)
    bridge = inspect(basin, long)["bridge"]
    assert len(bridge) <= 15 and bridge in links()


def test_rm_unknown_network(basin: Basin) -> None:
    assert one_error_line(basin("network", "rm", "ghostnet"), 1) == (
        "basin: no such network: ghostnet"
    )


# --- containers on networks -----------------------------------------------------------------


def test_none_has_only_lo_and_it_is_up(basin: Basin) -> None:
    out = basin.ok("run", "--rm", "busybox", "ip", "-o", "link")
    assert len(out.splitlines()) == 1 and out.split()[1] == "lo:" and ",UP" in out
    assert "1 packets received" in basin.ok("run", "--rm", "busybox", "ping", "-c1", "-W2",
                                            "127.0.0.1")  # fmt: skip
    hosts = basin.ok("run", "--rm", "--name", "lonely", "-h", "solo", "busybox", "cat",
                     "/etc/hosts")  # fmt: skip
    assert "127.0.0.1\tlocalhost" in hosts and "127.0.1.1\tsolo lonely" in hosts


def test_host_network_shares_the_hosts_namespace(basin: Basin) -> None:
    ns = basin.ok("run", "--rm", "--network", "host", "busybox", "readlink", "/proc/1/ns/net")
    assert ns.strip() == os.readlink("/proc/self/ns/net")


def test_two_containers_ping_each_other_and_the_gateway(basin: Basin) -> None:
    name = netname()
    basin.ok("network", "create", "--subnet", "10.234.207.0/24", name)
    cid = basin.ok("run", "-d", "--name", "pingee", "--net", name, "busybox", "sleep", "60").strip()
    att = state(basin, cid)["network"]
    assert att["network"] == name and att["gateway"] == "10.234.207.1"
    assert att["prefixlen"] == 24 and att["ports"] == [] and ports_of(name) == {att["host_veth"]}
    ip = att["ip"]
    assert ip.startswith("10.234.207.")
    info = inspect(basin, name)
    assert [(c["name"], c["ip"]) for c in info["containers"]] == [("pingee", ip)]
    assert basin.ok("network", "ls").split("\n")[1].split()[-1] == "1"

    for target in (ip, "10.234.207.1"):
        out = basin.ok("run", "--rm", "-network", name, "busybox", "ping", "-c1", "-W2", target)
        assert "1 packets received" in out
    # the seed's spelling of the flag, and what the container sees of itself
    script = "hostname; cat /etc/hostname; cat /etc/hosts; cat /etc/resolv.conf; ip -o -4 addr"
    out = basin.ok("run", "--rm", "--network", name, "--name", "me", "-h", "box", "busybox",
                   "sh", "-c", script)  # fmt: skip
    lines = out.splitlines()
    assert lines[:2] == ["box", "box"]
    mine = next(line.split("\t")[0] for line in lines if line.endswith("\tbox me"))
    assert mine.startswith("10.234.207.") and mine != ip
    assert f"inet {mine}/24" in out and "127.0.0.1\tlocalhost" in out
    for line in lines:
        if line.startswith("nameserver"):
            assert not line.split()[1].startswith("127.")  # never a loopback resolver

    # refused while attached, naming the container
    line = one_error_line(basin("network", "rm", name), 1)
    assert "pingee" in line and "attached" in line
    basin.ok("rm", "-f", "pingee")
    assert att["host_veth"] not in links()
    assert inspect(basin, name)["containers"] == []
    basin.ok("network", "rm", name)


def test_exit_releases_the_address(basin: Basin) -> None:
    name = netname()
    basin.ok("network", "create", "--subnet", "10.234.208.0/24", name)
    basin.ok("run", "--name", "brief", "--network", name, "-p", f"{free_port()}:80", "busybox",
             "true")  # fmt: skip
    # the host port at once; the veth goes with the container's namespace, and the
    # address with it, a moment after the exit was reported
    assert rules(f"basin:net={name}:ctr=") == []
    cid = json.loads(basin.ok("ps", "--format", "json"))["id"]
    assert state(basin, cid)["network"] == {}
    deadline = time.monotonic() + 5
    while inspect(basin, name)["containers"] or [
        n for n in links() if n.startswith("veth" + cid[:6])
    ]:
        assert time.monotonic() < deadline, "address or veth not released"
        time.sleep(0.02)


def test_published_port_from_the_host(basin: Basin) -> None:
    name = netname()
    port = free_port()
    basin.ok("network", "create", "--subnet", "10.234.209.0/24", name)
    cid = basin.ok("run", "-d", "--name", "web", "--network", name, "-p", f"{port}:80",
                   "-h", "webhost", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc")  # fmt: skip
    cid = cid.strip()
    att = state(basin, cid)["network"]
    assert att["ports"] == [{"host_port": port, "container_port": 80, "proto": "tcp"}]
    assert inspect(basin, name)["containers"][0]["ports"] == att["ports"]
    assert rules(f"basin:net={name}:ctr={cid}")
    # loopback and a host address (the bridge's gateway address is one)
    assert fetch(f"http://127.0.0.1:{port}/hostname") == "webhost\n"
    assert fetch(f"http://10.234.209.1:{port}/hostname") == "webhost\n"
    wget = subprocess.run(["timeout", "5", "busybox", "wget", "-qO-",
                           f"http://127.0.0.1:{port}/hostname"],
                          capture_output=True, text=True)  # fmt: skip
    assert wget.stdout == "webhost\n"

    # the same host port again: refused, nothing made
    ids = basin.ok("ps", "-q").split()
    line = one_error_line(basin("run", "-d", "--network", name, "-p", f"{port}:8080", "busybox",
                                "sleep", "60"))  # fmt: skip
    assert f"{port}/tcp" in line and "already published" in line
    assert basin.ok("ps", "-q").split() == ids
    assert len(inspect(basin, name)["containers"]) == 1

    veth = att["host_veth"]
    basin.ok("rm", "-f", "web")
    assert veth not in links()
    assert rules(f"basin:net={name}:ctr=") == []
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/hostname", timeout=2)
    basin.ok("network", "rm", name)
    assert rules(f"basin:net={name}") == []


def test_thirty_parallel_containers_get_distinct_addresses(basin: Basin) -> None:
    name = netname()
    basin.ok("network", "create", "--subnet", "10.234.210.0/24", name)

    def start(i: int) -> str:
        return basin.ok("run", "-d", "--name", f"par{i}", "--network", name, "busybox",
                        "sleep", "120", timeout=120).strip()  # fmt: skip

    with ThreadPoolExecutor(30) as pool:
        cids = list(pool.map(start, range(30)))
    ips = {state(basin, cid)["network"]["ip"] for cid in cids}
    assert len(ips) == 30
    info = inspect(basin, name)
    assert {c["ip"] for c in info["containers"]} == ips
    assert {c["name"] for c in info["containers"]} == {f"par{i}" for i in range(30)}
    veths = {state(basin, cid)["network"]["host_veth"] for cid in cids}
    assert ports_of(name) == veths
    # each got its own address in its own namespace: ask two of them
    for cid in cids[:2]:
        ip = state(basin, cid)["network"]["ip"]
        pid = state(basin, cid)["pid"]
        out = subprocess.run(["nsenter", "-t", str(pid), "-n", "ip", "-o", "-4", "addr"],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert f"{ip}/24" in out
    basin.ok("rm", "-f", *cids, timeout=120)
    assert not veths & links() and ports_of(name) == set()
    assert inspect(basin, name)["containers"] == []


def test_back_to_back_runs_reuse_the_port_the_address_and_the_network(basin: Basin) -> None:
    """A container's exit is reported before its veth is gone (the kernel takes it with
    the namespace, a moment later): the next command must not notice."""
    name = netname()
    port = free_port()
    basin.ok("network", "create", "--subnet", "10.234.128.0/30", name)  # one address: .2
    for _ in range(3):
        # the host port is free again, and the only address too, once the last run returned
        out = basin.ok("run", "--rm", "--network", name, "-p", f"{port}:80", "busybox",
                       "ip", "-o", "-4", "addr", "show", "eth0")  # fmt: skip
        assert "10.234.128.2/30" in out
    # rm returns once all of it is gone
    cid = basin.ok("run", "-d", "--network", name, "busybox", "sleep", "60").strip()
    veth = state(basin, cid)["network"]["host_veth"]
    basin.ok("rm", "-f", cid)
    assert veth not in links() and inspect(basin, name)["containers"] == []
    # the network can go right after its last container
    basin.ok("run", "--rm", "--network", name, "busybox", "true")
    basin.ok("network", "rm", name)
    assert name not in links() and rules(f"basin:net={name}") == []


def test_a_full_network_waits_for_an_address_on_its_way_back(basin: Basin) -> None:
    """A namespace kept alive from outside (here an nsenter'd sleep) keeps its veth after
    the container exits, so its address comes back only once the supervisor deletes the
    veth itself (after a grace period): a run on the full network meanwhile waits for it
    instead of failing."""
    name = netname()
    basin.ok("network", "create", "--subnet", "10.234.128.0/30", name)  # one address: .2
    cid = basin.ok("run", "-d", "--network", name, "busybox", "sleep", "60").strip()
    st = state(basin, cid)
    holder = subprocess.Popen(["nsenter", "-t", str(st["pid"]), "-n", "sleep", "60"])
    try:
        deadline = time.monotonic() + 5
        theirs = os.readlink(f"/proc/{st['pid']}/ns/net")
        while os.readlink(f"/proc/{holder.pid}/ns/net") != theirs:
            assert time.monotonic() < deadline, "nsenter did not enter"
            time.sleep(0.01)
        basin.ok("stop", "-t", "0", cid)
        assert state(basin, cid)["network"] == {}
        assert st["network"]["host_veth"] in links()  # held: not gone with the container
        out = basin.ok("run", "--rm", "--network", name, "busybox", "ip", "-o", "-4", "addr",
                       "show", "eth0")  # fmt: skip
        assert "10.234.128.2/30" in out
        assert st["network"]["host_veth"] not in links()
    finally:
        holder.kill()
        holder.wait()
    basin.ok("rm", cid)
    basin.ok("network", "rm", name)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--network", "nosuchnet"], "no such network: nosuchnet"),
        (["--network", "../x"], "invalid network name"),
        (["--network", "NET", "-p", "80"], "invalid port mapping"),
        (["--network", "NET", "-p", "a:b"], "invalid port mapping"),
        (["--network", "NET", "-p", "0:80"], "invalid port mapping"),
        (["--network", "NET", "-p", "70000:80"], "invalid port mapping"),
        (["--network", "NET", "-p", "8080:80/sctp"], "invalid port mapping"),
        (["--network", "NET", "-p", "8080:80", "-p", "8080:81"], "published twice"),
        (["-p", "8080:80"], "cannot publish ports"),
        (["--network", "host", "-port", "8080:80"], "cannot publish ports"),
    ],
)
def test_run_bad_network_input(basin: Basin, args: list[str], message: str) -> None:
    name = netname()
    basin.ok("network", "create", "--subnet", "10.234.211.0/24", name)
    args = [name if a == "NET" else a for a in args]
    line = one_error_line(basin("run", *args, "busybox", "true"))
    assert message in line
    no_containers(basin)
    assert ports_of(name) == set() and inspect(basin, name)["containers"] == []


def test_supervisor_checks_ports_and_network_too(basin: Basin) -> None:
    """The control FIFO is an interface of its own: the supervisor refuses what the client
    would have, with nothing made."""
    from basin import client
    from basin.errors import BasinError
    from basin.paths import Paths

    paths = Paths(basin.root, basin.run_dir)
    for extra in ({"network": "ghost"}, {"network": "none", "publish": ["1:1", "1:2"]}):
        req = {"op": "run", "image": "busybox", "argv": ["true"], "wait": True, **extra}
        with pytest.raises(BasinError) as e:
            client.call(paths, req)
        assert e.value.code == 125
    no_containers(basin)


def test_restarted_supervisor_releases_what_a_dead_one_held(basin: Basin) -> None:
    name = netname()
    port = free_port()
    basin.ok("network", "create", "--subnet", "10.234.212.0/24", name)
    cid = basin.ok("run", "-d", "--network", name, "-p", f"{port}:80", "busybox", "sleep",
                   "60").strip()  # fmt: skip
    pid = state(basin, cid)["pid"]
    sup = basin.supervisor_pid()
    assert sup is not None
    # supervisor and container die together: nobody tore the network down
    os.kill(sup, signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while (Path(f"/proc/{sup}").exists() or Path(f"/proc/{pid}").exists()) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.02)
    assert rules(f"basin:net={name}:ctr={cid}")  # the port rules outlived them
    assert len(inspect(basin, name)["containers"]) == 1
    basin.ok("run", "--rm", "busybox", "true")  # starts a new supervisor
    assert rules(f"basin:net={name}:ctr={cid}") == []
    assert inspect(basin, name)["containers"] == []
    assert state(basin, cid)["network"] == {}


def test_network_ps_and_inspect_import_nothing_heavy(basin: Basin) -> None:
    name = netname()
    basin.ok("network", "create", "--subnet", "10.234.213.0/24", name)
    code = (
        "import sys; from basin.cli.main import main;"
        f"main(['network', 'ls']); main(['network', 'inspect', {name!r}]);"
        "heavy=[m for m in ('trio','prompt_toolkit','pyroute2','structlog') if m in sys.modules];"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=basin.env, capture_output=True,
                         text=True, check=True)  # fmt: skip
    assert name in out.stdout and "HEAVY []" in out.stdout
