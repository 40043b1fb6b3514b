"""The shell's history file: ~/.basin_history (or $BASIN_HISTORY), kept across sessions and the
source of the grey auto-suggestions."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

from prompt_toolkit.history import FileHistory


def history_path() -> Path:
    explicit = os.environ.get("BASIN_HISTORY")
    if explicit:
        return Path(explicit)
    return Path.home() / ".basin_history"


class ShellHistory(FileHistory):
    """A FileHistory that keeps the shell going when the file cannot be written (a read-only
    home): the session still has its in-memory history."""

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self.broken = ""
        # what is typed may hold secrets (-e TOKEN=...): the file is the user's alone, as bash's
        with contextlib.suppress(OSError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))

    def store_string(self, string: str) -> None:
        if self.broken:
            return
        try:
            super().store_string(string)
        except OSError as e:
            self.broken = f"history not saved to {self.filename!s}: {e.strerror}"

    def load_history_strings(self) -> Iterable[str]:
        try:
            return list(super().load_history_strings())
        except OSError as e:
            self.broken = f"history not read from {self.filename!s}: {e.strerror}"
            return []
