"""Where basin keeps its state: BASIN_ROOT for records and images, BASIN_RUN for runtime files."""

from __future__ import annotations

import os
from pathlib import Path

TYPE_CHECKING = False  # typing itself costs the thin client ~3 ms to import
if TYPE_CHECKING:
    from dataclasses import dataclass
else:  # the same classes without dataclasses' import cost (see basin.plainclass)
    from basin.plainclass import dataclass


@dataclass(frozen=True)
class Paths:
    root: Path
    run: Path

    @classmethod
    def from_env(cls) -> Paths:
        return cls(
            root=Path(os.environ.get("BASIN_ROOT", "/var/lib/basin")),
            run=Path(os.environ.get("BASIN_RUN", "/run/basin")),
        )

    # --- BASIN_ROOT ---
    @property
    def containers(self) -> Path:
        return self.root / "containers"

    def container(self, cid: str) -> Path:
        return self.containers / cid

    def container_log(self, cid: str) -> Path:
        return self.container(cid) / f"{cid}-json.log"

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def networks(self) -> Path:
        return self.root / "networks"

    @property
    def supervisor_log(self) -> Path:
        return self.root / "supervisor.log"

    @property
    def events_log(self) -> Path:
        return self.root / "events.jsonl"

    # --- BASIN_RUN ---
    @property
    def control(self) -> Path:
        return self.run / "control"

    @property
    def replies(self) -> Path:
        return self.run / "replies"

    @property
    def lock(self) -> Path:
        return self.run / "supervisor.lock"

    @property
    def pidfile(self) -> Path:
        return self.run / "supervisor.pid"

    def ensure(self) -> None:
        # networks/ is made by the first network: an empty one is no state worth showing
        for d in (self.root, self.containers, self.images):
            d.mkdir(parents=True, exist_ok=True)
        self.run.mkdir(parents=True, exist_ok=True, mode=0o700)
