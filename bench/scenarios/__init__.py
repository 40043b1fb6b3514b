"""The scenarios, in the issue's order. Each is a function of a Context returning its rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.context import Context
from bench.results import Row
from bench.scenarios import burst, lifecycle, logs, memory, ps_roundtrip, run_rm, scale, trace


@dataclass(frozen=True)
class Scenario:
    key: str
    number: int
    run: Callable[[Context], list[Row]]
    uses_peers: bool


SCENARIOS = [
    Scenario("run_rm", 1, run_rm.scenario, True),
    Scenario("lifecycle", 2, lifecycle.scenario, True),
    Scenario("ps", 3, ps_roundtrip.scenario, True),
    Scenario("burst", 4, burst.scenario, True),
    Scenario("memory", 5, memory.scenario, True),
    Scenario("logs", 6, logs.scenario, True),
    Scenario("scale", 7, scale.scenario, False),
    Scenario("trace", 8, trace.scenario, False),
]


def select(names: list[str] | None) -> list[Scenario]:
    """Scenarios by key or number; all of them when `names` is empty."""
    if not names:
        return list(SCENARIOS)
    wanted = set(names)
    unknown = wanted - {s.key for s in SCENARIOS} - {str(s.number) for s in SCENARIOS}
    if unknown:
        raise ValueError(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    return [s for s in SCENARIOS if s.key in wanted or str(s.number) in wanted]
