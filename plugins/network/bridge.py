"""The bridge network driver: a Linux bridge per network, a veth pair per container, NAT and
published ports through iptables (see plugins.network.iptables for the chain layout).

Every method blocks (netlink, iptables subprocesses, flock): the supervisor calls them in a
worker thread. Netlink goes through plugins.network.rtnl, a socket per call: the host's, and
for a container's side one opened in its namespace on a short-lived thread (netns).
"""

from __future__ import annotations

import errno
import hashlib
import ipaddress
import os
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from basin.errors import BasinError, Conflict, NotFound
from basin.network import Attachment, PortMapping
from basin.paths import Paths
from plugins.network import iptables
from plugins.network.etcfiles import hosts_file, resolv_conf
from plugins.network.ipam import (
    Ipam,
    Record,
    bridge_name,
    check_gateway,
    check_ifname,
    check_name,
    parse_subnet,
)
from plugins.network.netns import current_netns
from plugins.network.rtnl import NetlinkError, Rtnl, add_addr, add_default_route, set_link

__all__ = ["BridgeDriver", "hosts_file", "net_marker", "resolv_conf", "veth_name"]

LOCALHOST = "127.0.0.0/8"
# how long detach_exited waits for a dead container's namespace to take its veth along
EXIT_GRACE_S = 2.0


def net_marker(network: str) -> str:
    return f"basin:net={network}"


def ctr_marker(network: str, cid: str) -> str:
    # under the network's marker, so removing the network sweeps stray container rules too
    return f"{net_marker(network)}:ctr={cid}"


def veth_name(network: str, cid: str) -> str:
    """Host end of the container's veth: ``veth`` + 6 chars of the cid (readable in
    ``ip link``) + 5 hex of a hash of network and cid (one container on two networks, two
    cids sharing a prefix). 15 chars, IFNAMSIZ - 1."""
    digest = hashlib.sha256(f"{network}\0{cid}".encode()).hexdigest()
    return f"veth{cid[:6]}{digest[:5]}"


def _sysctl(key: str, value: str) -> None:
    # /proc/sys/net is the namespace of the opening thread: ours is the host's
    with open(f"/proc/sys/{key}", "r+") as f:
        if f.read().strip() != value:
            f.seek(0)
            f.write(value)


def _random_mac() -> str:
    # locally administered, unicast. A bridge without a fixed address takes the lowest MAC
    # of its ports and changes it as containers come and go, which breaks neighbours' ARP.
    b = bytearray(secrets.token_bytes(6))
    b[0] = (b[0] & 0xFC) | 0x02
    return ":".join(f"{x:02x}" for x in b)


def _check_ports(ports: Sequence[PortMapping]) -> list[PortMapping]:
    seen: set[tuple[int, str]] = set()
    for p in ports:
        if p.proto not in ("tcp", "udp"):
            raise BasinError(f"invalid protocol {p.proto!r} for port {p.host_port}: tcp or udp")
        for port in (p.host_port, p.container_port):
            if not (isinstance(port, int) and 0 < port < 65536):
                raise BasinError(f"invalid port {port!r}: 1-65535")
        if (p.host_port, p.proto) in seen:
            raise BasinError(f"host port {p.host_port}/{p.proto} given twice")
        seen.add((p.host_port, p.proto))
    return list(ports)


def _network_rules(rec: Record) -> dict[str, list[str]]:
    br, subnet, mark = rec["bridge"], rec["subnet"], net_marker(rec["name"])
    return {
        "nat": [
            # containers reach the outside world with the host's address
            iptables.rule_line(
                iptables.POSTROUTING, ["-s", subnet, "!", "-o", br, "-j", "MASQUERADE"], mark
            ),
            # 127.0.0.1:HOSTPORT: after DNAT the packet still has source 127.0.0.1, which
            # the container would take for its own loopback (and drop as martian); give it
            # the gateway address instead. route_localnet on the bridge lets it leave at all.
            iptables.rule_line(
                iptables.POSTROUTING, ["-s", LOCALHOST, "-o", br, "-j", "MASQUERADE"], mark
            ),
        ],
        "filter": [
            # outbound and container-to-container (bridged traffic passes FORWARD when
            # br_netfilter is loaded); accepted here so a host DROP policy does not bite
            iptables.rule_line(iptables.FWD, ["-i", br, "-j", "ACCEPT"], mark),
            iptables.rule_line(
                iptables.FWD,
                ["-o", br, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"],
                mark,
            ),
        ],
    }


def _port_rules(
    rec: Record, cid: str, ip: str, ports: Sequence[PortMapping]
) -> dict[str, list[str]]:
    mark = ctr_marker(rec["name"], cid)
    out: dict[str, list[str]] = {"nat": [], "filter": []}
    for p in ports:
        proto = ["-p", p.proto, "-m", p.proto]
        out["nat"].append(
            iptables.rule_line(
                iptables.NAT,
                [*proto, "--dport", str(p.host_port), "-j", "DNAT",
                 "--to-destination", f"{ip}:{p.container_port}"],
                mark,
            )
        )  # fmt: skip
        out["filter"].append(
            iptables.rule_line(
                iptables.FWD,
                ["-d", f"{ip}/32", "-o", rec["bridge"], *proto,
                 "--dport", str(p.container_port), "-j", "ACCEPT"],
                mark,
            )
        )  # fmt: skip
    return out


def _published(nat: iptables.Table) -> dict[tuple[int, str], str]:
    """(host port, proto) -> marker of the rule publishing it, from the live rules: they,
    not any one BASIN_ROOT's records, are what would clash."""
    out: dict[tuple[int, str], str] = {}
    for r in nat.rules:
        if r[1] != iptables.NAT.name or "--dport" not in r or "-p" not in r:
            continue
        port = int(r[r.index("--dport") + 1])
        out[(port, r[r.index("-p") + 1])] = iptables.comment(r) or "?"
    return out


@contextmanager
def _netlink() -> Iterator[Rtnl]:
    """The host's rtnetlink; a refusal becomes one clear BasinError."""
    try:
        with Rtnl() as nl:
            yield nl
    except NetlinkError as e:
        raise BasinError(f"netlink: {e.strerror}") from None


class BridgeDriver:
    name = "bridge"

    def __init__(self, paths: Paths | None = None) -> None:
        self.paths = paths or Paths.from_env()
        self.ipam = Ipam(self.paths)
        # seconds the last attach spent per phase; for logs and benchmarks
        self.timings: dict[str, float] = {}
        # containers this driver attached without ports: no rule of theirs to look for on
        # detach (iptables-save and the host lock, ~2 ms). Unknown ones (attached before a
        # restart) get the full sweep.
        self._portless: set[tuple[str, str]] = set()

    # --- networks ---

    def create(self, name: str, subnet: str, gateway: str | None = None) -> Record:
        check_name(name)
        net = parse_subnet(subnet)
        gw = check_gateway(net, gateway)
        br = check_ifname(bridge_name(name))
        with self.ipam.locked():
            rec = self.ipam.new_record(name, net, gw, br)
            # undo exactly what this call made: a clash with a bridge of the same name (say
            # from another BASIN_ROOT) must not tear down that network's bridge or rules
            created = rules_added = False
            try:
                with _netlink() as nl:
                    try:
                        nl.add_bridge(br, _random_mac())
                    except NetlinkError as e:
                        if e.errno == errno.EEXIST:
                            raise Conflict(
                                f"network {name}: interface {br} already exists"
                            ) from None
                        raise
                    created = True
                    idx = nl.link_index(br)
                    if idx is None:
                        raise BasinError(f"bridge {br} vanished as it was made")
                    nl.add_addr(idx, str(gw), net.prefixlen, str(net.broadcast_address))
                    nl.set_link(br, up=True)
                _sysctl(f"net/ipv4/conf/{br}/route_localnet", "1")
                _sysctl("net/ipv4/ip_forward", "1")  # never turned off again: others need it
                with iptables.host_lock():
                    iptables.add(_network_rules(rec))  # one transaction: all or nothing
                rules_added = True
                self.ipam.save_locked(rec)
            except BaseException:
                self._teardown(name, br if created else None, rules_added)
                raise
        return rec

    def remove(self, name: str) -> None:
        with self.ipam.locked():
            rec = self.ipam.get_locked(name)
            if rec["allocations"]:
                attached = ", ".join(sorted(rec["allocations"]))
                raise Conflict(f"network {name} has attached containers: {attached}")
            self._teardown(name, rec["bridge"], rules=True)
            self.ipam.delete_locked(name)

    def _teardown(self, name: str, bridge: str | None, rules: bool) -> None:
        if rules:
            with iptables.host_lock():
                iptables.cleanup_rules_locked(net_marker(name))
                iptables.prune()
        if bridge is not None:
            with _netlink() as nl:
                nl.del_link(bridge)  # its route_localnet setting goes with it

    # --- containers ---

    def attach(self, name: str, cid: str, pid: int, ports: list[PortMapping]) -> Attachment:
        check_name(cid, "container")
        ports = _check_ports(ports)
        check_name(name)
        try:
            ns_fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f"no such process: {pid}") from None
        try:
            if os.fstat(ns_fd).st_ino == current_netns():
                # would put "eth0" and a default route on the host itself
                raise BasinError(f"process {pid} shares the host's network namespace")
            return self._attach(name, cid, ns_fd, ports)
        finally:
            os.close(ns_fd)

    def _attach(self, name: str, cid: str, ns_fd: int, ports: list[PortMapping]) -> Attachment:
        host_veth = veth_name(name, cid)
        ip, rec = self.ipam.allocate_record(name, cid)  # NotFound: no such network
        subnet = ipaddress.IPv4Network(rec["subnet"])
        plumbed = False
        try:
            t0 = time.perf_counter()
            self._plumb(rec, cid, ns_fd, host_veth, ip, subnet.prefixlen)
            plumbed = True
            t1 = time.perf_counter()
            if ports:
                with iptables.host_lock():
                    tables = iptables.state()
                    taken = _published(tables["nat"])
                    for p in ports:
                        owner = taken.get((p.host_port, p.proto))
                        if owner is not None:
                            raise Conflict(
                                f"host port {p.host_port}/{p.proto} is already published ({owner})"
                            )
                    iptables.add(_port_rules(rec, cid, ip, ports), tables)
            t2 = time.perf_counter()
            self.timings = {"plumb": t1 - t0, "rules": t2 - t1}
            if not ports:
                self._portless.add((name, cid))
        except BaseException:
            # _plumb cleans up after itself; a veth it refused to create (EEXIST) is not ours
            if plumbed:
                self._unplumb(name, cid)
            self.ipam.release(name, cid)
            raise
        return Attachment(name, ip, subnet.prefixlen, rec["gateway"], host_veth, ports)

    def _plumb(
        self, rec: Record, cid: str, ns_fd: int, host_veth: str, ip: str, prefixlen: int
    ) -> None:
        # The container's side is a socket opened in its namespace (netns.socket_in);
        # every request goes out from this thread.
        try:
            with _netlink() as host, Rtnl(ns_fd) as inside:
                bridge = host.link_index(rec["bridge"])
                if bridge is None:
                    raise BasinError(f"network {rec['name']}: its bridge {rec['bridge']} is gone")
                ifname = self._make_veth(host, inside, cid, ns_fd, host_veth, bridge)
                try:
                    idx = inside.link_index(ifname)
                    if idx is None:
                        raise BasinError(f"{ifname} did not appear in the container")
                    # one default route per container: the first network's gateway
                    gateway = rec["gateway"]
                    route = [] if inside.has_default_route() else [add_default_route(gateway)]
                    inside.batch(
                        add_addr(idx, ip, prefixlen),
                        set_link(ifname, up=True),
                        set_link("lo", up=True),
                        *route,  # last: the gateway is reachable once the address is up
                    )
                except BaseException:
                    host.del_link(host_veth)  # takes the container's end with it
                    raise
        except NetlinkError as e:
            raise BasinError(f"netlink: {e.strerror}") from None

    @staticmethod
    def _make_veth(
        host: Rtnl, inside: Rtnl, cid: str, ns_fd: int, host_veth: str, bridge: int
    ) -> str:
        """The pair, in one request: the host end up and a port of the bridge, the other end
        born in the container's namespace under its final name (no temporary name, no move,
        no clash with the host's own eth0): eth0, or the first free ethN if the container
        is on another network already. Returns that name."""
        ifname = "eth0"
        for _attempt in range(2):
            try:
                host.add_veth(host_veth, ifname, peer_netns_fd=ns_fd, master=bridge, up=True)
                return ifname
            except NetlinkError as e:
                if e.errno != errno.EEXIST:
                    raise
                if host.link_index(host_veth) is not None:
                    raise Conflict(
                        f"interface {host_veth} already exists (left over from an "
                        f"earlier attach of {cid}? detach removes it)"
                    ) from None
            names = inside.link_names()
            ifname = next(f"eth{i}" for i in range(len(names) + 1) if f"eth{i}" not in names)
        raise BasinError(f"no free interface name in the container for {host_veth}")

    def unpublish(self, name: str, cid: str) -> None:
        """Remove the container's published-port rules now, so that its host ports are
        free at once; detach, which may come later, does the rest. Idempotent."""
        check_name(cid, "container")
        if (name, cid) not in self._portless:
            iptables.cleanup_rules(ctr_marker(name, cid))
            self._portless.add((name, cid))

    def detach_exited(self, name: str, cid: str, grace: float = EXIT_GRACE_S) -> None:
        """detach() for a container whose processes are all gone. Its namespace dies with
        them and the kernel deletes the veth pair along with it (batched, in its own
        worker): wait for that rather than delete it here, which would do the same work
        a second time, racing the kernel for it. Only if something else keeps the
        namespace alive (an nsenter, a bind mount) is the veth still there after grace:
        then it goes as in detach(). The address is released last, as there."""
        check_name(cid, "container")
        self._unpublish(name, cid)
        host_veth = veth_name(name, cid)
        with _netlink() as nl:
            if not nl.wait_link_gone(host_veth, grace):
                nl.del_link(host_veth)
        self.ipam.release(name, cid)

    def _unpublish(self, name: str, cid: str) -> None:
        if (name, cid) in self._portless:
            self._portless.discard((name, cid))
        else:
            iptables.cleanup_rules(ctr_marker(name, cid))

    def _unplumb(self, name: str, cid: str) -> None:
        self._unpublish(name, cid)
        self._delete_link(veth_name(name, cid))

    @staticmethod
    def _delete_link(ifname: str) -> None:
        # ~20-35 ms here, nearly all of it waiting in the kernel for RCU grace periods
        # (netdev_run_todo), not CPU; a container that exited needs none of it
        # (detach_exited)
        with _netlink() as nl:
            nl.del_link(ifname)  # takes the container's end with it; gone already is fine

    def detach(self, name: str, cid: str) -> None:
        check_name(cid, "container")
        self._unplumb(name, cid)
        # last: the address must not be handed out while old rules might still point at it
        self.ipam.release(name, cid)
