"""basin attach [OPTIONS] CONTAINER: connect this terminal to a running container.

A container with a PTY (-t) gets our keystrokes (with -i) and sends its terminal output here;
Ctrl-P Ctrl-Q (or --detach-keys) leaves it running. Without a PTY we follow its log from now
on and, if it was started with -i, feed it our stdin (whose EOF closes the container's)."""

from __future__ import annotations

from basin import records
from basin.cli import detachkeys, session
from basin.cli.options import Opt, UsageError, parse, usage
from basin.errors import BasinError
from basin.paths import Paths
from basin.records import RUNNING

PROG = "basin attach"
OPTS = [
    Opt(
        ("--detach-keys",),
        "detach_keys",
        True,
        help="keys that detach (default ctrl-p,ctrl-q)",
        metavar="KEYS",
    ),
    Opt(("--no-stdin",), "no_stdin", help="do not send our stdin to the container"),
    Opt(("-h", "--help"), "help", help="show this help"),
]
SUMMARY = "Attach this terminal to a running container's input and output."


def main(argv: list[str]) -> int:
    p = parse(PROG, OPTS, argv)
    if p.get("help"):
        print(usage(PROG, SUMMARY, OPTS, "CONTAINER"))
        return 0
    if len(p.args) != 1:
        raise UsageError(f"{PROG}: requires exactly one CONTAINER (see basin attach --help)")
    keys = detachkeys.parse(p.get("detach_keys"))
    paths = Paths.from_env()
    # the record says how it was started: a PTY or not, a stdin or not
    ctr = records.resolve(records.load_all(paths, warn=False), p.args[0])
    if ctr.state.status != RUNNING or not records.alive(ctr.state):
        raise BasinError(f"cannot attach to stopped container {ctr.name}: start it first")
    tty = bool(ctr.config.get("tty"))
    stdin = bool(ctr.config.get("interactive")) and not p.get("no_stdin")
    mode = session.Mode(tty=tty, stdin=stdin, detach_keys=keys, log_from_end=True)
    return session.run(paths, {"op": "attach", "ref": ctr.id}, mode)
