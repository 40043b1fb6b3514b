"""Every change of a container's or network's state is one event with a stable name.

An event goes to the supervisor's log (structlog) and, with the same timestamp, to
$BASIN_ROOT/events.jsonl, which `basin events` reads with no supervisor running. Names are
`<object>.<what happened>` (container.created, container.exited, network.removed, ...) and
their fields are part of the interface: add fields, never rename them."""

from __future__ import annotations

from typing import Any

import structlog

from basin.supervisor import logconfig

log = structlog.get_logger()


class Events:
    def emit(self, event: str, level: str = "info", **fields: Any) -> None:
        when = logconfig.now_iso()
        getattr(log, level)(event, timestamp=when, **fields)
        logconfig.journal({"timestamp": when, "level": level, "event": event, **fields})
