"""8. The internal split of one `basin run --rm true`, so the next speed-up has a target.

`basin` is the compiled client: it has no phases of its own worth tracing (~1 ms from exec to
request), so the split comes from the supervisor's events in $BASIN_ROOT/events.jsonl
(container.created, .started, .exited, .removed, network.attached with its own ms) against the
wall clock just before the launch and just after the client's exit.
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
# (label, from, to): "launch" and "end" are the client's process; "ev:" points are events
SPLIT = [
    (
        "client start, request, supervisor until created (records, image, checks)",
        "launch",
        "ev:container.created",
    ),
    (
        "supervisor: created → started (cgroups, zygote spawn, cgroup join, network, rootfs, exec)",
        "ev:container.created",
        "ev:container.started",
    ),
    (
        "command runs and exits, supervisor reaps, releases",
        "ev:container.started",
        "ev:container.exited",
    ),
    ("--rm: the container's directory removed", "ev:container.exited", "ev:container.removed"),
    ("exit code reaches the client, client exits", "ev:container.removed", "end"),
]


def _wall(iso: str) -> float:
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _events(path: Path, name: str) -> dict[str, dict[str, Any]]:
    """The first event of each kind for the container called `name` (network events carry
    only its short ID, which its container.created event gives)."""
    found: dict[str, dict[str, Any]] = {}
    short_id = None
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if short_id is None and rec.get("event") == "container.created" and rec.get("name") == name:
            short_id = rec.get("container")
        if short_id is not None and rec.get("container") == short_id:
            found.setdefault(str(rec.get("event")), rec)
    return found


def _points(launch: float, seconds: float, events: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Every point as seconds on the wall clock."""
    points = {"launch": launch, "end": launch + seconds}
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
        name = f"trace{i}x{time.monotonic_ns()}"
        cmd = b.cmd(
            "run",
            "--rm",
            "--name",
            name,
            "--network",
            network if bridged else "none",
            "busybox",
            "true",
        )
        launch = time.time()
        outcome = commands.run(cmd, env=b.env, cwd=REPO)
        if not outcome.ok:
            total.fail(outcome.error)
            break
        events = _events(b.state / "root" / "events.jsonl", name)
        if "container.created" not in events:
            total.fail(f"no events for container {name}")
            break
        if bridged:
            if "network.attached" in events:
                attach.samples.append(float(events["network.attached"]["ms"]))
            continue
        total.samples.append(outcome.seconds * 1000)
        points = _points(launch, outcome.seconds, events)
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
