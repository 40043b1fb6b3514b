"""basin logs: reads the json-file log directly; works with no supervisor running."""

from __future__ import annotations

import sys
import time

from basin import logfile, records
from basin.cli.options import Opt, UsageError, parse, parse_int, usage
from basin.cli.output import LogFollower
from basin.paths import Paths
from basin.records import RUNNING

PROG = "basin logs"
OPTS = [
    Opt(("-f", "--follow"), "follow", help="follow until the container exits"),
    Opt(("-n", "--tail"), "tail", True, help="only the last N lines", metavar="N"),
    Opt(
        ("--since",),
        "since",
        True,
        help="only since TIME (RFC 3339, or 10s, 5m, 2h)",
        metavar="TIME",
    ),
    Opt(("-t", "--timestamps"), "timestamps", help="prefix each line with its time"),
    Opt(("-h", "--help"), "help", help="show this help"),
]


def parse_since(value: str, now: float | None = None) -> float:
    now = time.time() if now is None else now
    units = {"s": 1, "m": 60, "h": 3600}
    if value and value[-1] in units and value[:-1].replace(".", "", 1).isdigit():
        return now - float(value[:-1]) * units[value[-1]]
    try:
        return float(value)
    except ValueError:
        pass
    from datetime import UTC, datetime  # here: `logs` without --since never needs it

    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{PROG}: cannot read --since {value!r}: use RFC 3339 or 10s/5m/2h"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def main(argv: list[str]) -> int:
    p = parse(PROG, OPTS, argv)
    if p.get("help"):
        print(usage(PROG, "Print a container's stdout and stderr.", OPTS, "NAME"))
        return 0
    if len(p.args) != 1:
        raise UsageError(f"{PROG}: requires exactly one container")
    tail = None if p.get("tail") in (None, "all") else parse_int(PROG, "--tail", p.get("tail"), 0)
    since = parse_since(p.get("since")) if p.get("since") else None
    paths = Paths.from_env()
    ctr = records.resolve(records.load_all(paths), p.args[0])
    follower = LogFollower(paths.container_log(ctr.id), timestamps=bool(p.get("timestamps")))
    # every retained file, oldest first (<id>-json.log.N ... .1, then <id>-json.log)
    if since is None and tail is None:
        follower.emit_existing()
    else:
        recs = list(logfile.records(follower.read_existing()))
        if since is not None:
            recs = [r for r in recs if logfile.parse_time(r["time"]) >= since]
        if tail is not None:
            recs = recs[len(recs) - tail :] if tail else []
        for r in recs:
            follower.emit(r)
    if not p.get("follow"):
        follower.close()
        return 0
    sys.stdout.flush()
    while True:
        follower.pump()
        try:
            state = records.load(paths, ctr.id).state
        except FileNotFoundError:
            state = records.State(status="removed")
        if state.status != RUNNING or not records.alive(state):
            follower.drain()
            return 0
        time.sleep(0.05)
