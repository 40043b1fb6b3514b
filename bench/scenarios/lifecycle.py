"""2. `run -d` (returns with the container running), `stop -t 0`, `rm`: basin vs podman."""

from __future__ import annotations

from collections.abc import Callable

from bench import commands
from bench.commands import Outcome
from bench.context import Context
from bench.results import Row, compare

NAME = "2 lifecycle"
PHASES = ("run -d", "stop -t 0", "rm")


def _cycle(rows: dict[str, Row], step: Callable[[str, str], Outcome], name: str) -> None:
    """One run -d / stop / rm cycle of one tool, each phase timed into its own row."""
    for phase in PHASES:
        row = rows[phase]
        if row.error:
            return
        outcome = step(phase, name)
        if not outcome.ok:
            row.fail(outcome.error)
            return
        row.samples.append(outcome.seconds * 1000)


def scenario(ctx: Context) -> list[Row]:
    b, podman = ctx.basin, ctx.podman
    basin_rows = {p: Row(f"{NAME}: {p}", "basin", error=b.problem) for p in PHASES}
    podman_rows = {p: Row(f"{NAME}: {p}", "podman", error=podman.problem) for p in PHASES}

    def basin_step(phase: str, name: str) -> Outcome:
        if phase == "run -d":
            return b.detached(name, "sleep", "1000")
        if phase == "rm":
            outcome = b.run("rm", name)
            if outcome.ok:
                b.names.remove(name)
            return outcome
        return b.run("stop", "-t", "0", name)

    def podman_step(phase: str, name: str) -> Outcome:
        if phase == "run -d":
            return commands.run(podman.detached(name, "sleep", "1000"))
        if phase == "rm":
            outcome = commands.run(podman.cmd("rm", name))
            if outcome.ok:
                podman.names.remove(name)
            return outcome
        return commands.run(podman.cmd("stop", "-t", "0", name))

    try:
        for i in range(ctx.count):
            turns = [
                (basin_rows, basin_step, b.new_name),
                (podman_rows, podman_step, podman.new_name),
            ]
            for rows, step, new_name in turns if i % 2 == 0 else reversed(turns):
                if not rows["run -d"].error:
                    _cycle(rows, step, new_name())
    finally:
        b.cleanup()
        podman.cleanup()
    out: list[Row] = []
    for phase in PHASES:
        compare(basin_rows[phase], podman_rows[phase], "basin ≥ 5x faster than podman", 0.2)
        out += [basin_rows[phase], podman_rows[phase]]
    return out
