"""basin supervisor [--background] | basin supervisor start|status|stop [--force]"""

from __future__ import annotations

import os
import sys

from basin import client
from basin.cli.options import Opt, UsageError, parse, usage
from basin.paths import Paths

PROG = "basin supervisor"
OPTS = [
    Opt(("--background",), "background", help="(internal) started by a client: log to file only"),
    Opt(("-f", "--force"), "force", help="with stop: kill running containers too"),
    Opt(("-h", "--help"), "help", help="show this help"),
]
SUMMARY = """Run the supervisor in the foreground (for a service manager), or:
  basin supervisor start      start one in the background unless one runs
  basin supervisor status     is one running, and its pid
  basin supervisor stop       stop it (refuses while containers run, unless --force)"""


def main(argv: list[str]) -> int:
    p = parse(PROG, OPTS, argv)
    if p.get("help"):
        print(usage(PROG, SUMMARY, OPTS, "[start|status|stop]"))
        return 0
    paths = Paths.from_env()
    if not p.args:
        if p.get("background"):
            # detach from the client's terminal so a Ctrl-C there never reaches us
            fd = os.open(os.devnull, os.O_RDWR)
            os.dup2(fd, 0)
            os.close(fd)
        from basin.supervisor.main import run

        code = run(paths, foreground=not p.get("background"))
        return code
    if p.args == ["start"]:
        client.call(paths, {"op": "ping"})  # starts one when none answers
        p.args = ["status"]
    if p.args == ["status"]:
        pid = client.supervisor_pid(paths)
        if pid is None:
            print("supervisor: not running")
            return 1
        reply = client.call(paths, {"op": "ping"}, start=False)
        print(f"supervisor: running, pid {reply['pid']}, version {reply['version']}")
        return 0
    if p.args == ["stop"]:
        if client.supervisor_pid(paths) is None:
            print("supervisor: not running", file=sys.stderr)
            return 0
        client.call(paths, {"op": "shutdown", "force": bool(p.get("force"))}, start=False)
        return 0
    raise UsageError(f"{PROG}: unknown argument {' '.join(p.args)!r}")
