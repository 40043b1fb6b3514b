"""5. Memory: the basin supervisor's RSS and PSS with 0, 10 and 100 running containers, and its
cost per container against conmon's RSS (podman runs one conmon per container)."""

from __future__ import annotations

import time

from bench import commands, peers, procfs
from bench.context import Context
from bench.results import Row

NAME = "5 memory"


def _supervisor_rows(ctx: Context) -> list[Row]:
    b = ctx.basin
    levels = [0, 10, ctx.scaled(100, 20)]
    rss = {n: Row(f"{NAME}: supervisor RSS, {n} running", "basin", unit="MB") for n in levels}
    pss = {n: Row(f"{NAME}: supervisor PSS, {n} running", "basin", unit="MB") for n in levels}
    per = Row(f"{NAME}: per-container cost (PSS)", "basin", unit="KB")
    rows = [*rss.values(), *pss.values(), per]
    if b.problem:
        for row in rows:
            row.fail(b.problem)
        return rows
    try:
        outcome = b.run("ps")
        if not outcome.ok:
            raise RuntimeError(f"`basin ps` {outcome.error}")
        running = 0
        for level in levels:
            b.start_sleepers(level - running)
            running = level
            time.sleep(0.5)
            pid = b.supervisor_pid()
            if pid is None:
                raise RuntimeError("no live pid in $BASIN_RUN/supervisor.pid")
            fields = procfs.smaps_rollup(pid)
            rss[level].samples.append(fields["Rss"] / 1024)
            pss[level].samples.append(fields["Pss"] / 1024)
        top = levels[-1]
        per.samples.append((pss[top].samples[0] - pss[0].samples[0]) * 1024 / top)
        per.note = f"(PSS at {top} - PSS at 0) / {top}"
    except (RuntimeError, OSError, KeyError) as exc:
        for row in rows:
            if not row.samples:
                row.fail(str(exc))
    finally:
        b.cleanup()
    return rows


def _conmon_rows(ctx: Context) -> tuple[Row, Row]:
    podman = ctx.podman
    count = ctx.scaled(10, 3)
    rss = Row(f"{NAME}: conmon RSS per container", "podman", unit="KB", error=podman.problem)
    pss = Row(f"{NAME}: conmon PSS per container", "podman", unit="KB", error=podman.problem)
    if podman.problem:
        return rss, pss
    try:
        names = peers.start_podman_sleepers(podman, count)
        for name in names:
            out = commands.run(podman.cmd("inspect", "--format", "{{.State.ConmonPid}}", name))
            if not out.ok:
                raise RuntimeError(f"`podman inspect` {out.error}")
            fields = procfs.smaps_rollup(int(out.stdout.decode().strip()))
            rss.samples.append(fields["Rss"])
            pss.samples.append(fields["Pss"])
        rss.note = pss.note = f"one conmon per container, {count} containers"
    except (RuntimeError, OSError, KeyError, ValueError) as exc:
        rss.fail(str(exc))
        pss.fail(str(exc))
    finally:
        podman.cleanup()
    return rss, pss


def scenario(ctx: Context) -> list[Row]:
    basin_rows = _supervisor_rows(ctx)
    conmon_rss, conmon_pss = _conmon_rows(ctx)
    per = basin_rows[-1]
    for conmon in (conmon_rss, conmon_pss):
        conmon.goal = "basin per-container < 10% of conmon"
        if per.median is not None and conmon.median:
            conmon.ratio = per.median / conmon.median
            conmon.met = conmon.ratio < 0.1
    return [*basin_rows, conmon_rss, conmon_pss]
