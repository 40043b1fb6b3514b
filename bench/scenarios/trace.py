"""8. The internal split of one `basin run --rm true`, so the next speed-up has a target.

The client's moments come from BASIN_TRACE=1 (JSON lines on stderr, CLOCK_MONOTONIC, which is
the same in every process, so the interpreter's start-up is measured from our own launch);
the supervisor's from its events in $BASIN_ROOT/events.jsonl (container.created, .started,
.exited, network.attached with its own ms), matched on the wall clock the client reports too.
"""

from __future__ import annotations

import datetime
import json
import time
from pathlib import Path
from typing import Any

from bench import commands
from bench.basin_env import REPO
from bench.context import Context
from bench.results import Row

NAME = "8 phases of one basin run --rm true"
# (label, from, to): points are client phases or supervisor events (prefixed "ev:")
SPLIT = [
    ("client start (exec → main: interpreter, imports)", "launch", "main"),
    ("client: parse, check, open FIFO", "main", "request"),
    ("supervisor: request → created (records, image, checks)", "request", "ev:container.created"),
    (
        "supervisor: created → started (cgroups, zygote spawn, cgroup join, network, rootfs, exec)",
        "ev:container.created",
        "ev:container.started",
    ),
    ("reply 'started' reaches the client", "ev:container.started", "started"),
    ("command runs and exits, supervisor reaps, releases", "started", "ev:container.exited"),
    ("reply 'result' reaches the client", "ev:container.exited", "exited"),
    ("client: drain the log, exit", "exited", "end"),
]


def _wall(iso: str) -> float:
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _client_marks(stderr: bytes) -> tuple[dict[str, dict[str, Any]], str | None]:
    marks: dict[str, dict[str, Any]] = {}
    cid = None
    for line in stderr.decode(errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and rec.get("trace") == "basin run":
            marks[str(rec["phase"])] = rec
            cid = rec.get("container") or cid
    return marks, cid


def _events(path: Path, short_id: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("container") == short_id:
            found.setdefault(str(rec.get("event")), rec)
    return found


def _points(
    launch: float, marks: dict[str, dict[str, Any]], events: dict[str, dict[str, Any]]
) -> dict[str, float]:
    """Every point as seconds on the wall clock (monotonic ones moved by the client's offset)."""
    offset = marks["main"]["wall"] - marks["main"]["monotonic"]
    points = {"launch": launch + offset}
    for phase, rec in marks.items():
        points[phase] = rec["monotonic"] + offset
    for name, rec in events.items():
        points[f"ev:{name}"] = _wall(rec["timestamp"])
    return points


def scenario(ctx: Context) -> list[Row]:
    b = ctx.basin
    total = Row(NAME + ": whole run", "basin", error=b.problem)
    rows = {label: Row(f"{NAME}: {label}", "basin", error=b.problem) for label, _, _ in SPLIT}
    attach = Row(f"{NAME}: network attach (bridge, from its event)", "basin", error=b.problem)
    out = [total, *rows.values(), attach]
    if b.problem:
        return out
    env = {**b.env, "BASIN_TRACE": "1"}
    try:
        network = b.ensure_network()
    except RuntimeError as exc:
        attach.fail(str(exc))
        network = ""
    runs = min(ctx.count, 10)
    for i in range(2 * runs):
        bridged = i % 2 == 1
        if bridged and not network:
            continue
        cmd = b.cmd("run", "--rm", "--network", network if bridged else "none", "busybox", "true")
        launch = time.perf_counter()
        outcome = commands.run(cmd, env=env, cwd=REPO)
        if not outcome.ok:
            total.fail(outcome.error)
            break
        marks, cid = _client_marks(outcome.stderr)
        if "main" not in marks or cid is None:
            total.fail("BASIN_TRACE=1 printed no trace")
            break
        events = _events(b.state / "root" / "events.jsonl", cid[:12])
        if bridged:
            if "network.attached" in events:
                attach.samples.append(float(events["network.attached"]["ms"]))
            continue
        total.samples.append(outcome.seconds * 1000)
        points = _points(launch, marks, events)
        for label, start, end in SPLIT:
            if start in points and end in points:
                rows[label].samples.append((points[end] - points[start]) * 1000)
    b.cleanup()
    for row in rows.values():
        if not row.samples and not row.error:
            row.fail("no trace for this phase")
    total.note = "network none; the phases below add up to it"
    attach.note = "veth pair, address, route, bridge port: the bridge run's extra"
    lines = ["| phase | median ms |", "|---|---|"]
    for row in out:
        if row.median is not None:
            lines.append(f"| {row.scenario.removeprefix(NAME + ': ')} | {row.median:.1f} |")
    ctx.sections.append((NAME, "\n".join(lines)))
    return out
