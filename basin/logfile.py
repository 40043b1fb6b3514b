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
