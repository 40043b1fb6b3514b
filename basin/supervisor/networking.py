"""The supervisor's side of networking: networks through their drivers, containers onto them,
and the /etc files (hosts, resolv.conf, hostname) each container gets.

Drivers block (netlink, iptables, flock), so every call into one runs in a worker thread;
they are loaded lazily, so a supervisor that never sees a network never imports them.

A container's detach runs after its exit has been reported (see teardown): its veth goes
with its network namespace, which the kernel tears down on its own some 10-30 ms after the
last process exits (deleting it ourselves waits as long, for RCU grace periods), and no
`run` should wait for that.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
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
# detaches waiting for a namespace to go hold a worker thread each: their own limit, so a
# burst of exits cannot use up the threads that starting containers need
DETACH_THREADS = 8
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
        self._drivers_lock = threading.Lock()
        # container id -> (network, set once its detach finished): detaches under way
        self._detaching: dict[str, tuple[str, trio.Event]] = {}
        self._detach_limiter: trio.CapacityLimiter | None = None  # made inside trio.run

    def _driver_sync(self, name: str) -> NetworkDriver:
        # one instance per driver, also when two worker threads ask first at once: a driver
        # may remember what it attached (bridge: which containers have no port rules)
        with self._drivers_lock:
            drv = self._drivers.get(name)
            if drv is None:
                drv = self._drivers[name] = load_network_driver(name, self.paths)
            return drv

    async def driver(self, name: str) -> NetworkDriver:
        drv = self._drivers.get(name)
        if drv is not None:
            return drv
        # the import happens once, off the loop
        return await trio.to_thread.run_sync(self._driver_sync, name)

    async def settled(self, network: str | None = None, cid: str | None = None) -> None:
        """Wait for the detaches under way (of one network, or one container)."""
        for key, (net, done) in list(self._detaching.items()):
            if (network is None or net == network) and (cid is None or key == cid):
                await done.wait()

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
        await self.settled(network=name)  # containers that just exited still hold addresses
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
        files: all in one worker thread, one hop off the loop."""
        net = ctr.config.get("network") or "none"
        ports = [PortMapping(**p) for p in ctr.config.get("ports", [])]
        await self.settled(cid=ctr.id)  # a restart: its last detach frees the veth's name
        t0 = time.perf_counter()
        try:
            drv = await trio.to_thread.run_sync(self._setup_sync, ctr, net, pid, ports)
        except BasinError:
            # A full subnet may be waiting only for containers that just exited to give
            # their addresses back: then once more, after them. (Attach is all or nothing.)
            if ctr.state.network or not any(n == net for n, _ in self._detaching.values()):
                raise
            await self.settled(network=net)
            drv = await trio.to_thread.run_sync(self._setup_sync, ctr, net, pid, ports)
        if drv is not None:
            self.events.emit(
                "network.attached",
                network=net,
                container=ctr.short_id,
                ip=ctr.state.network.get("ip"),
                ports=[f"{p.host_port}:{p.container_port}/{p.proto}" for p in ports],
                ms=round((time.perf_counter() - t0) * 1000, 2),
            )

    def _setup_sync(
        self, ctr: Container, net: str, pid: int, ports: list[PortMapping]
    ) -> NetworkDriver | None:
        drv = None
        ip = None
        if net not in BUILTIN_MODES:
            rec = read_network(self.paths, net)
            drv = self._driver_sync(rec.get("driver", DEFAULT_DRIVER))
            att = drv.attach(net, ctr.id, pid, ports)
            # recorded at once (one assignment, atomic for the loop's readers): if what
            # follows fails, the caller's cleanup finds it to detach
            ctr.state.network = {**att.to_json(), "driver": drv.name}
            ip = att.ip
        self._write_etc(ctr, net, ip)
        return drv

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
        """Give back the port rules now, the host veth and the address soon after; for a
        container that has exited (its processes are gone: all callers). Idempotent: the
        record's network entry is cleared once this returns.

        The veth (and with it the address, which must not be handed out while the old veth
        may still answer for it) goes in a task of its own, so a container's exit is
        reported without waiting for the kernel. Whatever comes next waits for it
        (settled): attaching the same container again, removing its network, and a second
        teardown, which is how `rm` still returns only once all of it is gone; not the
        automatic removal of a --rm container, which would hold up its exit report (-t,
        -d). A supervisor that dies first leaves the allocation to reconcile() at the next
        start. Port rules go at once: a host port must be free again as soon as `run -p`
        returns."""
        att = ctr.state.network
        if not att:
            if not ctr.config.get("auto_remove"):
                await self.settled(cid=ctr.id)
            return
        drv = await self.driver(att.get("driver", DEFAULT_DRIVER))
        net = att["network"]
        unpublish = getattr(drv, "unpublish", None)
        detach_exited = getattr(drv, "detach_exited", None)
        if unpublish is None or detach_exited is None:  # a driver without the split
            await self._detach(drv.detach, net, ctr.id)
            ctr.state.network = {}
            return
        if att.get("ports"):
            await trio.to_thread.run_sync(unpublish, net, ctr.id)
        ctr.state.network = {}
        done = trio.Event()
        self._detaching[ctr.id] = (net, done)
        trio.lowlevel.spawn_system_task(self._detach_later, detach_exited, net, ctr.id, done)

    async def _detach_later(
        self, detach: Callable[[str, str], None], net: str, cid: str, done: trio.Event
    ) -> None:
        # A system task: outlives the request that started it, and an exception escaping it
        # would end the supervisor. Its worker thread is never abandoned, so a supervisor
        # that is stopping waits for it.
        try:
            if self._detach_limiter is None:
                self._detach_limiter = trio.CapacityLimiter(DETACH_THREADS)
            await self._detach(detach, net, cid, self._detach_limiter)
        except Exception as e:
            self.events.emit(
                "network.detach_failed", "warning", network=net, container=cid[:12], error=str(e)
            )
        finally:
            if self._detaching.get(cid, (net, done))[1] is done:
                self._detaching.pop(cid, None)
            done.set()

    async def _detach(
        self,
        detach: Callable[[str, str], None],
        net: str,
        cid: str,
        limiter: trio.CapacityLimiter | None = None,
    ) -> None:
        t0 = time.perf_counter()
        # the driver's detach is idempotent and quiet when the network itself is gone
        await trio.to_thread.run_sync(detach, net, cid, limiter=limiter)
        self.events.emit(
            "network.detached",
            network=net,
            container=cid[:12],
            ms=round((time.perf_counter() - t0) * 1000, 2),
        )
