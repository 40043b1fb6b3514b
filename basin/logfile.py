"""Container logs in docker's json-file format: one record a line,
{"log": "hello\\n", "stream": "stdout", "time": "2026-12-04T10:00:00.123456789Z"}.

Bytes that are not UTF-8 are kept through surrogate escapes, so `basin logs` gives back exactly
the bytes the container wrote while the file stays plain JSON for jq."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC
from typing import Any

# docker splits a line longer than this into partial records (no trailing newline).
MAX_RECORD = 16 * 1024


def timestamp(ns: int | None = None) -> str:
    ns = time.time_ns() if ns is None else ns
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def encode(stream: str, chunk: bytes, when: str) -> bytes:
    return (
        json.dumps(
            {"log": chunk.decode("utf-8", "surrogateescape"), "stream": stream, "time": when}
        )
        + "\n"
    ).encode()


def split_records(data: bytes) -> tuple[list[bytes], bytes]:
    """Complete lines (each with its newline; over-long ones split at MAX_RECORD) and the
    unterminated rest."""
    out: list[bytes] = []
    start = 0
    while True:
        nl = data.find(b"\n", start)
        if nl < 0:
            rest = data[start:]
            while len(rest) > MAX_RECORD:
                out.append(rest[:MAX_RECORD])
                rest = rest[MAX_RECORD:]
            return out, rest
        line = data[start : nl + 1]
        while len(line) > MAX_RECORD:
            out.append(line[:MAX_RECORD])
            line = line[MAX_RECORD:]
        out.append(line)
        start = nl + 1


def parse_time(value: str) -> float:
    """Seconds since the epoch from a record's RFC 3339 time (nanoseconds kept to µs)."""
    from datetime import datetime

    head, _, frac = value.rstrip("Z").partition(".")
    dt = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S")

    return dt.replace(tzinfo=UTC).timestamp() + float(f"0.{frac or '0'}")


def decode_line(line: bytes) -> dict[str, Any] | None:
    try:
        rec = json.loads(line)
    except ValueError:
        return None  # a torn last line of a crashed writer: skipped, never fatal
    return rec if isinstance(rec, dict) and "log" in rec else None


def records(data: bytes) -> Iterator[dict[str, Any]]:
    for line in data.splitlines():
        rec = decode_line(line)
        if rec is not None:
            yield rec


def payload(rec: dict[str, Any]) -> bytes:
    text: str = rec["log"]
    return text.encode("utf-8", "surrogateescape")


# ---- --log-opt: rotation of the json-file log ---------------------------------------------
LOG_OPTS = ("max-size", "max-file")


def parse_log_opts(opts: list[str]) -> dict[str, str]:
    """docker's `--log-opt KEY=VALUE` for the json-file driver, checked and kept as the strings
    docker's LogConfig holds ({"max-size": "10k", "max-file": "3"})."""
    from basin.errors import BasinError

    out: dict[str, str] = {}
    for opt in opts:
        key, eq, value = opt.partition("=")
        if not eq or not value:
            raise BasinError(f"invalid --log-opt {opt!r}: expected KEY=VALUE")
        if key not in LOG_OPTS:
            raise BasinError(
                f"unknown log opt {key!r} for the json-file log driver (known: max-size, max-file)"
            )
        out[key] = value
    rotation(out)  # reject bad values now, before anything is created
    return out


def rotation(opts: dict[str, str] | None) -> tuple[int | None, int]:
    """(max_size in bytes or None for unbounded, max_files) from a container's log opts."""
    from basin.errors import BasinError
    from basin.limits import parse_size

    opts = opts or {}
    max_size = None
    if "max-size" in opts and opts["max-size"] != "-1":
        max_size = parse_size(opts["max-size"], "--log-opt max-size")
        if max_size <= 0:
            raise BasinError(f"invalid --log-opt max-size {opts['max-size']!r}: must be positive")
    max_files = 1
    if "max-file" in opts:
        text = opts["max-file"]
        if not text.isdigit() or int(text) < 1:
            raise BasinError(f"invalid --log-opt max-file {text!r}: must be a whole number ≥ 1")
        max_files = int(text)
        if max_files > 1 and max_size is None:
            raise BasinError("--log-opt max-file needs --log-opt max-size")
    return max_size, max_files


def checked_log_opts(value: object) -> dict[str, str]:
    """The log opts of a run request (the supervisor checks again what the client sent)."""
    from basin.errors import BasinError

    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise BasinError("invalid log opts: expected a map of strings")
    return parse_log_opts([f"{k}={v}" for k, v in value.items()])
