"""Network records and address allocation.

One JSON record per network at ``paths.networks/<name>.json``:
``{name, driver, subnet, gateway, bridge, created, allocations: {cid: ip}}``.
Every read-modify-write holds an exclusive flock on ``paths.networks/.lock``: the supervisor's
worker threads and one-shot commands may allocate at the same time, and flock locks taken
through separate open() calls exclude each other even between threads of one process.

The validation helpers are pure so they can be tested without touching the host; they run
before anything is created, so bad input never leaves half a network behind.
"""

from __future__ import annotations

import fcntl
import hashlib
import ipaddress
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from basin.errors import BasinError, Conflict, NotFound
from basin.paths import Paths
from basin.store import CorruptRecord, read_json, write_json

IFNAMSIZ = 16  # the kernel's limit includes the trailing NUL: names are at most 15 chars
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
# Names end up in iptables comments (max 255 bytes) and file names: keep them short.
MAX_NAME = 64
BRIDGE_PREFIX = "basin-"

Record = dict[str, Any]


# --- validation (pure) ---


def check_name(name: str, what: str = "network") -> str:
    if not _NAME.fullmatch(name) or len(name) > MAX_NAME:
        raise BasinError(
            f"invalid {what} name {name!r}: use up to {MAX_NAME} of [a-zA-Z0-9_.-], "
            "starting with a letter or digit"
        )
    return name


def check_ifname(name: str) -> str:
    if not 0 < len(name) < IFNAMSIZ:
        raise BasinError(f"interface name {name!r} is longer than {IFNAMSIZ - 1} characters")
    if name in (".", "..") or any(c in name for c in "/: \t\n"):
        raise BasinError(f"invalid interface name {name!r}")
    return name


def parse_subnet(text: str) -> ipaddress.IPv4Network:
    """An IPv4 CIDR with no host bits set and room for a gateway and one container."""
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as e:
        # ipaddress says "has host bits set" for 10.234.1.1/24: pass that on, it is clear.
        raise BasinError(f"invalid subnet {text!r}: {e}") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise BasinError(f"invalid subnet {text!r}: only IPv4 subnets are supported")
    if net.prefixlen > 30:
        raise BasinError(f"subnet {text} is too small: use /30 or larger")
    return net


def check_gateway(subnet: ipaddress.IPv4Network, gateway: str | None) -> ipaddress.IPv4Address:
    """The given gateway, or the subnet's first host address."""
    if gateway is None:
        return subnet.network_address + 1
    try:
        gw = ipaddress.IPv4Address(gateway)
    except ValueError:
        raise BasinError(f"invalid gateway {gateway!r}: not an IPv4 address") from None
    if gw not in subnet:
        raise BasinError(f"gateway {gw} is outside subnet {subnet}")
    if gw in (subnet.network_address, subnet.broadcast_address):
        raise BasinError(f"gateway {gw} is the network or broadcast address of {subnet}")
    return gw


def bridge_name(network: str) -> str:
    """The network's own name when it fits IFNAMSIZ and cannot be mistaken for a host
    interface we might clash with; else ``basin-`` + a short hash (stable across runs)."""
    if len(network) < IFNAMSIZ:
        return network
    digest = hashlib.sha256(network.encode()).hexdigest()
    return BRIDGE_PREFIX + digest[: IFNAMSIZ - 1 - len(BRIDGE_PREFIX)]


def host_routes(path: str = "/proc/net/route") -> list[ipaddress.IPv4Network]:
    """Destinations of the host's IPv4 routes (main table), default route excluded.
    /proc/net/route keeps this module free of pyroute2 (140 ms to import)."""
    routes: list[ipaddress.IPv4Network] = []
    with open(path) as f:
        next(f, None)  # header
        for line in f:
            fields = line.split()
            if len(fields) < 8:
                continue
            # little-endian hex, as the kernel prints them
            dest = ipaddress.IPv4Address(int(fields[1], 16).to_bytes(4, "little"))
            mask = bin(int(fields[7], 16)).count("1")
            if mask == 0:
                continue  # a default route overlaps everything and means nothing here
            routes.append(ipaddress.IPv4Network(f"{dest}/{mask}", strict=False))
    return routes


def check_overlap(
    subnet: ipaddress.IPv4Network,
    networks: Iterable[Record],
    routes: Iterable[ipaddress.IPv4Network],
) -> None:
    for rec in networks:
        other = ipaddress.IPv4Network(rec["subnet"])
        if subnet.overlaps(other):
            raise Conflict(f"subnet {subnet} overlaps network {rec['name']} ({other})")
    for route in routes:
        if subnet.overlaps(route):
            raise Conflict(f"subnet {subnet} overlaps host route {route}")


# --- records ---


class Ipam:
    """Network records under one BASIN_ROOT. Every public method takes the lock itself,
    except inside ``with ipam.locked():`` where the ``*_locked`` variants are used."""

    def __init__(self, paths: Paths) -> None:
        self.dir: Path = paths.networks

    def _path(self, name: str) -> Path:
        return self.dir / f"{check_name(name)}.json"

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the only fd of this open file description drops the flock

    # -- lock held by the caller --

    def get_locked(self, name: str) -> Record:
        try:
            rec: Record = read_json(self._path(name))
        except FileNotFoundError:
            raise NotFound(f"no such network: {name}") from None
        except CorruptRecord as e:
            raise BasinError(f"network {name}: corrupt record: {e}") from None
        return rec

    def list_locked(self) -> list[Record]:
        out = []
        for p in sorted(self.dir.glob("*.json")):
            try:
                out.append(read_json(p))
            except (FileNotFoundError, CorruptRecord):
                continue  # a corrupt record must not block every other network
        return out

    def new_record(
        self, name: str, subnet: ipaddress.IPv4Network, gateway: ipaddress.IPv4Address, bridge: str
    ) -> Record:
        """Check name and subnet against existing networks and host routes; the caller
        creates the bridge and then calls save_locked. Lock must be held."""
        if self._path(name).exists():
            raise Conflict(f"network {name} already exists")
        networks = self.list_locked()
        for rec in networks:
            if rec.get("bridge") == bridge:
                raise Conflict(f"bridge {bridge} is already used by network {rec['name']}")
        check_overlap(subnet, networks, host_routes())
        return {
            "name": name,
            "driver": "bridge",
            "subnet": str(subnet),
            "gateway": str(gateway),
            "bridge": bridge,
            "created": datetime.now(UTC).isoformat(timespec="microseconds"),
            "allocations": {},
        }

    def save_locked(self, rec: Record, durable: bool = True) -> None:
        write_json(self._path(rec["name"]), rec, durable)

    def delete_locked(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)

    # -- self-locking --

    def get(self, name: str) -> Record:
        with self.locked():
            return self.get_locked(name)

    def list(self) -> list[Record]:
        with self.locked():
            return self.list_locked()

    def allocate(self, name: str, cid: str) -> str:
        """The lowest free host address of the network, recorded for cid."""
        return self.allocate_record(name, cid)[0]

    def allocate_record(self, name: str, cid: str) -> tuple[str, Record]:
        """allocate(), and the network's record as it was read for it.

        Allocations are written without fsync (~1 ms, the biggest cost of an attach):
        after a power loss every container is gone and so should its address be; the rest
        of the record was made durable when the network was created."""
        with self.locked():
            rec = self.get_locked(name)
            allocs: dict[str, str] = rec["allocations"]
            if cid in allocs:
                raise Conflict(f"container {cid} is already attached to network {name}")
            subnet = ipaddress.IPv4Network(rec["subnet"])
            # hosts() already skips the network and broadcast addresses
            taken = {ipaddress.IPv4Address(ip) for ip in allocs.values()}
            taken.add(ipaddress.IPv4Address(rec["gateway"]))
            for addr in subnet.hosts():
                if addr not in taken:
                    allocs[cid] = str(addr)
                    self.save_locked(rec, durable=False)
                    return str(addr), rec
            raise BasinError(f"network {name}: no free address in {subnet}")

    def release(self, name: str, cid: str) -> str | None:
        """Forget cid's address; the address it had, or None. Idempotent, also when the
        network itself is gone."""
        with self.locked():
            try:
                rec = self.get_locked(name)
            except NotFound:
                return None
            ip: str | None = rec["allocations"].pop(cid, None)
            if ip is not None:
                self.save_locked(rec, durable=False)
            return ip
