"""basin run [OPTIONS] IMAGE [COMMAND [ARG...]]"""

from __future__ import annotations

import json
import os
import sys
import time

from basin import client, spec
from basin.cli import detachkeys, output
from basin.cli.options import Opt, UsageError, parse, usage
from basin.paths import Paths

TYPE_CHECKING = False  # typing costs the thin client ~3 ms to import
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

PROG = "basin run"
OPTS = [
    Opt(("-d", "--detach"), "detach", help="run in the background and print the container ID"),
    Opt(("-i", "--interactive"), "interactive", help="keep stdin open"),
    Opt(("-t", "--tty"), "tty", help="allocate a pseudo-terminal"),
    Opt(
        ("--detach-keys",),
        "detach_keys",
        True,
        help="keys that detach (default ctrl-p,ctrl-q)",
        metavar="KEYS",
    ),
    Opt(("--name", "-name"), "name", True, help="name the container", metavar="NAME"),
    Opt(("--rm",), "rm", help="remove the container when it exits"),
    Opt(("-e", "--env", "-env"), "env", True, True, "set an environment variable", "KEY=VAL"),
    Opt(("--env-file",), "env_file", True, True, "read KEY=VAL lines from a file", "FILE"),
    Opt(("-w", "--workdir"), "workdir", True, help="working directory inside", metavar="DIR"),
    Opt(
        ("-h", "--hostname"),
        "hostname",
        True,
        help="hostname (default: the short ID)",
        metavar="NAME",
    ),
    Opt(("-v", "--volume", "-volume"), "volume", True, True, "bind mount", "HOST:CTR[:ro]"),
    Opt(
        ("--stop-timeout",),
        "stop_timeout",
        True,
        help="seconds before SIGKILL on stop",
        metavar="N",
    ),
    Opt(
        ("--network", "--net", "-network"),
        "network",
        True,
        help="network: none, host or NAME",
        metavar="NET",
    ),
    Opt(("-p", "--publish", "-port"), "publish", True, True, "publish HOST:CTR[/tcp|udp]", "PORTS"),
    Opt(
        ("-m", "--memory", "-mem"), "memory", True, help="memory limit (b, k, m, g)", metavar="SIZE"
    ),
    Opt(
        ("--memory-swap",),
        "memory_swap",
        True,
        help="memory+swap limit, -1 unlimited",
        metavar="SIZE",
    ),
    Opt(("-cpu",), "cpu_quota", True, help="CFS quota, µs per 100000 µs period", metavar="N"),
    Opt(("--cpus",), "cpus", True, help="CPUs' worth of quota", metavar="F"),
    Opt(("--cpu-shares", "-c"), "cpu_shares", True, help="relative CPU weight", metavar="N"),
    Opt(
        ("--cpuset-cpus", "-cpuset"),
        "cpuset_cpus",
        True,
        help="CPUs allowed (0-1, 0,1)",
        metavar="LIST",
    ),
    Opt(("--pids-limit",), "pids_limit", True, help="process limit", metavar="N"),
    Opt(
        ("--log-opt",),
        "log_opt",
        True,
        True,
        "json-file log option: max-size=SIZE, max-file=N",
        "KEY=VAL",
    ),
    Opt(("--help",), "help", help="show this help"),
]
SUMMARY = "Run a command in a new container (COMMAND defaults to /bin/sh)."


class Trace:
    """BASIN_TRACE=1: the moments of one run, as JSON lines on stderr at the end. Both clocks
    are given: CLOCK_MONOTONIC (perf_counter) is the same in every process, so a caller that
    notes it before starting us learns the interpreter's start-up; the wall clock matches the
    timestamps of the supervisor's events ($BASIN_ROOT/events.jsonl)."""

    def __init__(self) -> None:
        self.on = os.environ.get("BASIN_TRACE") == "1"
        self.marks: list[tuple[str, float, float]] = []

    def mark(self, phase: str) -> None:
        if self.on:
            self.marks.append((phase, time.perf_counter(), time.time()))

    def report(self, cid: str | None) -> None:
        if not self.on or not self.marks:
            return
        first = self.marks[0][1]
        for phase, mono, wall in self.marks:
            rec = {"trace": "basin run", "phase": phase, "ms": round((mono - first) * 1000, 3)}
            rec.update({"monotonic": mono, "wall": wall, "container": cid})
            print(json.dumps(rec), file=sys.stderr)


TRACE = Trace()


def build_request(
    argv: list[str],
    paths: Paths | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> dict[str, Any]:
    """The supervisor request for `basin run ARGV`, as the client at `cwd` with `environ`
    means it (the supervisor builds it for the compiled client with the client's own)."""
    p = parse(PROG, OPTS, argv, stop_at_positional=True)
    if not p.args:
        raise UsageError(f"{PROG}: requires an IMAGE (see basin run --help)")
    image, command = p.args[0], p.args[1:]
    if command and not command[0]:
        raise UsageError(f"{PROG}: the command must not be empty")
    if p.get("name") is not None:
        spec.validate_name(p.get("name"))
    if p.get("hostname") is not None:
        spec.validate_hostname(p.get("hostname"))
    env: list[str] = []
    for f in p.get("env_file"):
        env += spec.read_env_file(os.path.join(cwd, f) if cwd else f)
    env = spec.parse_env(
        env + p.get("env"), lookup=dict(os.environ if environ is None else environ)
    )
    for v in p.get("volume"):
        spec.parse_volume(v)
    from basin.network import check_run_network

    check_run_network(paths or Paths.from_env(), p.get("network"), p.get("publish"))
    req: dict[str, Any] = {
        "op": "run",
        "image": image,
        "argv": command or ["/bin/sh"],
        "name": p.get("name"),
        "env": env,
        "workdir": p.get("workdir"),
        "hostname": p.get("hostname"),
        "volumes": p.get("volume"),
        "tty": bool(p.get("tty")),
        "interactive": bool(p.get("interactive")),
        "auto_remove": bool(p.get("rm")),
        "network": p.get("network"),
        "publish": p.get("publish"),
        "wait": not p.get("detach"),
        "limits": _limits(p.values),
    }
    if p.get("log_opt"):
        from basin.logfile import parse_log_opts

        req["log_opts"] = parse_log_opts(p.get("log_opt"))
    if p.get("workdir") is not None and not str(p.get("workdir")).startswith("/"):
        raise UsageError(f"{PROG}: the working directory must be an absolute path")
    if p.get("stop_timeout") is not None:
        req["stop_timeout"] = spec.validate_stop_timeout(p.get("stop_timeout"))
    return req


def _limits(values: dict[str, Any]) -> dict[str, Any]:
    keys = ("memory", "memory_swap", "cpu_quota", "cpus", "cpu_shares", "cpuset_cpus", "pids_limit")
    if not any(values.get(k) is not None for k in keys):
        return {}
    from basin.limits import limits_from_options

    return limits_from_options(**{k: values.get(k) for k in keys}).to_json()


def main(argv: list[str]) -> int:
    TRACE.mark("main")
    try:
        return _main(argv)
    finally:
        TRACE.mark("end")
        TRACE.report(_traced_id[0] if _traced_id else None)


_traced_id: list[str] = []


def wants_help(argv: list[str]) -> bool:
    return bool(argv) and "--help" in argv[: _first_positional(argv)]


def help_text() -> str:
    return usage(PROG, SUMMARY, OPTS, "IMAGE [COMMAND [ARG...]]")


def detach_keys(argv: list[str]) -> bytes:
    """--detach-keys as bytes (checked even when nothing is attached: bad input is an error)."""
    return detachkeys.parse(parse(PROG, OPTS, argv, stop_at_positional=True).get("detach_keys"))


def _main(argv: list[str]) -> int:
    if wants_help(argv):
        print(help_text())
        return 0
    req = build_request(argv)
    paths = Paths.from_env()
    keys = detach_keys(argv)
    if req["wait"] and (req["tty"] or req["interactive"]):
        from basin.cli import session  # only here: it costs every other run ~12 ms to import

        mode = session.Mode(tty=req["tty"], stdin=req["interactive"], detach_keys=keys)
        return session.run(paths, req, mode)
    TRACE.mark("request")
    if not req["wait"]:
        reply = client.call(paths, req)
        _traced_id.append(reply["id"])
        TRACE.mark("result")
        print(reply["id"])
        return 0
    return _foreground(paths, req)


def _first_positional(argv: list[str]) -> int:
    takes_value = {n for o in OPTS if o.value for n in o.names}
    i = 0
    while i < len(argv):
        if argv[i] in takes_value:
            i += 2
            continue
        if not argv[i].startswith("-"):
            return i
        i += 1
    return len(argv)


def _foreground(paths: Paths, req: dict[str, Any]) -> int:
    """Stream the container's log to our stdout/stderr until it exits; exit with its code."""
    follower: output.LogFollower | None = None
    code = 125

    def pump() -> None:
        if follower is not None:
            follower.pump()

    for reply in client.request(paths, req, idle=pump):
        if reply["type"] == "started":
            TRACE.mark("started")
            _traced_id.append(reply["id"])
            follower = output.LogFollower(paths.container_log(reply["id"]))
            follower.pump()  # opens the log now: it exists from before the container started
            continue
        if reply["type"] == "error":
            if follower is not None:
                follower.drain()
            print(f"basin: {reply['error']}", file=sys.stderr)
            return int(reply.get("code", 125))
        code = int(reply["exit_code"])
        TRACE.mark("exited")
    if follower is not None:
        follower.drain()
        TRACE.mark("log drained")
    return code
