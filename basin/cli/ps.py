"""basin ps: read straight from the records on disk; needs no supervisor. The supervisor
renders the same table from its own records for the compiled client (basin.supervisor.oneshot)."""

from __future__ import annotations

import json

from basin import records
from basin.cli.options import Opt, Parsed, UsageError, parse, usage
from basin.paths import Paths
from basin.records import RUNNING, Container

PROG = "basin ps"
OPTS = [
    Opt(("-a", "--all"), "all", help="accepted for docker's sake: ps always lists every container"),
    Opt(("-q", "--quiet"), "quiet", help="print IDs only"),
    Opt(("--format",), "format", True, help="json: one JSON object per container", metavar="FMT"),
    Opt(("--no-trunc",), "no_trunc", help="full IDs"),
    Opt(("-h", "--help"), "help", help="show this help"),
]


def options(argv: list[str]) -> Parsed:
    """The parsed command line; raises UsageError. p.get("help"): print help_text() only."""
    p = parse(PROG, OPTS, argv)
    if p.get("help"):
        return p
    if p.args:
        raise UsageError(f"{PROG}: takes no arguments")
    if p.get("format") not in (None, "json", "table"):
        raise UsageError(f"{PROG}: unknown format {p.get('format')!r} (json or table)")
    return p


def help_text() -> str:
    return usage(PROG, "List containers.", OPTS)


def render(p: Parsed, ctrs: list[Container]) -> str:
    """What `basin ps` prints for these containers (oldest first), newline-terminated."""
    from basin.cli.table import table

    if p.get("quiet"):
        return "".join(f"{c.id if p.get('no_trunc') else c.short_id}\n" for c in ctrs)
    if p.get("format") == "json":
        return "".join(json.dumps(c.summary()) + "\n" for c in ctrs)
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
    return table(["ID", "NAME", "PID", "STATUS", "COMMAND", "CREATED"], rows) + "\n"


def main(argv: list[str]) -> int:
    p = options(argv)
    if p.get("help"):
        print(help_text())
        return 0
    ctrs = records.load_all(Paths.from_env())
    for c in ctrs:
        # a record says running but its process is gone: the supervisor died with it
        if c.state.status == RUNNING and not records.alive(c.state):
            c.state.status = "exited"
            c.state.exit_code = c.state.exit_code if c.state.exit_code is not None else 255
    print(render(p, ctrs), end="")
    return 0
