"""Turning a typed line into work: the words (as `sh` splits them), a trailing `&`, the one-shot
dispatcher for every basin verb, and the few things only the shell does (help, jobs, kill %N,
the question before `rm -f` of a running container, `logs -f NAME &`)."""

from __future__ import annotations

import contextlib
import shlex
import sys
from dataclasses import dataclass

from basin import records
from basin.cli.options import UsageError, parse, parse_int
from basin.errors import EXIT_BASIN, BasinError
from basin.paths import Paths
from basin.records import RUNNING
from basin.shell import catalog
from basin.shell.jobs import FollowSpec


@dataclass(frozen=True)
class Line:
    argv: list[str]
    background: bool = False


def parse_line(text: str) -> Line:
    """Words split as a POSIX shell would; a trailing `&` (alone or glued on) asks for the
    background. A leading `basin` is dropped: `basin ps` typed out of habit works too."""
    text = text.strip()
    background = text.endswith("&")
    if background:
        text = text[:-1]
    try:
        argv = shlex.split(text)
    except ValueError as e:  # an unclosed quote
        raise UsageError(f"cannot read the line: {e}") from None
    if argv[:1] == ["basin"]:
        argv = argv[1:]
    if argv:
        argv[0] = catalog.ALIASES.get(argv[0], argv[0])
    return Line(argv, background)


def run_cli(argv: list[str]) -> int:
    """One command through the one-shot dispatcher, in this process: the same output, errors
    and exit codes as `basin ARGV`. Nothing it raises ends the shell."""
    from basin.cli.main import main

    code = EXIT_BASIN
    try:
        code = main(argv)
    except SystemExit as e:  # a verb that exits (argparse's --help, usage errors)
        if isinstance(e.code, int):
            code = e.code
        elif e.code is None:
            code = 0
        else:
            print(f"basin: {e.code}", file=sys.stderr)
    except KeyboardInterrupt:
        code = 130
    except BasinError as e:
        print(f"basin: {e.message}", file=sys.stderr)
        code = e.code
    except Exception as e:  # a bug in a verb must not take the shell with it
        print(f"basin: {argv[0]}: internal error: {type(e).__name__}: {e}", file=sys.stderr)
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
    return code


def help_text() -> str:
    def rows(table: dict[str, str]) -> str:
        return "\n".join(f"  {name:<16} {text}" for name, text in table.items())

    own = {
        **catalog.BUILTINS,
        "logs -f NAME &": "Follow a container's log in the background, above the prompt",
    }
    return (
        "Commands (the same words and flags as `basin COMMAND`):\n"
        + rows(catalog.verbs())
        + "\n\nIn the shell:\n"
        + rows(own)
        + "\n\n`help COMMAND` shows a command's options. Tab completes commands, flags, container,"
        + "\nimage and network names; Up and Ctrl-R search the history; Ctrl-D leaves."
    )


def running_targets(argv: list[str], paths: Paths) -> list[str]:
    """For `rm ...`: the containers that `rm -f` would kill (running ones named in argv), read
    fresh from disk. [] when argv is not an `rm -f` or names nothing running; a bad flag or
    unknown name is left for rm itself to report."""
    from basin.cli.lifecycle import RM_OPTS

    if argv[:1] != ["rm"]:
        return []
    try:
        p = parse("basin rm", RM_OPTS, argv[1:])
    except BasinError:
        return []
    if not p.get("force") or p.get("help"):
        return []
    ctrs = records.load_all(paths, warn=False)
    out: list[str] = []
    for ref in p.args:
        try:
            c = records.resolve(ctrs, ref)
        except BasinError:
            continue
        if c.state.status == RUNNING and records.alive(c.state) and c.name not in out:
            out.append(c.name)
    return out


def follow_spec(argv: list[str], paths: Paths) -> FollowSpec:
    """`logs -f [-n N] [--since T] [-t] NAME` as a background follower; anything else with a
    trailing & is refused (the shell has no other background jobs)."""
    from basin.cli.logs import OPTS, PROG, parse_since

    usage = "only 'logs -f NAME &' runs in the background"
    if argv[:1] != ["logs"]:
        raise UsageError(usage)
    p = parse(PROG, OPTS, argv[1:])
    if not p.get("follow"):
        raise UsageError(f"{usage} (add -f)")
    if len(p.args) != 1:
        raise UsageError(f"{PROG}: requires exactly one container")
    tail = None if p.get("tail") in (None, "all") else parse_int(PROG, "--tail", p.get("tail"), 0)
    since = parse_since(p.get("since")) if p.get("since") else None
    ctr = records.resolve(records.load_all(paths, warn=False), p.args[0])
    return FollowSpec(ctr.id, ctr.name, tail, since, bool(p.get("timestamps")))


def job_number(word: str) -> int:
    if not word.startswith("%") or not word[1:].isdigit():
        raise UsageError(f"kill: {word!r} is not a job: use %N (see jobs)")
    return int(word[1:])
