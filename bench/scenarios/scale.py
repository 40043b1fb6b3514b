"""7. Scale: 500 running containers under one supervisor; `ps` and `run --rm true` times against
the same with 10 running, and the supervisor's idle CPU over 5 s."""

from __future__ import annotations

import time

from bench import procfs
from bench.alternation import Contender, alternate
from bench.context import Context
from bench.results import Row

NAME = "7 scale"
IDLE_SECONDS = 5.0


def _measure(ctx: Context, running: int) -> tuple[Row, Row]:
    b = ctx.basin
    ps = Row(f"{NAME}: ps, {running} running", "basin")
    run = Row(f"{NAME}: run --rm true, {running} running", "basin")
    alternate(
        [
            Contender(ps, lambda _i: b.run("ps")),
            Contender(run, lambda _i: b.run("run", "--rm", "--network", "none", "busybox", "true")),
        ],
        ctx.count,
    )
    return ps, run


def scenario(ctx: Context) -> list[Row]:
    b = ctx.basin
    many = ctx.scaled(500, 20)
    names = ["ps", "run --rm true"]
    small = [Row(f"{NAME}: {n}, 10 running", "basin") for n in names]
    large = [Row(f"{NAME}: {n}, {many} running", "basin") for n in names]
    starts = Row(f"{NAME}: run -d, 10 → {many} running", "basin")
    idle = Row(f"{NAME}: supervisor idle CPU over {IDLE_SECONDS:.0f} s, {many} running", "basin")
    idle.unit = "%"
    rows = [*small, *large, starts, idle]
    if b.problem:
        for row in rows:
            row.fail(b.problem)
        return rows
    try:
        b.start_sleepers(10)
        small = list(_measure(ctx, 10))
        starts.samples = b.start_sleepers(many - 10)
        large = list(_measure(ctx, many))
        pid = b.supervisor_pid()
        if pid is None:
            raise RuntimeError("no live pid in $BASIN_RUN/supervisor.pid")
        before = procfs.cpu_seconds(pid)
        time.sleep(IDLE_SECONDS)
        idle.samples.append((procfs.cpu_seconds(pid) - before) / IDLE_SECONDS * 100)
        idle.note = "% of one CPU"
    except (RuntimeError, OSError) as exc:
        for row in [*small, *large, starts, idle]:
            if not row.samples:
                row.fail(str(exc))
    finally:
        b.cleanup()
    for low, high in zip(small, large, strict=True):
        if low.median and high.median:
            high.note = f"{high.median / low.median:.2f}x the time with 10 running"
    return [*small, *large, starts, idle]
