"""The network driver interface; implementations live in plugins/network and are found by
entry point (group ``basin.network_drivers``)."""

from __future__ import annotations

import re

from basin.errors import BasinError, NotFound
from basin.paths import Paths
from basin.store import CorruptRecord, read_json

TYPE_CHECKING = False  # typing itself costs the thin client ~3 ms to import
if TYPE_CHECKING:
    from dataclasses import dataclass, field
    from typing import Any, Protocol
else:  # the same classes without dataclasses' import cost (see basin.plainclass)
    from basin.plainclass import dataclass, field


@dataclass
class PortMapping:
    host_port: int
    container_port: int
    proto: str = "tcp"  # "tcp" | "udp"


@dataclass
class Attachment:
    """What a container got on a network; stored in its record, shown by inspect."""

    network: str
    ip: str
    prefixlen: int
    gateway: str
    host_veth: str
    ports: list[PortMapping] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "network": self.network,
            "ip": self.ip,
            "prefixlen": self.prefixlen,
            "gateway": self.gateway,
            "host_veth": self.host_veth,
            "ports": [p.__dict__ for p in self.ports],
        }


if TYPE_CHECKING:  # only for annotations: the thin client never loads typing

    class NetworkDriver(Protocol):
        name: str

        def create(self, name: str, subnet: str, gateway: str | None) -> dict[str, Any]:
            """Create the network (bridge, address, NAT); return its record."""

        def remove(self, name: str) -> None:
            """Remove bridge, rules and record; refuse with Conflict while containers are
            attached."""

        def attach(self, name: str, cid: str, pid: int, ports: list[PortMapping]) -> Attachment:
            """Give the container (its netns is /proc/PID/ns/net) an address on the network.
            Blocking (netlink, iptables): the supervisor calls it in a worker thread."""

        def detach(self, name: str, cid: str) -> None:
            """Release the address, host veth and port rules. Idempotent."""


# --- what `run` asks for: pure checks, shared by the client and the supervisor ---

# the modes that are not networks of a driver: a netns with only lo, or the host's own
BUILTIN_MODES = ("none", "host")
_NET_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}")
_PORT = re.compile(r"(\d{1,5}):(\d{1,5})(?:/(tcp|udp))?")


def parse_port(text: str) -> PortMapping:
    """``HOST:CONTAINER[/tcp|/udp]``; tcp when no protocol is given."""
    m = _PORT.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise BasinError(f"invalid port mapping {text!r}: use HOST:CONTAINER[/tcp|/udp]")
    host, ctr = int(m[1]), int(m[2])
    for port in (host, ctr):
        if not 0 < port < 65536:
            raise BasinError(f"invalid port mapping {text!r}: ports are 1-65535")
    return PortMapping(host, ctr, m[3] or "tcp")


def parse_ports(texts: object) -> list[PortMapping]:
    """Every -p of one container; a host port given twice (same protocol) is refused here
    rather than by the second iptables rule silently shadowing the first."""
    if not isinstance(texts, list):
        raise BasinError("invalid port mappings: expected a list")
    out: list[PortMapping] = []
    seen: set[tuple[int, str]] = set()
    for text in texts:
        p = parse_port(text)
        if (p.host_port, p.proto) in seen:
            raise BasinError(f"host port {p.host_port}/{p.proto} is published twice")
        seen.add((p.host_port, p.proto))
        out.append(p)
    return out


def check_network_name(name: object) -> str:
    if not isinstance(name, str) or not _NET_NAME.fullmatch(name):
        raise BasinError(
            f"invalid network name {name!r}: use up to 64 of [a-zA-Z0-9_.-], "
            "starting with a letter or digit"
        )
    return name


# --- network records, as drivers keep them under paths.networks ---
# Read without the drivers' lock: records are replaced atomically (rename), so a reader
# sees the old or the new one. Readers here import nothing heavy (the thin client uses them).


def read_network(paths: Paths, name: str) -> dict[str, Any]:
    try:
        rec: dict[str, Any] = read_json(paths.networks / f"{check_network_name(name)}.json")
    except FileNotFoundError:
        raise NotFound(f"no such network: {name}") from None
    except CorruptRecord as e:
        raise BasinError(f"network {name}: corrupt record: {e}") from None
    return rec


def list_networks(paths: Paths) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    try:
        files = sorted(p for p in paths.networks.iterdir() if p.suffix == ".json")
    except FileNotFoundError:
        return out
    for p in files:
        if p.name.startswith("."):
            continue  # a record being written
        try:
            out.append(read_json(p))
        except (FileNotFoundError, CorruptRecord):
            continue
    return out


def check_run_network(paths: Paths, net: object, publish: object) -> tuple[str, list[PortMapping]]:
    """The network and published ports `run` asked for, checked before anything is made:
    by the client to fail fast, by the supervisor because the FIFO is an interface too."""
    net = net or "none"
    if not isinstance(net, str):
        raise BasinError(f"invalid network {net!r}")
    ports = parse_ports(publish or [])
    if net not in BUILTIN_MODES:
        read_network(paths, net)  # NotFound: "no such network: NAME"
    elif ports:
        raise BasinError(
            f"cannot publish ports with --network {net}: "
            "publish from a network made with `basin network create`"
        )
    return net, ports
