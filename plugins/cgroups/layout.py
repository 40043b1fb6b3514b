"""Where this host keeps its cgroups, read from /proc/self/mountinfo and /proc/self/cgroup.

The parsers are pure functions of the file's text, so the tests feed them the layouts of other
machines (pure v2, co-mounted ``cpu,cpuacct``, a container whose mounts have a non-/ root)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from basin.errors import BasinError

Layout = Literal["v1", "v2", "hybrid"]

# Super-block options of a v1 cgroup mount that are not controller names.
_NOT_CONTROLLERS = frozenset(
    {"rw", "ro", "noprefix", "clone_children", "xattr", "cpuset_v2_mode", "favordynmods", "all"}
)


@dataclass(frozen=True)
class CgroupMount:
    mount_point: Path
    root: str  # the cgroup path the mount shows at its top ("/" unless bind-mounted from inside)
    version: Literal[1, 2]
    controllers: frozenset[str]  # v1 only: "memory", "cpu", ..., "name=systemd"


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as \ooo octal escapes.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[CgroupMount]:
    """The cgroup and cgroup2 mounts listed in a /proc/PID/mountinfo text."""
    mounts: list[CgroupMount] = []
    for line in text.splitlines():
        # id parent major:minor root mount-point options [optional...] - fstype source super-opts
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        fstype, super_opts = tail[0], tail[2]
        if fstype == "cgroup2":
            mounts.append(
                CgroupMount(Path(_unescape(fields[4])), _unescape(fields[3]), 2, frozenset())
            )
        elif fstype == "cgroup":
            ctrls = frozenset(
                o
                for o in super_opts.split(",")
                if o not in _NOT_CONTROLLERS and ("=" not in o or o.startswith("name="))
            )
            mounts.append(CgroupMount(Path(_unescape(fields[4])), _unescape(fields[3]), 1, ctrls))
    return mounts


def layout_of(mounts: list[CgroupMount]) -> Layout:
    """v1 controllers mounted: "v1", or "hybrid" if a cgroup2 mount exists beside them.
    Only cgroup2 (a v1 ``name=`` hierarchy alone controls nothing): "v2"."""
    v1_controllers = any(
        m.version == 1 and any(not c.startswith("name=") for c in m.controllers) for m in mounts
    )
    has_v2 = any(m.version == 2 for m in mounts)
    if v1_controllers:
        return "hybrid" if has_v2 else "v1"
    if has_v2:
        return "v2"
    raise BasinError("no cgroup filesystem is mounted on this host")


def v1_mount_points(mounts: list[CgroupMount]) -> dict[str, CgroupMount]:
    """Controller name -> its v1 mount. Co-mounted controllers (``cpu,cpuacct``) share one
    entry; when a hierarchy is mounted twice the first mount wins."""
    out: dict[str, CgroupMount] = {}
    for m in mounts:
        if m.version == 1:
            for c in m.controllers:
                out.setdefault(c, m)
    return out


def v2_mount_point(mounts: list[CgroupMount]) -> CgroupMount | None:
    return next((m for m in mounts if m.version == 2), None)


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/PID/cgroup -> {controller: path}; the v2 hierarchy ("0::/path") is key ""."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, ctrls, path = parts
        if not ctrls:
            out[""] = path
        for c in ctrls.split(","):
            if c:
                out[c] = path
    return out


def group_dir(mount: CgroupMount, cgroup_path: str) -> Path:
    """The directory of cgroup ``cgroup_path`` (as /proc/PID/cgroup names it) under ``mount``.
    A mount whose root is not "/" (a container's bind mount) shows only its own subtree, so its
    root is cut from the front of the path."""
    path = cgroup_path
    root = mount.root.rstrip("/")
    if root:
        if path != root and not path.startswith(root + "/"):
            raise BasinError(
                f"cgroup {cgroup_path} is outside the mount {mount.mount_point} (root {mount.root})"
            )
        path = path[len(root) :]
    return mount.mount_point / path.lstrip("/")


def read_mounts() -> list[CgroupMount]:
    return parse_mountinfo(Path("/proc/self/mountinfo").read_text())


def read_self_cgroup() -> dict[str, str]:
    return parse_proc_cgroup(Path("/proc/self/cgroup").read_text())


def host_layout() -> Layout:
    return layout_of(read_mounts())
