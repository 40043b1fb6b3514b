"""The supervisor's side of networking: networks through their drivers, containers onto them,
and the /etc files (hosts, resolv.conf, hostname) each container gets.

Drivers block (netlink, iptables, flock), so every call into one runs in a worker thread;
they are loaded lazily, so a supervisor that never sees a network never imports pyroute2.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from basin import records
from basin.errors import BasinError, Conflict
from basin.network import (
    BUILTIN_MODES,
    PortMapping,
    check_network_name,
    check_run_network,
    list_networks,
    read_network,
)
from basin.paths import Paths
from basin.plainclass import asdict  # PortMapping is a plain class at run time
from basin.plugins import load_network_driver
from basin.records import RUNNING, Container
from basin.supervisor.events import Events
from plugins.network.etcfiles import UPSTREAM_RESOLV, hosts_file, resolv_conf

if TYPE_CHECKING:
    from basin.network import NetworkDriver

DEFAULT_DRIVER = "bridge"
HOST_RESOLV = "/etc/resolv.conf"
HOST_HOSTS = "/etc/hosts"
# container path -> file name in the container's state directory
ETC_FILES = {"/etc/hostname": "hostname", "/etc/hosts": "hosts", "/etc/resolv.conf": "resolv.conf"}


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _write(path: Path, text: str) -> None:
    # in place, not by rename: the file may already be bind-mounted into the container
    with open(path, "w") as f:
        f.write(text)


class Networks:
    def __init__(self, paths: Paths, events: Events) -> None:
        self.paths = paths
        self.events = events
        self._drivers: dict[str, NetworkDriver] = {}

    def _driver_sync(self, name: str) -> NetworkDriver:
        drv = self._drivers.get(name)
        if drv is None:
            drv = self._drivers[name] = load_network_driver(name, self.paths)
        return drv

    async def driver(self, name: str) -> NetworkDriver:
        # the import (pyroute2: ~140 ms) happens once, off the loop
        return await trio.to_thread.run_sync(self._driver_sync, name)

    # ---- networks ---------------------------------------------------------------------
    async def create(self, req: dict[str, Any]) -> dict[str, Any]:
        name = check_network_name(req.get("name"))
        subnet, gateway = req.get("subnet"), req.get("gateway")
        if not isinstance(subnet, str) or not subnet:
            raise BasinError("network create needs --subnet CIDR")
        if gateway is not None and not isinstance(gateway, str):
            raise BasinError(f"invalid gateway {gateway!r}")
        drv = await self.driver(str(req.get("driver") or DEFAULT_DRIVER))
        rec = await trio.to_thread.run_sync(drv.create, name, subnet, gateway)
        self.events.emit(
            "network.created",
            network=name,
            driver=drv.name,
            subnet=rec.get("subnet"),
            gateway=rec.get("gateway"),
        )
        return rec

    async def remove(self, name: str, containers: dict[str, Container]) -> None:
        """Refuse while known containers are attached, naming them; addresses held by
        containers that no longer exist (a crash between attach and record) are released
        first, so they cannot pin the network forever."""
        rec = await trio.to_thread.run_sync(read_network, self.paths, name)
        drv = await self.driver(rec.get("driver", DEFAULT_DRIVER))
        allocations: dict[str, str] = rec.get("allocations", {})
        for cid in allocations:
            if cid not in containers:
                await trio.to_thread.run_sync(drv.detach, name, cid)
                self.events.emit("network.detached", network=name, container=cid[:12], stale=True)
        attached = sorted(containers[cid].name for cid in allocations if cid in containers)
        if attached:
            raise Conflict(
                f"cannot remove network {name}: containers attached: {', '.join(attached)}"
            )
        await trio.to_thread.run_sync(drv.remove, name)
        self.events.emit("network.removed", network=name)

    def reconcile(self, containers: dict[str, Container]) -> None:
        """At supervisor start, before the loop runs: detach every address whose container is
        gone or not running (its supervisor died before it could), which also removes its
        veth and port rules. Blocking: called before trio.run."""
        networks = list_networks(self.paths)
        for rec in networks:
            name = rec.get("name", "")
            for cid in list(rec.get("allocations", {})):
                ctr = containers.get(cid)
                if ctr is not None and ctr.state.status == RUNNING and records.alive(ctr.state):
                    continue
                try:
                    self._driver_sync(rec.get("driver", DEFAULT_DRIVER)).detach(name, cid)
                except (BasinError, OSError) as e:
                    # a start must not fail over it: `network rm` tries again later
                    self.events.emit(
                        "network.detach_failed", "warning", network=name, container=cid[:12],
                        error=str(e),
                    )  # fmt: skip
                    continue
                self.events.emit("network.detached", network=name, container=cid[:12], stale=True)
        for ctr in containers.values():
            if ctr.state.network and not (ctr.state.status == RUNNING and records.alive(ctr.state)):
                ctr.state.network = {}
                records.save_state(self.paths, ctr)

    # ---- containers -------------------------------------------------------------------
    def check_request(self, req: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        """Blocking (reads the network's record): call in a worker thread."""
        net, ports = check_run_network(self.paths, req.get("network"), req.get("publish"))
        return net, [asdict(p) for p in ports]

    def etc_files(self, ctr: Container) -> dict[str, str]:
        """What the container's PID 1 bind-mounts (zspec["files"]); setup() fills them."""
        d = self.paths.container(ctr.id)
        return {inside: str(d / name) for inside, name in ETC_FILES.items()}

    async def setup(self, ctr: Container, pid: int) -> None:
        """Attach the container (PID 1 made, waiting on its go pipe) and write its /etc
        files: all in one worker thread."""
        net = ctr.config.get("network") or "none"
        drv = None
        if net not in BUILTIN_MODES:
            rec = await trio.to_thread.run_sync(read_network, self.paths, net)
            drv = await self.driver(rec.get("driver", DEFAULT_DRIVER))
        ports = [PortMapping(**p) for p in ctr.config.get("ports", [])]
        t0 = time.perf_counter()
        ip = None
        if drv is not None:
            att = await trio.to_thread.run_sync(drv.attach, net, ctr.id, pid, ports)
            ctr.state.network = {**att.to_json(), "driver": drv.name}
            ip = att.ip
        await trio.to_thread.run_sync(self._write_etc, ctr, net, ip)
        if drv is not None:
            self.events.emit(
                "network.attached",
                network=net,
                container=ctr.short_id,
                ip=ip,
                ports=[f"{p.host_port}:{p.container_port}/{p.proto}" for p in ports],
                ms=round((time.perf_counter() - t0) * 1000, 2),
            )

    def _write_etc(self, ctr: Container, net: str, ip: str | None) -> None:
        d = self.paths.container(ctr.id)
        hostname = str(ctr.config.get("hostname", ""))
        host_resolv = _read(HOST_RESOLV) or ""
        # with --network host the container shares the host's namespace, where a loopback
        # resolver answers: only then is the host's file right as it is
        resolv = host_resolv if net == "host" else resolv_conf(host_resolv, _read(UPSTREAM_RESOLV))
        _write(d / "hostname", hostname + "\n")
        _write(d / "hosts", hosts_file(hostname, ctr.name, ip))
        _write(d / "resolv.conf", resolv)

    async def teardown(self, ctr: Container) -> None:
        """Give back the address, host veth and port rules. Idempotent: the record's
        network entry is cleared once the driver has let go."""
        att = ctr.state.network
        if not att:
            return
        drv = await self.driver(att.get("driver", DEFAULT_DRIVER))
        t0 = time.perf_counter()
        # the driver's detach is idempotent and quiet when the network itself is gone
        await trio.to_thread.run_sync(drv.detach, att["network"], ctr.id)
        ctr.state.network = {}
        self.events.emit(
            "network.detached",
            network=att["network"],
            container=ctr.short_id,
            ms=round((time.perf_counter() - t0) * 1000, 2),
        )
