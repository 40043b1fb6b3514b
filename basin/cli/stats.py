"""basin stats [NAME...]: CPU, memory and PIDs of containers, as docker shows them.

The supervisor reads the cgroup counters (it knows where each container's groups are and which
backend made them); this side asks for two samples and turns the CPU time between them into a
percentage: 100% is one CPU busy for the whole interval, so the ceiling is 100% x CPUs, as in
docker (whose delta-usage / delta-system-time x online-CPUs comes to the same number)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from basin import client
from basin.cli.options import Opt, UsageError, parse, usage
from basin.cli.output import table
from basin.paths import Paths

PROG = "basin stats"
OPTS = [
    Opt(("-a", "--all"), "all", help="all containers (default: running ones)"),
    Opt(("--no-stream",), "no_stream", help="print one sample and exit"),
    Opt(("--format",), "format", True, help="json: one JSON object per container", metavar="FMT"),
    Opt(("--no-trunc",), "no_trunc", help="full IDs"),
    Opt(("-h", "--help"), "help", help="show this help"),
]
SUMMARY = (
    "Show CPU, memory and PID use of containers (default: every running one), refreshed "
    "every second until Ctrl-C."
)
HEADERS = ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS"]
STREAM_INTERVAL_S = 1.0
ONCE_INTERVAL_S = 0.5  # --no-stream still needs two samples for a CPU %
_CLEAR = "\x1b[2J\x1b[H"


def host_memory() -> int:
    """MemTotal: what docker shows as the limit of a container without one."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def human_size(n: float) -> str:
    """docker's binary units: 0B, 512KiB, 1.953MiB, 31.26GiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.4g}{unit}"
        n /= 1024
    raise AssertionError("unreachable")


def compute(
    rows: list[dict[str, Any]], before: dict[str, dict[str, Any]], host_mem: int
) -> list[dict[str, Any]]:
    """One result per container from its sample now and (if any) its previous one."""
    out = []
    for r in rows:
        prev = before.get(r["id"])
        cpu = 0.0
        if r["running"] and prev is not None and prev["running"]:
            wall = r["read_ns"] - prev["read_ns"]
            used = r["cpu_usage_ns"] - prev["cpu_usage_ns"]
            if wall > 0 and used >= 0:
                cpu = used / wall * 100
        limit = r["memory_limit"] if r["memory_limit"] is not None else host_mem
        usage = r["memory_usage"]
        out.append(
            {
                "id": r["id"],
                "name": r["name"],
                "running": r["running"],
                "cpu_percent": round(cpu, 2),
                "cpu_usage_ns": r["cpu_usage_ns"],
                "memory_usage": usage,
                "memory_limit": limit,
                "memory_limited": r["memory_limit"] is not None,
                "memory_percent": round(usage / limit * 100, 2) if limit and r["running"] else 0.0,
                "pids": r["pids"],
            }
        )
    return out


def render_table(results: list[dict[str, Any]], no_trunc: bool) -> str:
    rows = []
    for s in results:
        ident = s["id"] if no_trunc else s["id"][:12]
        if not s["running"]:
            rows.append([ident, s["name"], "--", "-- / --", "--", "--"])
            continue
        mem = f"{human_size(s['memory_usage'])} / {human_size(s['memory_limit'])}"
        cpu, pct = f"{s['cpu_percent']:.2f}%", f"{s['memory_percent']:.2f}%"
        rows.append([ident, s["name"], cpu, mem, pct, str(s["pids"])])
    return table(HEADERS, rows)


def _sample(paths: Paths, msg: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = client.call(paths, msg)["stats"]
    return rows


def main(argv: list[str]) -> int:
    p = parse(PROG, OPTS, argv)
    if p.get("help"):
        print(usage(PROG, SUMMARY, OPTS, "[NAME...]"))
        return 0
    fmt = p.get("format")
    if fmt not in (None, "json", "table"):
        raise UsageError(f"{PROG}: unknown format {fmt!r} (json or table)")
    paths = Paths.from_env()
    msg = {"op": "stats", "refs": p.args, "all": bool(p.get("all"))}
    stream = not p.get("no_stream")
    clear = stream and fmt != "json" and sys.stdout.isatty()
    host_mem = host_memory()
    try:
        before = {r["id"]: r for r in _sample(paths, msg)}
        while True:
            time.sleep(STREAM_INTERVAL_S if stream else ONCE_INTERVAL_S)
            rows = _sample(paths, msg)
            results = compute(rows, before, host_mem)
            before = {r["id"]: r for r in rows}
            if fmt == "json":
                text = "".join(json.dumps(s) + "\n" for s in results)
            else:
                text = render_table(results, bool(p.get("no_trunc"))) + "\n"
            sys.stdout.write((_CLEAR if clear else "") + text)
            sys.stdout.flush()
            if not stream:
                return 0
    except KeyboardInterrupt:
        return 0
