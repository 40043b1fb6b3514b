"""Find drivers by entry point; fall back to the in-tree plugins when basin runs from a
source tree that was not installed (entry points then are not registered)."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from basin.cgroups import CgroupBackend
    from basin.network import NetworkDriver
    from basin.paths import Paths

_BUILTIN = {
    "basin.cgroup_backends": {
        "v1": "plugins.cgroups.v1:CgroupV1",
        "v2": "plugins.cgroups.v2:CgroupV2",
    },
    "basin.network_drivers": {"bridge": "plugins.network.bridge:BridgeDriver"},
}


def _load(group: str, name: str) -> Any:
    for ep in entry_points(group=group):
        if ep.name == name:
            return ep.load()
    module, _, attr = _BUILTIN[group][name].partition(":")
    return getattr(importlib.import_module(module), attr)


def available(group: str) -> list[str]:
    names = {ep.name for ep in entry_points(group=group)}
    return sorted(names | set(_BUILTIN.get(group, {})))


def load_cgroup_backend() -> CgroupBackend:
    """v2 when /sys/fs/cgroup is a pure cgroup2 mount, else v1 (also on hybrid hosts)."""
    from plugins.cgroups.layout import host_layout

    kind = "v2" if host_layout() == "v2" else "v1"
    backend: CgroupBackend = _load("basin.cgroup_backends", kind)()
    return backend


def load_network_driver(name: str, paths: Paths | None = None) -> NetworkDriver:
    """The driver named name, for the state under paths (default: the environment's)."""
    from basin.errors import BasinError

    if name not in available("basin.network_drivers"):
        known = ", ".join(available("basin.network_drivers"))
        raise BasinError(f"unknown network driver {name!r} (available: {known})")
    cls = _load("basin.network_drivers", name)
    driver: NetworkDriver = cls(paths) if paths is not None else cls()
    return driver
