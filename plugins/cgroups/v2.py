"""cgroup v2 backend: one group ``basin-<cid>`` under the supervisor's own cgroup.

cgroup2 lets a group hand controllers to its children (cgroup.subtree_control) only while it
holds no processes itself, the root excepted. So when the supervisor's group is not the root
and still holds processes, they move into a leaf ``basin.supervisor`` beside the containers.
The supervisor's cgroup must therefore be delegated to it (systemd: Delegate=yes).

Every file is only ever written, never expected to appear: the tests run this backend on a
plain directory laid out like cgroup2."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from basin.cgroups import Limits, Stats
from basin.errors import BasinError, NotFound
from plugins.cgroups import _fs, _inotify
from plugins.cgroups._fs import LimitError
from plugins.cgroups.layout import read_self_cgroup

SUPERVISOR_LEAF = "basin.supervisor"
# the limits each controller enforces, for the error when one is missing
_WHAT = {"memory": "memory", "cpu": "CPU quota/shares", "cpuset": "cpuset", "pids": "pids"}


def cpu_weight(shares: int) -> int:
    """v1 cpu.shares [2, 262144] -> v2 cpu.weight [1, 10000], the conversion docker/runc use."""
    shares = min(max(shares, 2), 262_144)
    return 1 + ((shares - 2) * 9999) // 262_142


def cpu_shares(weight: int) -> int:
    """The inverse of cpu_weight: the fewest shares that give ``weight`` (cpu_weight rounds
    down, so many share counts map to one weight)."""
    weight = min(max(weight, 1), 10_000)
    return 2 + -(-(weight - 1) * 262_142 // 9999)  # ceiling division


class CgroupV2:
    name = "v2"

    def __init__(self, root: Path = Path("/sys/fs/cgroup"), self_cgroup: str | None = None) -> None:
        if self_cgroup is None:
            self_cgroup = read_self_cgroup().get("")
            if self_cgroup is None:
                raise BasinError("this process is in no cgroup2 hierarchy")
        parts = [p for p in self_cgroup.split("/") if p]
        # A supervisor already moved into its leaf keeps making groups beside the leaf.
        if parts and parts[-1] == SUPERVISOR_LEAF:
            parts.pop()
        self._root = root
        self._is_root = not parts
        self._parent = root.joinpath(*parts)

    def _group(self, cid: str) -> Path:
        return self._parent / _fs.group_name(cid)

    def _rmdir(self, path: Path) -> None:
        """The one step that differs between cgroupfs and a plain directory (tests override)."""
        os.rmdir(path)

    # -- controllers ----------------------------------------------------------------------

    @staticmethod
    def _required(limits: Limits) -> dict[str, bool]:
        return {
            "memory": limits.memory is not None or limits.memory_swap is not None,
            "cpu": limits.cpu_quota is not None or limits.cpu_shares is not None,
            "cpuset": limits.cpuset_cpus is not None,
            "pids": limits.pids is not None,
        }

    def check(self, limits: Limits) -> None:
        """Refuse, before anything is made, a limit this host cannot enforce."""
        if limits.memory_swap not in (None, -1) and limits.memory is None:
            raise BasinError("a memory+swap limit needs a memory limit")
        available = set(_fs.read(self._parent / "cgroup.controllers").split())
        for c, needed in self._required(limits).items():
            if needed and c not in available:
                raise BasinError(
                    f"cannot enforce the {_WHAT[c]} limit: the {c} controller is not "
                    f"available in {self._parent}"
                )

    def _controllers(self, limits: Limits) -> set[str]:
        """Controllers to enable for the children: those a limit needs (refused if the host
        lacks one), plus memory and pids when available, for OOM events and stats."""
        self.check(limits)
        available = set(_fs.read(self._parent / "cgroup.controllers").split())
        required = self._required(limits)
        return {c for c, needed in required.items() if needed} | ({"memory", "pids"} & available)

    def _evacuate(self) -> None:
        """Move the processes of the supervisor's group into its leaf, so the group may enable
        controllers for its children."""
        pids = _fs.procs(self._parent)
        if self._is_root or not pids:
            return
        leaf = self._parent / SUPERVISOR_LEAF
        leaf.mkdir(exist_ok=True)
        for pid in pids:
            try:
                _fs.write(leaf / "cgroup.procs", pid)
            except LimitError as e:
                if not isinstance(e.err, ProcessLookupError):  # exited meanwhile
                    raise

    def _enable(self, wanted: set[str]) -> None:
        enabled = {c.lstrip("+") for c in _fs.read(self._parent / "cgroup.subtree_control").split()}
        missing = sorted(wanted - enabled)
        if missing:
            self._evacuate()
            _fs.write(
                self._parent / "cgroup.subtree_control",
                " ".join("+" + c for c in missing),
                f"{self._parent}/cgroup.subtree_control",
            )

    # -- the protocol ---------------------------------------------------------------------

    def create(self, cid: str, limits: Limits) -> None:
        g = self._group(cid)
        try:
            self._enable(self._controllers(limits))
        except (LimitError, OSError) as e:
            raise BasinError(f"cannot enable cgroup controllers: {e}") from None
        try:
            g.mkdir()
        except OSError as e:
            raise BasinError(f"cannot create cgroup {g}: {e.strerror}") from None
        try:
            self._write_limits(g, limits)
        except BaseException as e:
            with contextlib.suppress(BasinError):
                _fs.remove_tree(g, self._rmdir)
            if isinstance(e, LimitError):
                raise BasinError(f"container {cid}: {e}") from None
            raise

    def _write_limits(self, g: Path, limits: Limits) -> None:
        if limits.cpu_quota is not None:
            quota = "max" if limits.cpu_quota < 0 else str(limits.cpu_quota)  # docker: -1
            _fs.write(g / "cpu.max", f"{quota} {limits.cpu_period}")
        if limits.cpu_shares is not None:
            _fs.write(g / "cpu.weight", cpu_weight(limits.cpu_shares))
        if limits.memory is not None:
            _fs.write(g / "memory.max", limits.memory)
        if limits.memory_swap is not None:
            # docker's --memory-swap counts memory+swap; v2 limits swap alone.
            swap = "max" if limits.memory_swap == -1 else limits.memory_swap - (limits.memory or 0)
            try:
                _fs.write(g / "memory.swap.max", swap)
            except LimitError as e:
                what = "memory.swap.max (does this host lack swap accounting?)"
                raise LimitError(what, e.value, e.err) from None
        if limits.cpuset_cpus is not None:
            _fs.write(g / "cpuset.cpus", limits.cpuset_cpus)
        if limits.pids is not None:
            _fs.write(g / "pids.max", limits.pids)

    def add(self, cid: str, pid: int) -> None:
        g = self._group(cid)
        try:
            _fs.write(g / "cgroup.procs", pid)
        except LimitError as e:
            raise BasinError(f"cannot move process {pid} into {g}: {e.err.strerror}") from None

    def remove(self, cid: str) -> None:
        _fs.remove_tree(self._group(cid), self._rmdir)

    def kill(self, cid: str, sig: int = signal.SIGKILL) -> None:
        """SIGKILL through cgroup.kill (Linux >= 5.14: atomic, no fork race); other signals,
        or older kernels, process by process."""
        g = self._group(cid)
        if sig == signal.SIGKILL and (g / "cgroup.kill").exists():
            try:
                _fs.write(g / "cgroup.kill", 1)
                return
            except LimitError:
                pass
        _fs.kill_procs([g], sig)

    def oom_fd(self, cid: str) -> int | None:
        """An inotify fd, readable when memory.events changes (the kernel reports each change
        as IN_MODIFY). It wakes for any event there (high, max, oom...), so check
        oom_killed() when it does; drain it by reading. None without the memory controller."""
        events = self._group(cid) / "memory.events"
        if not events.exists():
            return None
        try:
            return _inotify.watch_modify(events)
        except OSError as e:
            raise BasinError(f"cannot watch OOM events of container {cid}: {e}") from None

    def oom_killed(self, cid: str) -> bool:
        try:
            return _fs.read_keyed(self._group(cid) / "memory.events").get("oom_kill", 0) > 0
        except FileNotFoundError:
            if not self.exists(cid):
                raise NotFound(f"no cgroup for container {cid}") from None
            return False

    def stats(self, cid: str) -> Stats:
        g = self._group(cid)
        if not g.is_dir():
            raise NotFound(f"no cgroup for container {cid}")
        try:
            usec = _fs.read_keyed(g / "cpu.stat").get("usage_usec", 0)
        except FileNotFoundError:
            usec = 0
        try:
            limit_text = _fs.read(g / "memory.max")
        except FileNotFoundError:
            limit_text = "max"
        usage = _fs.read_int(g / "memory.current")
        try:
            inactive = _fs.read_keyed(g / "memory.stat").get("inactive_file", 0)
        except FileNotFoundError:
            inactive = 0
        return Stats(
            cpu_usage_ns=usec * 1000,
            # without the inactive page cache the kernel would drop first (what docker shows)
            memory_usage=usage - inactive if inactive < usage else usage,
            memory_limit=None if limit_text == "max" else int(limit_text),
            pids=_fs.read_int(g / "pids.current"),
        )

    def enforced(self, cid: str) -> Limits:
        """The limits as the kernel holds them (cpu.weight converted back to shares)."""
        g = self._group(cid)
        if not g.is_dir():
            raise NotFound(f"no cgroup for container {cid}")

        def text(name: str) -> str | None:
            try:
                return _fs.read(g / name)
            except FileNotFoundError:  # controller not enabled for the group
                return None

        def num(name: str) -> int | None:
            t = text(name)
            return None if t is None or t in ("max", "") else int(t)

        quota, _, period = (text("cpu.max") or "max 100000").partition(" ")
        memory, swap, weight = num("memory.max"), num("memory.swap.max"), num("cpu.weight")
        return Limits(
            memory=memory,
            # back to docker's memory+swap
            memory_swap=None if swap is None else swap + (memory or 0),
            cpu_quota=None if quota == "max" else int(quota),
            cpu_period=int(period or 100_000),
            cpu_shares=None if weight is None else cpu_shares(weight),
            cpuset_cpus=text("cpuset.cpus.effective") or text("cpuset.cpus") or None,
            pids=num("pids.max"),
        )

    def exists(self, cid: str) -> bool:
        return self._group(cid).is_dir()

    def path(self, cid: str) -> Path:
        return self._group(cid)
