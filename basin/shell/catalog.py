"""What the shell knows about commands: the verbs (read from the one-shot dispatcher, so a verb
added there appears here), the shell's own builtins, each verb's flags (read from the verb
module's Opt lists) and what kind of word each verb's arguments are."""

from __future__ import annotations

import contextlib
import functools
import importlib
from collections.abc import Sequence
from dataclasses import dataclass

BUILTINS: dict[str, str] = {
    "help": "Show the commands, or one command's options",
    "jobs": "List background log followers",
    "kill": "kill %N: end background follower N",
    "exit": "Leave the shell (also Ctrl-D)",
}
ALIASES = {"quit": "exit"}

# Words that name what a verb's positional arguments are. A verb missing here (ps, images,
# a verb added later) gets no argument completion, only its flags.
RUNNING = "running"  # container names, running ones only
CONTAINER = "container"  # container names, all of them
IMAGE = "image"
NETWORK = "network"
JOB = "job"

ARG_KINDS: dict[str, str] = {
    "stop": RUNNING,
    "attach": RUNNING,
    "exec": RUNNING,
    "top": RUNNING,
    "stats": RUNNING,
    "rm": CONTAINER,
    "logs": CONTAINER,
    "inspect": CONTAINER,
    "start": CONTAINER,
    "restart": CONTAINER,
    "wait": CONTAINER,
    "kill": JOB,
}
# run, and verbs like it, take one IMAGE and then a command of the container's own
TAKES_IMAGE_THEN_COMMAND = frozenset({"run", "create"})
SUBCOMMANDS: dict[str, dict[str, str]] = {
    "image": {"import": "", "ls": "", "rm": IMAGE},
    "network": {"create": "", "ls": "", "rm": NETWORK, "inspect": NETWORK},
    "supervisor": {"status": "", "stop": ""},
}
# flags whose value is a network name
NETWORK_FLAGS = frozenset({"--network", "--net", "-network"})
NETWORK_BUILTIN_VALUES = ("none", "host")


@dataclass(frozen=True)
class Flag:
    name: str
    takes_value: bool
    help: str


def verbs() -> dict[str, str]:
    """The one-shot verbs with their one-line help, internal ones left out."""
    from basin.cli.main import VERBS

    return {v: h for v, (_, _, h) in VERBS.items() if v != "init"}


def commands() -> dict[str, str]:
    """Every word the shell takes first: the verbs, then the builtins (a builtin wins)."""
    return {**verbs(), **BUILTINS}


@functools.cache
def flags(verb: str, sub: str = "") -> tuple[Flag, ...]:
    """The flags of `verb` (or of `verb sub`), taken from the Opt list of the verb's module:
    SUB_OPTS, VERB_OPTS or OPTS, the first that exists. () when the module has none (argparse
    verbs) or cannot be imported (a verb not merged yet)."""
    from basin.cli.main import VERBS

    if verb not in VERBS:
        return ()
    module_name = VERBS[verb][0]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return ()
    names = [f"{verb.upper()}_OPTS", "OPTS"]
    if sub:
        names.insert(0, f"{sub.upper()}_OPTS")
    for attr in names:
        opts = getattr(module, attr, None)
        if isinstance(opts, Sequence):
            return tuple(_flags_of(opts))
    return ()


def _flags_of(opts: Sequence[object]) -> list[Flag]:
    out: list[Flag] = []
    for o in opts:
        with contextlib.suppress(AttributeError, TypeError):
            takes = bool(getattr(o, "value", False))
            text = str(getattr(o, "help", ""))
            out.extend(Flag(str(n), takes, text) for n in o.names)  # type: ignore[attr-defined]
    return out
