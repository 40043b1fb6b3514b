"""Container logs in docker's json-file format: one record a line,
{"log": "hello\\n", "stream": "stdout", "time": "2026-12-04T10:00:00.123456789Z"}.

Bytes that are not UTF-8 are kept through surrogate escapes, so `basin logs` gives back exactly
the bytes the container wrote while the file stays plain JSON for jq."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

TYPE_CHECKING = False  # typing costs the thin client ~3 ms to import
if TYPE_CHECKING:
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


# The bytes json.dumps copies as they are into a string (printable ASCII but '"' and '\\'),
# plus the newline that ends a record. A chunk of output made only of these (the common case:
# text, base64, `yes`) is encoded and decoded in bulk, by a few C-level passes over the whole
# chunk, instead of one json call per line; the bytes written are the same either way.
_PLAIN = bytes([0x0A, 0x20, 0x21, *range(0x23, 0x5C), *range(0x5D, 0x7F)])
_HEAD = b'{"log": "'
TIME_LEN = len("2026-12-04T10:00:00.123456789Z")  # timestamp()'s width, fixed
_END = b'"}\n'


def _tail(stream: bytes) -> bytes:
    """What follows a newline-terminated payload in its record, up to the time."""
    return b'\\n", "stream": "' + stream + b'", "time": "'


def _lines_fit(data: bytes) -> bool:
    """Every line of ``data`` (which ends with a newline) is at most MAX_RECORD bytes."""
    start, end = 0, len(data)
    while end - start > MAX_RECORD:
        nl = data.rfind(b"\n", start, start + MAX_RECORD)
        if nl < 0:
            return False
        start = nl + 1
    return True


def encode_lines(stream: str, data: bytes, when: str) -> bytes | None:
    """The records of ``data`` (complete lines) exactly as encode() writes them one by one, or
    None when a line needs escaping or splitting: then the caller encodes line by line."""
    if not data or data.translate(None, _PLAIN) or not _lines_fit(data):
        return None
    tail = _tail(stream.encode()) + when.encode() + _END
    return _HEAD + data[:-1].replace(b"\n", tail + _HEAD) + tail


_joints: dict[bytes, Any] = {}


def plain_payload(block: bytes) -> tuple[str, bytes] | None:
    """The output a block of complete records holds, when every record is one encode_lines
    writes (newline-terminated, plain ASCII, one stream): (stream, bytes). None otherwise;
    then the block is decoded record by record."""
    import re

    if not block.startswith(_HEAD):
        return None
    lines = block.count(b"\n")
    for stream in (b"stdout", b"stderr"):
        joint = _joints.get(stream)
        if joint is None:
            # one record's end and the next one's start: a payload's newline in between
            pattern = re.escape(_tail(stream)) + b'[^"]{%d}' % TIME_LEN + re.escape(_END + _HEAD)
            joint = _joints[stream] = re.compile(pattern)
        joined, n = joint.subn(b"\n", block)
        if n != lines - 1:
            continue
        tail = _tail(stream)
        end = len(joined) - TIME_LEN - len(_END)
        if joined[end - len(tail) : end] != tail or not joined.endswith(_END):
            continue
        if b'"' in joined[end : -len(_END)]:
            continue
        body = joined[len(_HEAD) : end - len(tail)]
        # an unescaped quote or any backslash: a boundary that did not match, or an escape
        if b'"' in body or b"\\" in body:
            return None
        return stream.decode(), body + b"\n"
    return None


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
    from datetime import UTC, datetime

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
