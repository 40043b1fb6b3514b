"""The cgroup backend interface; implementations live in plugins/cgroups and are found by
entry point (group ``basin.cgroup_backends``) so a third party can add one the same way."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Limits:
    """Limits for one container. None means: not set, inherit the host's."""

    memory: int | None = None  # bytes
    memory_swap: int | None = None  # bytes of memory+swap, -1 = unlimited (docker's meaning)
    cpu_quota: int | None = None  # microseconds per cpu_period
    cpu_period: int = 100_000
    cpu_shares: int | None = None
    cpuset_cpus: str | None = None  # "0", "0-1", "0,1"
    pids: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Limits:
        return cls(**(data or {}))


@dataclass(frozen=True)
class Stats:
    cpu_usage_ns: int
    memory_usage: int
    memory_limit: int | None
    pids: int


class CgroupBackend(Protocol):
    """One container = one group per hierarchy, named ``basin-<id>``, created under the
    supervisor's own cgroup (read from /proc/self/cgroup)."""

    name: str

    def check(self, limits: Limits) -> None:
        """Raise BasinError, naming the limit and the reason, if this host cannot enforce one
        of ``limits``. Touches nothing: called before a container is made."""

    def create(self, cid: str, limits: Limits) -> None:
        """Create the group(s) and write every limit. Raise BasinError for a limit the host
        cannot enforce, leaving nothing behind."""

    def add(self, cid: str, pid: int) -> None:
        """Move pid into the container's group(s); called before the command execs."""

    def remove(self, cid: str) -> None:
        """Remove the group(s); retry while the kernel still reports EBUSY. Idempotent."""

    def oom_fd(self, cid: str) -> int | None:
        """An fd that becomes readable when the kernel OOM-kills in the group (v1: eventfd on
        cgroup.event_control; v2: memory.events via inotify), or None if not available.
        The caller owns and closes it."""

    def oom_killed(self, cid: str) -> bool:
        """Whether the kernel OOM-killed a process of this group (oom_kill counter > 0)."""

    def stats(self, cid: str) -> Stats:
        """Usage now. memory_usage leaves out the inactive page cache, as docker does."""

    def enforced(self, cid: str) -> Limits:
        """The limits as the kernel holds them after create(): rounded to pages, the cpuset
        inherited from the parent, defaults such as cpu.shares 1024. None = no limit."""

    def exists(self, cid: str) -> bool: ...


def detect() -> CgroupBackend:
    """Pick the backend that fits this host's layout (v1, v2, or hybrid)."""
    from basin.plugins import load_cgroup_backend

    return load_cgroup_backend()
