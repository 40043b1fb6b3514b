"""basin stop and basin rm: requests to the supervisor, one line per container."""

from __future__ import annotations

import sys

from basin import client
from basin.cli.options import Opt, UsageError, parse, parse_int, usage
from basin.paths import Paths

STOP_OPTS = [
    Opt(
        ("-t", "--time", "--timeout"),
        "time",
        True,
        help="seconds before SIGKILL (default 10)",
        metavar="N",
    ),
    Opt(("-h", "--help"), "help", help="show this help"),
]
RM_OPTS = [
    Opt(("-f", "--force"), "force", help="stop a running container first (SIGKILL)"),
    Opt(("-h", "--help"), "help", help="show this help"),
]


def report(results: list[dict[str, object]]) -> int:
    failed = 0
    for res in results:
        if "error" in res:
            failed += 1
            print(f"basin: {res['error']}", file=sys.stderr)
        else:
            print(res["ref"])
    return 1 if failed else 0


def stop_main(argv: list[str]) -> int:
    prog = "basin stop"
    p = parse(prog, STOP_OPTS, argv)
    if p.get("help"):
        print(
            usage(
                prog,
                "Stop containers: SIGTERM, then SIGKILL after the timeout.",
                STOP_OPTS,
                "NAME...",
            )
        )
        return 0
    if not p.args:
        raise UsageError(f"{prog}: requires at least one container")
    msg: dict[str, object] = {"op": "stop", "refs": p.args}
    if p.get("time") is not None:
        msg["timeout"] = parse_int(prog, "-t", p.get("time"), minimum=0)
    reply = client.call(Paths.from_env(), msg)
    return report(reply["results"])


def rm_main(argv: list[str]) -> int:
    prog = "basin rm"
    p = parse(prog, RM_OPTS, argv)
    if p.get("help"):
        print(
            usage(
                prog, "Remove containers and everything they hold on the host.", RM_OPTS, "NAME..."
            )
        )
        return 0
    if not p.args:
        raise UsageError(f"{prog}: requires at least one container")
    reply = client.call(
        Paths.from_env(), {"op": "rm", "refs": p.args, "force": bool(p.get("force"))}
    )
    return report(reply["results"])
