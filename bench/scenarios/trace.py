"""8. The internal split of one `basin run`: phase timings that basin prints as JSON on stderr
when BASIN_TRACE=1, if the runtime has that switch."""

from __future__ import annotations

import json

from bench import commands
from bench.basin_env import REPO
from bench.context import Context
from bench.results import Row

NAME = "8 phases of one basin run"


def _phases(stderr: bytes) -> list[dict[str, object]]:
    found = []
    for line in stderr.decode(errors="replace").splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            found.append(value)
    return found


def _markdown(phases: list[dict[str, object]]) -> str:
    lines = ["```json", *(json.dumps(p) for p in phases), "```"]
    return "\n".join(lines)


def scenario(ctx: Context) -> list[Row]:
    b = ctx.basin
    row = Row(NAME, "basin", error=b.problem)
    if row.error:
        ctx.sections.append((NAME, f"not available: {row.error}"))
        return [row]
    env = {**b.env, "BASIN_TRACE": "1"}
    cmd = b.cmd("run", "--rm", "--network", "none", "busybox", "true")
    outcome = commands.run(cmd, env=env, cwd=REPO)
    if not outcome.ok:
        row.fail(outcome.error)
        ctx.sections.append((NAME, f"not available: {row.error}"))
        return [row]
    row.samples.append(outcome.seconds * 1000)
    phases = _phases(outcome.stderr)
    if phases:
        row.note = "phases below"
        ctx.sections.append((NAME, _markdown(phases)))
    else:
        row.note = "BASIN_TRACE=1 printed no JSON: not available"
        ctx.sections.append((NAME, "not available: BASIN_TRACE=1 printed no JSON on stderr"))
    return [row]
