"""basin events: past state changes from $BASIN_ROOT/events.jsonl (and its rotated files), and
with -f new ones as the supervisor appends them. Reads the file only: no supervisor needed."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from basin.cli import template
from basin.cli.logs import parse_since
from basin.cli.options import Opt, UsageError, parse, usage
from basin.logfile import parse_time
from basin.paths import Paths
from basin.rotation import ChainReader

PROG = "basin events"
OPTS = [
    Opt(("-f", "--follow"), "follow", help="keep printing new events as they happen"),
    Opt(
        ("--since",),
        "since",
        True,
        help="only since TIME (RFC 3339, or 10s, 5m, 2h)",
        metavar="TIME",
    ),
    Opt(
        ("--until",),
        "until",
        True,
        help="only until TIME (RFC 3339, or 10s, 5m, 2h)",
        metavar="TIME",
    ),
    Opt(
        ("--filter",),
        "filter",
        True,
        True,
        "container=NAME|ID, event=NAME, network=NAME (repeat: OR within a key, AND across)",
        "KEY=VAL",
    ),
    Opt(("--format",), "format", True, help="json, or a template like '{{.event}}'", metavar="FMT"),
    Opt(("-h", "--help"), "help", help="show this help"),
]
SUMMARY = "Show container, network and supervisor events (docker events)."
FILTER_KEYS = ("container", "event", "network")
POLL_S = 0.05


def parse_filters(values: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for v in values:
        key, eq, want = v.partition("=")
        if not eq or not want or key not in FILTER_KEYS:
            raise UsageError(
                f"{PROG}: invalid --filter {v!r}: use container=NAME, event=NAME or network=NAME"
            )
        out.setdefault(key, []).append(want)
    return out


def _matches_container(ev: dict[str, Any], want: str) -> bool:
    short = str(ev.get("container") or "")
    if not short:
        return False
    # a name, the short ID events carry, or any ID prefix (or the full ID) that agrees with it
    return want == ev.get("name") or short.startswith(want) or want.startswith(short)


def _matches_event(ev: dict[str, Any], want: str) -> bool:
    name = str(ev.get("event", ""))
    return want == name or want == name.partition(".")[2]  # "exited" for container.exited


def matches(ev: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    if "container" in filters and not any(_matches_container(ev, w) for w in filters["container"]):
        return False
    if "event" in filters and not any(_matches_event(ev, w) for w in filters["event"]):
        return False
    return not ("network" in filters and ev.get("network") not in filters["network"])


def human(ev: dict[str, Any]) -> str:
    """2026-12-04T10:00:00.123Z container.started web (id=1c9a4f0e3b2d, pid=4711)"""
    stamp = str(ev.get("timestamp", ""))
    if len(stamp) > 24 and stamp.endswith("Z"):
        stamp = stamp[:23] + "Z"  # milliseconds are enough to read
    extra = {
        k: v
        for k, v in ev.items()
        if k not in ("timestamp", "event", "level", "name", "container") and v is not None
    }
    subject = ev.get("name") or ev.get("network") or ""
    if ev.get("container"):
        extra = {"id": ev["container"], **extra}
    elif subject == ev.get("network"):
        extra.pop("network", None)
    fields = ", ".join(f"{k}={_value(v)}" for k, v in extra.items())
    line = f"{stamp} {ev.get('event', '?')}"
    if subject:
        line += f" {subject}"
    if fields:
        line += f" ({fields})"
    return line


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    return json.dumps(v)


class Printer:
    def __init__(
        self,
        fmt: str | None,
        filters: dict[str, list[str]],
        since: float | None,
        until: float | None,
    ) -> None:
        self.fmt = fmt
        self.filters = filters
        self.since = since
        self.until = until
        self._buf = b""

    def feed(self, data: bytes) -> None:
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        for line in lines:
            try:
                ev = json.loads(line)
            except ValueError:
                continue  # a torn line of a crashed writer
            if isinstance(ev, dict):
                self.show(ev)
        sys.stdout.flush()

    def show(self, ev: dict[str, Any]) -> None:
        try:
            when = parse_time(str(ev.get("timestamp", "")))
        except ValueError:
            return
        if self.since is not None and when < self.since:
            return
        if self.until is not None and when > self.until:
            return
        if not matches(ev, self.filters):
            return
        if self.fmt == "json":
            print(json.dumps(ev))
        elif self.fmt:
            print(template.render(self.fmt, ev))
        else:
            print(human(ev))


def _time(value: str | None, flag: str) -> float | None:
    if not value:
        return None
    try:
        return parse_since(value)
    except UsageError:
        raise UsageError(
            f"{PROG}: cannot read {flag} {value!r}: use RFC 3339 or 10s/5m/2h"
        ) from None


def main(argv: list[str]) -> int:
    p = parse(PROG, OPTS, argv)
    if p.get("help"):
        print(usage(PROG, SUMMARY, OPTS))
        return 0
    if p.args:
        raise UsageError(f"{PROG}: takes no arguments")
    fmt = p.get("format")
    if fmt not in (None, "json"):
        template.check(fmt)
    since = _time(p.get("since"), "--since")
    until = _time(p.get("until"), "--until")
    printer = Printer(fmt, parse_filters(p.get("filter")), since, until)
    chain = ChainReader(Paths.from_env().events_log)
    try:
        printer.feed(chain.read_existing())
        if not p.get("follow"):
            return 0
        while until is None or time.time() <= until:
            data = chain.read_new()
            if data:
                printer.feed(data)
            else:
                time.sleep(POLL_S)
        return 0
    finally:
        chain.close()
