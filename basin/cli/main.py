"""The `basin` command: dispatch to one small module per verb, imported only when used."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

from basin.errors import BasinError

VERBS: dict[str, tuple[str, str, str]] = {
    # verb: (module, function, one-line help)
    "run": ("basin.cli.run", "main", "Run a command in a new container"),
    "ps": ("basin.cli.ps", "main", "List containers"),
    "logs": ("basin.cli.logs", "main", "Print the logs of a container"),
    "events": ("basin.cli.events", "main", "Show container and supervisor events"),
    "inspect": ("basin.cli.inspect", "main", "Print containers' configuration and state (JSON)"),
    "stop": ("basin.cli.lifecycle", "stop_main", "Stop running containers"),
    "wait": ("basin.cli.wait", "main", "Wait until containers stop; print their exit codes"),
    "attach": ("basin.cli.attach", "main", "Attach to a running container's terminal"),
    "rm": ("basin.cli.lifecycle", "rm_main", "Remove containers"),
    "stats": ("basin.cli.stats", "main", "Show containers' CPU, memory and PID use"),
    "images": ("basin.cli.image", "images_main", "List images"),
    "image": ("basin.cli.image", "image_main", "Import, list and remove images"),
    "supervisor": ("basin.cli.supervisor", "main", "Run, query or stop the supervisor"),
    "network": ("basin.cli.network", "main", "Create, list, inspect and remove networks"),
    "init": ("basin.cli.main", "init_main", "Internal: not a user command (see below)"),
}

USAGE = """Usage: basin COMMAND [OPTIONS]

A lightweight Linux container runtime.

Commands:
{verbs}

`basin init` exists only as a name: containers are started by the supervisor's zygote, which
forks into the new namespaces and execs the command itself; there is no init stage to call.
Run `basin COMMAND --help` for a command's options."""


def usage() -> str:
    verbs = "\n".join(f"  {v:<12} {h}" for v, (_, _, h) in VERBS.items())
    return USAGE.format(verbs=verbs)


def init_main(argv: list[str]) -> int:
    print(
        "basin init is internal: the supervisor's zygote sets containers up; nothing to run",
        file=sys.stderr,
    )
    return 125


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        if sys.stdin.isatty() and sys.stdout.isatty():
            try:
                shell = importlib.import_module("basin.shell")
            except ImportError:
                shell = None
            if shell is not None:
                code: int = shell.main()
                return code
        print(usage(), file=sys.stderr)
        return 2
    verb, rest = argv[0], argv[1:]
    if verb in ("-h", "--help", "help"):
        print(usage())
        return 0
    if verb in ("-v", "--version", "version"):
        from basin import __version__

        print(f"basin {__version__}")
        return 0
    if verb not in VERBS:
        print(f"basin: unknown command {verb!r} (see basin --help)", file=sys.stderr)
        return 125
    module, func, _ = VERBS[verb]
    fn: Callable[[list[str]], int] = getattr(importlib.import_module(module), func)
    try:
        return fn(rest)
    except BasinError as e:
        print(f"basin: {e.message}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
