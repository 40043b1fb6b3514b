"""The network driver interface; implementations live in plugins/network and are found by
entry point (group ``basin.network_drivers``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


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


class NetworkDriver(Protocol):
    name: str

    def create(self, name: str, subnet: str, gateway: str | None) -> dict[str, Any]:
        """Create the network (bridge, address, NAT); return its record."""

    def remove(self, name: str) -> None:
        """Remove bridge, rules and record; refuse with Conflict while containers are attached."""

    def attach(self, name: str, cid: str, pid: int, ports: list[PortMapping]) -> Attachment:
        """Give the container (its netns is /proc/PID/ns/net) an address on the network.
        Blocking (netlink, iptables): the supervisor calls it in a worker thread."""

    def detach(self, name: str, cid: str) -> None:
        """Release the address, host veth and port rules. Idempotent."""
