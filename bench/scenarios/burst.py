"""4. 50 containers started at once from 50 clients: basin vs podman vs crun."""

from __future__ import annotations

from bench import commands
from bench.alternation import Contender, alternate
from bench.context import Context
from bench.results import Row, compare

NAME = "4 burst of 50 `run --rm true`"
CLIENTS = 50


def scenario(ctx: Context) -> list[Row]:
    b, podman, crun = ctx.basin, ctx.podman, ctx.crun
    basin = Row(NAME, "basin", error=b.problem)
    pod = Row(NAME, "podman", error=podman.problem)
    cr = Row(NAME, "crun run (bundle)", error=crun.problem)
    basin_cmd = b.cmd("run", "--rm", "--network", "none", "busybox", "true")
    podman_cmd = podman.run_cmd("true")
    try:
        alternate(
            [
                Contender(basin, lambda _i: commands.launch_many([basin_cmd] * CLIENTS, env=b.env)),
                Contender(pod, lambda _i: commands.launch_many([podman_cmd] * CLIENTS)),
                Contender(
                    cr, lambda _i: commands.launch_many([crun.run_cmd() for _ in range(CLIENTS)])
                ),
            ],
            ctx.few,
        )
    finally:
        crun.cleanup()
        b.cleanup()
        podman.cleanup()
    for row in (basin, pod, cr):
        row.note = f"wall time until all {CLIENTS} clients returned"
    compare(basin, pod, "basin ≥ 5x faster than podman", 0.2)
    compare(basin, cr)
    return [basin, pod, cr]
