"""basin stop and basin rm: requests to the supervisor, one line per container. The parsing and
the report are shared with the supervisor, which runs them for the compiled client."""

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
STOP_HELP = ("basin stop", "Stop containers: SIGTERM, then SIGKILL after the timeout.")
RM_HELP = ("basin rm", "Remove containers and everything they hold on the host.")


def stop_request(argv: list[str]) -> dict[str, object] | str:
    """The supervisor request for `basin stop ARGV`, or the help text to print instead."""
    prog = STOP_HELP[0]
    p = parse(prog, STOP_OPTS, argv)
    if p.get("help"):
        return usage(*STOP_HELP, STOP_OPTS, "NAME...")
    if not p.args:
        raise UsageError(f"{prog}: requires at least one container")
    msg: dict[str, object] = {"op": "stop", "refs": p.args}
    if p.get("time") is not None:
        msg["timeout"] = parse_int(prog, "-t", p.get("time"), minimum=0)
    return msg


def rm_request(argv: list[str]) -> dict[str, object] | str:
    """The supervisor request for `basin rm ARGV`, or the help text to print instead."""
    prog = RM_HELP[0]
    p = parse(prog, RM_OPTS, argv)
    if p.get("help"):
        return usage(*RM_HELP, RM_OPTS, "NAME...")
    if not p.args:
        raise UsageError(f"{prog}: requires at least one container")
    return {"op": "rm", "refs": p.args, "force": bool(p.get("force"))}


def report_text(results: list[dict[str, object]]) -> tuple[str, str, int]:
    """stdout, stderr and exit code for the per-container results of a multi-target verb."""
    out = err = ""
    for res in results:
        if "error" in res:
            err += f"basin: {res['error']}\n"
        else:
            out += f"{res['ref']}\n"
    return out, err, 1 if err else 0


def report(results: list[dict[str, object]]) -> int:
    out, err, code = report_text(results)
    sys.stdout.write(out)
    sys.stderr.write(err)
    return code


def _call(request: dict[str, object] | str) -> int:
    if isinstance(request, str):
        print(request)
        return 0
    reply = client.call(Paths.from_env(), request)
    return report(reply["results"])


def stop_main(argv: list[str]) -> int:
    return _call(stop_request(argv))


def rm_main(argv: list[str]) -> int:
    return _call(rm_request(argv))
