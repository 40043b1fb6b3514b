"""`basin stats` on the supervisor's side: one raw sample of each container's cgroup counters.
The client takes two samples and turns the difference into a CPU percentage."""

from __future__ import annotations

import time
from typing import Any

import trio

from basin.cgroups import CgroupBackend
from basin.errors import BasinError
from basin.records import Container
from basin.supervisor.runtime import Runtime


async def sample(rt: Runtime, refs: list[str], everyone: bool) -> list[dict[str, Any]]:
    """Counters of the named containers, else of the running ones (every one if
    ``everyone``). A container that is not running gets a row with zeros, as in docker."""
    if refs:
        ctrs = [rt.find(r) for r in refs]  # an unknown name fails the whole request
    else:
        ctrs = [c for c in rt.containers.values() if everyone or c.id in rt.live]
    running = {c.id for c in ctrs if c.id in rt.live}
    if running and rt.cgroups is None:
        raise BasinError(
            "no stats: the supervisor runs without cgroups "
            f"({rt.cgroups_error or 'no cgroup backend'})"
        )
    return await trio.to_thread.run_sync(_read, rt.cgroups, ctrs, running)


def _read(
    backend: CgroupBackend | None, ctrs: list[Container], running: set[str]
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for c in ctrs:
        row: dict[str, Any] = {
            "id": c.id,
            "name": c.name,
            "running": False,
            "cpu_usage_ns": 0,
            "memory_usage": 0,
            "memory_limit": None,
            "pids": 0,
            "read_ns": time.monotonic_ns(),
        }
        if backend is not None and c.id in running:
            try:
                st = backend.stats(c.id)
            except (BasinError, OSError):
                pass  # exited between the look-up and the read
            else:
                row.update(
                    running=True,
                    cpu_usage_ns=st.cpu_usage_ns,
                    memory_usage=st.memory_usage,
                    memory_limit=st.memory_limit,
                    pids=st.pids,
                    read_ns=time.monotonic_ns(),
                )
        out.append(row)
    return out
