"""Errors that carry docker's exit codes, so every layer reports failures the same way."""

from __future__ import annotations

# docker's conventions: 125 = basin itself failed, 126 = not executable, 127 = not found.
EXIT_BASIN = 125
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127


class BasinError(Exception):
    """A failure to report to the user as one line on stderr, with an exit code."""

    def __init__(self, message: str, code: int = EXIT_BASIN) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def __str__(self) -> str:
        return self.message


class NotFound(BasinError):
    """No such container, image or network."""


class Conflict(BasinError):
    """A name in use, a running container that must be stopped first, and the like."""
