"""Everything a scenario needs: counts, the tools set up for this run, and where notes go."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.basin_env import BasinEnv
from bench.peers import OciRuntime, Podman


@dataclass
class Context:
    count: int
    quick: bool
    basin: BasinEnv
    podman: Podman
    crun: OciRuntime
    runc: OciRuntime
    unshare_problem: str = ""
    notes: list[str] = field(default_factory=list)
    sections: list[tuple[str, str]] = field(default_factory=list)

    def scaled(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    @property
    def few(self) -> int:
        """Iterations for the heavy scenarios (bursts, log floods)."""
        return 1 if self.quick else max(1, self.count // 10)
