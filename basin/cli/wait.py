"""basin wait: block until containers have stopped, then print each one's exit code.

Reads the records on disk, as `ps` does: the supervisor saves a container's final state only
after its output is in the log, so `wait; logs` always sees the whole log."""

from __future__ import annotations

import time

from basin import client, records
from basin.cli.options import Opt, UsageError, parse, usage
from basin.errors import NotFound
from basin.paths import Paths
from basin.records import RUNNING

PROG = "basin wait"
OPTS = [Opt(("-h", "--help"), "help", help="show this help")]
POLL_S = 0.01


def _exit_code(paths: Paths, cid: str, ref: str) -> int:
    while True:
        try:
            state = records.load(paths, cid).state
        except FileNotFoundError:
            raise NotFound(f"no such container: {ref}") from None
        if state.status != RUNNING:
            return state.exit_code if state.exit_code is not None else 255
        if not records.alive(state) and client.supervisor_pid(paths) is None:
            return 255  # it died with its supervisor: nobody will write its code
        time.sleep(POLL_S)


def main(argv: list[str]) -> int:
    p = parse(PROG, OPTS, argv)
    if p.get("help"):
        print(usage(PROG, "Wait until containers stop; print their exit codes.", OPTS, "NAME..."))
        return 0
    if not p.args:
        raise UsageError(f"{PROG}: requires at least one container")
    paths = Paths.from_env()
    known = records.load_all(paths)
    for ref in p.args:
        ctr = records.resolve(known, ref)
        print(_exit_code(paths, ctr.id, ref), flush=True)
    return 0
