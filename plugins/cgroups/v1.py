"""cgroup v1 backend (also used on hybrid hosts, where the controllers are still v1).

Per container one group ``basin-<cid>`` under the supervisor's own group in each hierarchy basin
uses: memory, cpu, cpuacct, cpuset, pids. Where controllers are co-mounted (``cpu,cpuacct``)
they share one directory, so every loop below walks the distinct directories."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from basin.cgroups import Limits, Stats
from basin.errors import BasinError, NotFound
from plugins.cgroups import _fs
from plugins.cgroups._fs import LimitError
from plugins.cgroups.layout import (
    CgroupMount,
    group_dir,
    read_mounts,
    read_self_cgroup,
    v1_mount_points,
)

CONTROLLERS = ("memory", "cpu", "cpuacct", "cpuset", "pids")
# v1 reports "no limit" as the largest page-aligned counter (9223372036854771712 on 4k pages);
# anything this big is no limit a user set.
_UNLIMITED = 1 << 62
_MEMSW = "memory.memsw.limit_in_bytes"
# the limits each controller enforces, for the error when one is missing
_WHAT = {"memory": "memory", "cpu": "CPU quota/shares", "cpuset": "cpuset", "pids": "pids"}


class CgroupV1:
    name = "v1"

    def __init__(
        self, mounts: list[CgroupMount] | None = None, self_cgroup: dict[str, str] | None = None
    ) -> None:
        """``mounts`` and ``self_cgroup`` default to this process's /proc/self files; tests pass
        others to point the backend at a fake tree."""
        points = v1_mount_points(read_mounts() if mounts is None else mounts)
        own = read_self_cgroup() if self_cgroup is None else self_cgroup
        # controller -> the supervisor's own group in that hierarchy (the parent of ours)
        self._parent: dict[str, Path] = {
            c: group_dir(points[c], own[c]) for c in CONTROLLERS if c in points and c in own
        }

    # -- paths ------------------------------------------------------------------------------

    def _group(self, controller: str, cid: str) -> Path | None:
        parent = self._parent.get(controller)
        return None if parent is None else parent / _fs.group_name(cid)

    def _groups(self, cid: str) -> list[Path]:
        """The distinct group directories of a container, one per mounted hierarchy."""
        name = _fs.group_name(cid)
        return list(dict.fromkeys(p / name for p in self._parent.values()))

    def _need(self, controller: str, cid: str) -> Path:
        g = self._group(controller, cid)
        if g is None:
            raise NotFound(f"the {controller} cgroup controller is not mounted on this host")
        return g

    # -- the protocol ---------------------------------------------------------------------

    def create(self, cid: str, limits: Limits) -> None:
        self.check(limits)
        made: list[Path] = []
        try:
            for g in self._groups(cid):
                g.mkdir()
                made.append(g)
            self._write_limits(cid, limits)
        except BaseException as e:
            # Leave nothing behind, whatever failed; then say what failed in one line.
            for g in reversed(made):
                with contextlib.suppress(BasinError):
                    _fs.remove_tree(g)
            if isinstance(e, LimitError):
                raise BasinError(f"container {cid}: {e}") from None
            if isinstance(e, FileExistsError):
                raise BasinError(f"cgroup {e.filename} already exists") from None
            if isinstance(e, OSError):
                raise BasinError(f"cannot create cgroup {e.filename}: {e.strerror}") from None
            raise

    def check(self, limits: Limits) -> None:
        """Refuse, before anything is made, a limit this host has no controller for."""
        wanted = {
            "memory": limits.memory is not None or limits.memory_swap not in (None, -1),
            "cpu": limits.cpu_quota is not None or limits.cpu_shares is not None,
            "cpuset": limits.cpuset_cpus is not None,
            "pids": limits.pids is not None,
        }
        for controller, asked in wanted.items():
            if asked and controller not in self._parent:
                raise BasinError(
                    f"cannot enforce the {_WHAT[controller]} limit: the {controller} cgroup "
                    "controller is not mounted on this host"
                )
        if limits.memory_swap not in (None, -1) and not (self._parent["memory"] / _MEMSW).exists():
            raise BasinError(
                "this host lacks swap accounting (no memory.memsw.* files; boot with "
                "swapaccount=1): cannot apply a memory+swap limit"
            )

    def _write_limits(self, cid: str, limits: Limits) -> None:
        mem = self._group("memory", cid)
        if mem is not None:
            # memory first: the kernel refuses a memsw limit below the memory limit, and the
            # memsw limit starts out unlimited.
            if limits.memory is not None:
                _fs.write(mem / "memory.limit_in_bytes", limits.memory)
            if limits.memory_swap is not None and (mem.parent / _MEMSW).exists():
                _fs.write(mem / _MEMSW, limits.memory_swap)  # -1 means unlimited to the kernel too
        cpu = self._group("cpu", cid)
        if cpu is not None:
            if limits.cpu_quota is not None:
                _fs.write(cpu / "cpu.cfs_period_us", limits.cpu_period)
                _fs.write(cpu / "cpu.cfs_quota_us", limits.cpu_quota)
            if limits.cpu_shares is not None:
                _fs.write(cpu / "cpu.shares", limits.cpu_shares)
        cpuset = self._group("cpuset", cid)
        if cpuset is not None:
            # A new v1 cpuset starts with empty cpus and mems, and a task cannot join it
            # (ENOSPC) until both are set, limit or not: inherit the parent's.
            parent = cpuset.parent
            cpus = limits.cpuset_cpus or _fs.read(parent / "cpuset.cpus")
            _fs.write(cpuset / "cpuset.cpus", cpus)
            _fs.write(cpuset / "cpuset.mems", _fs.read(parent / "cpuset.mems"))
        pids = self._group("pids", cid)
        if pids is not None and limits.pids is not None:
            _fs.write(pids / "pids.max", limits.pids)

    def add(self, cid: str, pid: int) -> None:
        for g in self._groups(cid):
            try:
                _fs.write(g / "cgroup.procs", pid)
            except LimitError as e:
                raise BasinError(f"cannot move process {pid} into {g}: {e.err.strerror}") from None

    def remove(self, cid: str) -> None:
        failed: list[BasinError] = []
        for g in self._groups(cid):
            try:
                _fs.remove_tree(g)
            except BasinError as e:
                failed.append(e)
        if failed:
            raise failed[0]

    def kill(self, cid: str, sig: int = signal.SIGKILL) -> None:
        """Signal every process in the container's groups (v1 has no cgroup.kill)."""
        _fs.kill_procs(self._groups(cid), sig)

    def oom_fd(self, cid: str) -> int | None:
        """An eventfd the kernel signals on OOM in the group (cgroup.event_control with
        memory.oom_control). It also fires once when the group is removed, so check
        oom_killed() when it wakes, before remove()."""
        mem = self._group("memory", cid)
        if mem is None:
            return None
        if not mem.is_dir():
            raise NotFound(f"no cgroup for container {cid}")
        if not (mem / "cgroup.event_control").exists():
            return None
        efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        try:
            ctl = os.open(mem / "memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
            try:
                # The kernel takes what it needs from the oom_control fd at registration, so
                # only the eventfd has to stay open.
                _fs.write(mem / "cgroup.event_control", f"{efd} {ctl}")
            finally:
                os.close(ctl)
        except (OSError, LimitError) as e:
            os.close(efd)
            raise BasinError(f"cannot watch OOM events of container {cid}: {e}") from None
        return efd

    def oom_killed(self, cid: str) -> bool:
        mem = self._need("memory", cid)
        try:
            return _fs.read_keyed(mem / "memory.oom_control").get("oom_kill", 0) > 0
        except FileNotFoundError:
            raise NotFound(f"no cgroup for container {cid}") from None

    def stats(self, cid: str) -> Stats:
        if not self.exists(cid):
            raise NotFound(f"no cgroup for container {cid}")
        acct, mem, pids = (self._group(c, cid) for c in ("cpuacct", "memory", "pids"))
        limit = _fs.read_int(mem / "memory.limit_in_bytes", _UNLIMITED) if mem else _UNLIMITED
        return Stats(
            cpu_usage_ns=_fs.read_int(acct / "cpuacct.usage") if acct else 0,
            memory_usage=_memory_usage(mem) if mem else 0,
            memory_limit=None if limit >= _UNLIMITED else limit,
            pids=_fs.read_int(pids / "pids.current") if pids else 0,
        )

    def enforced(self, cid: str) -> Limits:
        """The limits as the kernel holds them (page-rounded, inherited cpuset...)."""
        if not self.exists(cid):
            raise NotFound(f"no cgroup for container {cid}")

        def num(controller: str, name: str) -> int | None:
            g = self._group(controller, cid)
            if g is None or not (g / name).exists():
                return None
            n = _fs.read_int(g / name, -1)
            return None if n < 0 or n >= _UNLIMITED else n

        cpuset = self._group("cpuset", cid)
        pids = self._group("pids", cid)
        pids_max = _fs.read(pids / "pids.max") if pids else "max"
        return Limits(
            memory=num("memory", "memory.limit_in_bytes"),
            memory_swap=num("memory", _MEMSW),
            cpu_quota=num("cpu", "cpu.cfs_quota_us"),
            cpu_period=num("cpu", "cpu.cfs_period_us") or 100_000,
            cpu_shares=num("cpu", "cpu.shares"),
            cpuset_cpus=_fs.read(cpuset / "cpuset.cpus") if cpuset else None,
            pids=None if pids_max == "max" else int(pids_max),
        )

    def exists(self, cid: str) -> bool:
        return any(g.is_dir() for g in self._groups(cid))

    def paths(self, cid: str) -> dict[str, Path]:
        """Controller -> the container's group directory, for diagnostics and tests."""
        return {c: p / _fs.group_name(cid) for c, p in self._parent.items()}


def _memory_usage(mem: Path) -> int:
    """Usage without the inactive page cache the kernel would drop first (what docker shows)."""
    usage = _fs.read_int(mem / "memory.usage_in_bytes")
    try:
        inactive = _fs.read_keyed(mem / "memory.stat").get("total_inactive_file", 0)
    except FileNotFoundError:
        inactive = 0
    return usage - inactive if inactive < usage else usage
