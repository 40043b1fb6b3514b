"""Completion that knows where the cursor is: a command, a flag of that command, a flag's value
(a network after --network), or an argument (running containers after stop, every container
after rm and logs, an image after run, a job after kill).

`suggest()` is pure (the text before the cursor and a snapshot of names in, suggestions out) so
it is tested without a terminal; `ShellCompleter` adapts it to prompt_toolkit."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

from basin.shell import catalog
from basin.shell.snapshot import Snapshot


@dataclass(frozen=True)
class Suggestion:
    text: str
    start: int  # where the replaced word begins, relative to the cursor (<= 0)
    meta: str = ""


def split_words(text: str) -> tuple[list[str], str]:
    """The finished words before the cursor, and the word being typed ('' after a space)."""
    words = text.split()
    if not words or text[-1].isspace():
        return words, ""
    return words[:-1], words[-1]


def suggest(
    text: str,
    snap: Snapshot,
    jobs: Sequence[tuple[int, str]] = (),
    commands: dict[str, str] | None = None,
    flags: Callable[[str, str], Sequence[catalog.Flag]] = catalog.flags,
) -> list[Suggestion]:
    words, word = split_words(text)
    commands = catalog.commands() if commands is None else commands
    if words[:1] == ["basin"]:  # `basin ps` typed out of habit works too
        words = words[1:]
    if not words:
        return _matching(word, commands.items())
    verb, args = catalog.ALIASES.get(words[0], words[0]), words[1:]
    if verb == "help":
        return [] if args else _matching(word, commands.items())
    sub = ""
    subs = catalog.SUBCOMMANDS.get(verb)
    if subs is not None:
        if not args:
            return [] if word.startswith("-") else _matching(word, ((s, "") for s in subs))
        sub, args = args[0], args[1:]
    known = flags(verb, sub)

    # a flag's value: `--network br<Tab>` or `--network=br<Tab>`
    if word.startswith("-") and "=" in word:
        name, _, value = word.partition("=")
        return _values(name, value, snap)
    if args and _takes_value(args[-1], known):
        return _values(args[-1], word, snap)

    positionals = _positionals(args, known)
    if verb in catalog.TAKES_IMAGE_THEN_COMMAND and positionals:
        return []  # past the image: the words (and flags) belong to the container's command
    if word.startswith("-"):
        return _flag_suggestions(word, known)
    kind = catalog.SUBCOMMANDS[verb].get(sub, "") if subs is not None else ""
    if verb in catalog.TAKES_IMAGE_THEN_COMMAND:
        kind = catalog.IMAGE
    kind = kind or catalog.ARG_KINDS.get(verb, "")
    return [s for s in _arguments(kind, word, snap, jobs, commands) if s.text not in positionals]


def _matching(word: str, pairs: Iterable[tuple[str, str]]) -> list[Suggestion]:
    return [Suggestion(t, -len(word), meta) for t, meta in pairs if t.startswith(word)]


def _takes_value(token: str, known: Sequence[catalog.Flag]) -> bool:
    if not token.startswith("-") or "=" in token:
        return False
    return any(f.name == token and f.takes_value for f in known) or token in catalog.NETWORK_FLAGS


def _positionals(args: list[str], known: Sequence[catalog.Flag]) -> list[str]:
    """The finished words that are arguments, not flags or flags' values."""
    out: list[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
        elif a.startswith("-") and a != "-":
            skip = _takes_value(a, known)
        else:
            out.append(a)
    return out


def _flag_suggestions(word: str, known: Sequence[catalog.Flag]) -> list[Suggestion]:
    # the seed's single-dash long spellings (-name, -env) only once the user starts one
    single_dash_long = len(word) >= 2 and word[1] != "-"
    out: list[Suggestion] = []
    for f in known:
        if not f.name.startswith(word):
            continue
        if len(f.name) > 2 and f.name[1] != "-" and not single_dash_long:
            continue
        out.append(Suggestion(f.name, -len(word), f.help))
    return out


def _values(flag: str, value: str, snap: Snapshot) -> list[Suggestion]:
    if flag in catalog.NETWORK_FLAGS:
        names = [*catalog.NETWORK_BUILTIN_VALUES, *snap.networks]
        return _matching(value, ((n, "network") for n in names))
    return []


def _arguments(
    kind: str,
    word: str,
    snap: Snapshot,
    jobs: Sequence[tuple[int, str]],
    commands: dict[str, str],
) -> list[Suggestion]:
    if kind == catalog.RUNNING:
        return _matching(word, ((c.name, c.image) for c in snap.containers if c.running))
    if kind == catalog.CONTAINER:
        return _matching(word, ((c.name, c.status) for c in snap.containers))
    if kind == catalog.IMAGE:
        return _matching(word, ((i, "image") for i in snap.images))
    if kind == catalog.NETWORK:
        return _matching(word, ((n, "network") for n in snap.networks))
    if kind == catalog.JOB:
        out = _matching(word, ((f"%{n}", cmd) for n, cmd in jobs))
        if "kill" in catalog.verbs():  # docker's `kill CONTAINER`, once basin has it
            out += _arguments(catalog.RUNNING, word, snap, jobs, commands)
        return out
    return []


class ShellCompleter(Completer):
    """prompt_toolkit's face of suggest(): reads the current snapshot and jobs, never the disk."""

    def __init__(
        self,
        snapshot: Callable[[], Snapshot],
        jobs: Callable[[], Sequence[tuple[int, str]]] = lambda: (),
    ) -> None:
        self._snapshot = snapshot
        self._jobs = jobs

    def get_completions(self, document: Document, event: CompleteEvent) -> Iterator[Completion]:
        for s in suggest(document.text_before_cursor, self._snapshot(), self._jobs()):
            yield Completion(s.text, start_position=s.start, display_meta=s.meta)
