"""3. One-shot round trip: `basin ps` with 0 and with 100 containers (goal < 25 ms median)."""

from __future__ import annotations

from bench import commands
from bench.alternation import Contender, alternate
from bench.context import Context
from bench.results import Row, compare, judge

NAME = "3 ps round trip"
GOAL_MS = 25.0


def scenario(ctx: Context) -> list[Row]:
    b, podman = ctx.basin, ctx.podman
    many = ctx.scaled(100, 20)
    empty = Row(f"{NAME}: 0 containers", "basin", error=b.problem)
    full = Row(f"{NAME}: {many} containers", "basin", error=b.problem)
    peer = Row(f"{NAME}: 0 containers", "podman ps", error=podman.problem)
    try:
        alternate(
            [
                Contender(empty, lambda _i: b.run("ps")),
                Contender(peer, lambda _i: commands.run(podman.cmd("ps"))),
            ],
            ctx.count,
        )
        if not full.error:
            try:
                b.start_sleepers(many)
            except RuntimeError as exc:
                full.fail(str(exc))
            alternate([Contender(full, lambda _i: b.run("ps"))], ctx.count)
    finally:
        b.cleanup()
    judge(empty, f"< {GOAL_MS:.0f} ms", lambda m: m < GOAL_MS)
    judge(full, f"< {GOAL_MS:.0f} ms", lambda m: m < GOAL_MS)
    compare(empty, peer)
    return [empty, full, peer]
