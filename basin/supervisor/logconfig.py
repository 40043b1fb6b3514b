"""structlog, configured once: JSON lines with timestamp (ISO 8601, UTC), level, event and the
bound context, nothing else on the stream, so `tail -f supervisor.log | jq .` never breaks."""

from __future__ import annotations

import logging
import os
from typing import Any, TextIO

import structlog


class TeeLogger:
    """Writes each rendered line to every file it holds (the log file, and stderr when the
    supervisor runs in the foreground)."""

    def __init__(self, files: list[TextIO]) -> None:
        self._files = files

    def msg(self, message: str) -> None:
        for f in self._files:
            try:
                f.write(message + "\n")
                f.flush()
            except OSError:
                pass  # a full disk must not take the supervisor down

    log = debug = info = warning = error = critical = exception = msg


def configure(
    log_path: os.PathLike[str] | None, foreground: bool, level: str | None = None
) -> None:
    files: list[Any] = []
    if log_path is not None:
        files.append(open(log_path, "a", buffering=1, encoding="utf-8"))  # noqa: SIM115
    if foreground:
        import sys

        files.append(sys.stderr)
    name = (level or os.environ.get("BASIN_LOG_LEVEL") or "info").upper()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, name, logging.INFO)),
        logger_factory=lambda *_: TeeLogger(files),
        cache_logger_on_first_use=True,
    )
