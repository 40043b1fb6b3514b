"""What the shell shows and completes from: container, image and network names and whether the
supervisor is up, read from disk in a worker thread about once a second. Completion and the
toolbar only ever read the last snapshot, so typing never waits on the disk."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass

from basin import client, image, records
from basin.paths import Paths
from basin.records import RUNNING


@dataclass(frozen=True)
class ContainerName:
    name: str
    running: bool
    image: str = ""
    status: str = ""


@dataclass(frozen=True)
class Snapshot:
    containers: tuple[ContainerName, ...] = ()
    images: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()
    supervisor_pid: int | None = None

    @property
    def running(self) -> int:
        return sum(1 for c in self.containers if c.running)

    @property
    def total(self) -> int:
        return len(self.containers)


def read_snapshot(paths: Paths) -> Snapshot:
    """Blocking: run it in a thread."""
    ctrs = []
    for c in records.load_all(paths, warn=False):
        # a record that says running while its process is gone is not running (as ps says)
        running = c.state.status == RUNNING and records.alive(c.state)
        status = RUNNING if running else c.status_text()
        if c.state.status == RUNNING and not running:
            status = "exited"
        ctrs.append(ContainerName(c.name, running, str(c.config.get("image", "")), status))
    return Snapshot(
        containers=tuple(ctrs),
        images=tuple(i.name for i in image.list_images(paths)),
        networks=tuple(network_names(paths)),
        supervisor_pid=client.supervisor_pid(paths),
    )


def network_names(paths: Paths) -> list[str]:
    out: list[str] = []
    try:
        files = sorted(paths.networks.glob("*.json"))
    except OSError:
        return out
    for f in files:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            name = json.loads(f.read_text()).get("name")
            if isinstance(name, str) and name:
                out.append(name)
    return out


class Refresher:
    """Keeps `snapshot` fresh: rereads every `interval` seconds, or at once after poke()."""

    def __init__(
        self,
        paths: Paths,
        interval: float = 1.0,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.paths = paths
        self.interval = interval
        self.snapshot = Snapshot()
        self._on_change = on_change
        self._poked = asyncio.Event()

    def poke(self) -> None:
        self._poked.set()

    async def refresh(self) -> None:
        try:
            snap = await asyncio.to_thread(read_snapshot, self.paths)
        except Exception:  # a half-written file on disk: keep the old snapshot, retry later
            return
        if snap != self.snapshot:
            self.snapshot = snap
            if self._on_change is not None:
                self._on_change()

    async def run(self) -> None:
        while True:
            await self.refresh()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poked.wait(), self.interval)
            self._poked.clear()
