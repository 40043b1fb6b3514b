"""basin ps: read straight from the records on disk; needs no supervisor."""

from __future__ import annotations

import json

from basin import records
from basin.cli.options import Opt, parse, usage
from basin.cli.table import table
from basin.paths import Paths
from basin.records import RUNNING

PROG = "basin ps"
OPTS = [
    Opt(("-a", "--all"), "all", help="accepted for docker's sake: ps always lists every container"),
    Opt(("-q", "--quiet"), "quiet", help="print IDs only"),
    Opt(("--format",), "format", True, help="json: one JSON object per container", metavar="FMT"),
    Opt(("--no-trunc",), "no_trunc", help="full IDs"),
    Opt(("-h", "--help"), "help", help="show this help"),
]


def main(argv: list[str]) -> int:
    p = parse(PROG, OPTS, argv)
    if p.get("help"):
        print(usage(PROG, "List containers.", OPTS))
        return 0
    if p.args:
        from basin.cli.options import UsageError

        raise UsageError(f"{PROG}: takes no arguments")
    fmt = p.get("format")
    if fmt not in (None, "json", "table"):
        from basin.cli.options import UsageError

        raise UsageError(f"{PROG}: unknown format {fmt!r} (json or table)")
    paths = Paths.from_env()
    ctrs = records.load_all(paths)
    for c in ctrs:
        # a record says running but its process is gone: the supervisor died with it
        if c.state.status == RUNNING and not records.alive(c.state):
            c.state.status = "exited"
            c.state.exit_code = c.state.exit_code if c.state.exit_code is not None else 255
    if p.get("quiet"):
        for c in ctrs:
            print(c.id if p.get("no_trunc") else c.short_id)
        return 0
    if fmt == "json":
        for c in ctrs:
            print(json.dumps(c.summary()))
        return 0
    rows = [
        [
            c.id if p.get("no_trunc") else c.short_id,
            c.name,
            str(c.state.pid) if c.state.status == RUNNING else "",
            c.status_text(),
            " ".join(c.config.get("argv", [])),
            c.config.get("created", "")[:19].replace("T", " "),
        ]
        for c in ctrs
    ]
    print(table(["ID", "NAME", "PID", "STATUS", "COMMAND", "CREATED"], rows))
    return 0
