"""Every change of a container's or network's state is one event with a stable name."""

from __future__ import annotations

from typing import Any

import structlog

log = structlog.get_logger()


class Events:
    def emit(self, event: str, level: str = "info", **fields: Any) -> None:
        getattr(log, level)(event, **fields)
