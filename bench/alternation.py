"""Taking turns: each iteration runs every contender once, in an order that rotates, so drift on
a shared machine (other jobs, page cache, thermal) falls on all tools alike."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.commands import Outcome
from bench.results import Row


@dataclass
class Contender:
    row: Row
    attempt: Callable[[int], Outcome]


def alternate(contenders: Sequence[Contender], count: int) -> None:
    """Run `count` rounds; a contender that fails keeps its error and sits out the rest."""
    for i in range(count):
        shift = i % max(1, len(contenders))
        for c in [*contenders[shift:], *contenders[:shift]]:
            if c.row.error:
                continue
            outcome = c.attempt(i)
            if outcome.ok:
                c.row.samples.append(outcome.seconds * 1000)
            else:
                c.row.fail(outcome.error)
