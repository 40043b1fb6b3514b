"""The bottom toolbar: is the supervisor up, how many containers run, background followers, and
the exit code of the last command when it failed."""

from __future__ import annotations

from prompt_toolkit.formatted_text import FormattedText

from basin.shell.snapshot import Snapshot

SEP = ("class:toolbar.sep", "  |  ")


def toolbar(snap: Snapshot, followers: int = 0, last_code: int = 0) -> FormattedText:
    if snap.supervisor_pid is not None:
        sup = [("class:toolbar.up", f" supervisor: up (pid {snap.supervisor_pid})")]
    else:
        sup = [("class:toolbar.down", " supervisor: down")]
    parts = [
        *sup,
        SEP,
        ("class:toolbar", f"containers: {snap.running} running / {snap.total} total"),
    ]
    if followers:
        parts += [SEP, ("class:toolbar", f"jobs: {followers}")]
    if last_code:
        parts += [SEP, ("class:toolbar.error", f"last exit: {last_code}")]
    return FormattedText(parts)
