"""structlog, configured once: JSON lines with timestamp (ISO 8601, UTC), level, event and the
bound context, nothing else on the stream, so `tail -f supervisor.log | jq .` never breaks.

Everything that could otherwise print on its own is routed through the same renderer: stdlib
logging (pyroute2 logs there), warnings, uncaught exceptions of the main thread and of worker
threads, and "exception ignored" reports. A background supervisor's stdout and stderr are
/dev/null, so a stray print() cannot reach the log either.

The trio loop never writes to a file itself: rendered lines go into a bounded queue that one
writer thread drains into the size-rotated files. A slow or stuck disk costs a dropped line
(counted, and reported once the disk is back), never a stalled loop."""

from __future__ import annotations

import atexit
import contextlib
import datetime
import logging
import os
import queue
import sys
import threading
import types
import warnings
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, Protocol

import structlog

DEFAULT_MAX_SIZE = "10m"
DEFAULT_MAX_FILES = 4  # the current file and three rotated ones
QUEUE_LINES = 10_000


class Sink(Protocol):
    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class FdSink:
    """stderr of a foreground supervisor."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]

    def close(self) -> None:
        pass


class LineWriter:
    """A bounded queue of (sink, line) drained by one thread."""

    def __init__(self, size: int = QUEUE_LINES) -> None:
        self._queue: queue.Queue[tuple[Sink, bytes] | None] = queue.Queue(size)
        self._sinks: list[Sink] = []
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="basin-log-writer", daemon=True)
        self._thread.start()

    def put(self, sink: Sink, line: bytes) -> None:
        try:
            self._queue.put_nowait((sink, line))
        except queue.Full:
            self.dropped += 1  # a slow disk must not stall the caller (the trio loop)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            sink, line = item
            try:
                sink.write(line)
            except OSError:
                self.dropped += 1  # a full disk must not take the supervisor down
            if self.dropped and self._queue.empty():
                self._report_dropped(sink)

    def _report_dropped(self, sink: Sink) -> None:
        n, self.dropped = self.dropped, 0
        with contextlib.suppress(OSError):
            sink.write(render({"event": "log.dropped", "level": "warning", "lines": n}))

    def close(self, timeout: float = 5.0) -> None:
        with contextlib.suppress(queue.Full):
            self._queue.put((None), timeout=timeout)
        self._thread.join(timeout)
        for sink in self._sinks:
            with contextlib.suppress(OSError):
                sink.close()


class QueueLogger:
    """structlog's output end: hands each rendered line to the writer for every sink."""

    def __init__(self, writer: LineWriter, sinks: list[Sink]) -> None:
        self._writer = writer
        self._sinks = sinks

    def msg(self, message: str) -> None:
        line = (message + "\n").encode("utf-8", "backslashreplace")
        for sink in self._sinks:
            self._writer.put(sink, line)

    log = debug = info = warning = error = critical = exception = fatal = msg


def now_iso() -> str:
    """2026-12-04T10:00:00.123456Z"""
    t = datetime.datetime.now(datetime.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}Z"


def _timestamp(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    # an event passes its own timestamp so that its events.jsonl line carries the same one
    event_dict.setdefault("timestamp", now_iso())
    return event_dict


def render(record: dict[str, Any]) -> bytes:
    import json

    record.setdefault("timestamp", now_iso())
    return (json.dumps(record, default=repr) + "\n").encode("utf-8", "backslashreplace")


# ---- the configured state (one supervisor per process) -------------------------------------
_writer: LineWriter | None = None
_journal: Sink | None = None
_startup_fd = -1


def rotation_from_env() -> tuple[int, int]:
    """(max size in bytes, files kept in all) for supervisor.log and events.jsonl:
    BASIN_LOG_MAX_SIZE (10m) and BASIN_LOG_MAX_FILES (4: the current file and 3 rotated)."""
    from basin.errors import BasinError
    from basin.limits import parse_size

    size = parse_size(
        os.environ.get("BASIN_LOG_MAX_SIZE") or DEFAULT_MAX_SIZE, "BASIN_LOG_MAX_SIZE"
    )
    files_text = os.environ.get("BASIN_LOG_MAX_FILES") or str(DEFAULT_MAX_FILES)
    if not files_text.isdigit() or int(files_text) < 1 or size < 1:
        raise BasinError("BASIN_LOG_MAX_SIZE and BASIN_LOG_MAX_FILES must be positive")
    return size, int(files_text)


def configure(
    log_path: os.PathLike[str] | None,
    foreground: bool,
    level: str | None = None,
    events_path: Path | None = None,
) -> None:
    global _writer, _journal
    from basin.rotation import RotatingFile

    max_size, max_files = rotation_from_env()
    writer = LineWriter()
    sinks: list[Sink] = []
    if log_path is not None:
        sinks.append(RotatingFile(Path(log_path), max_size, max_files))
    if foreground:
        sinks.append(FdSink(sys.stderr.fileno()))
    if events_path is not None:
        _journal = RotatingFile(events_path, max_size, max_files)
        writer._sinks.append(_journal)
    writer._sinks.extend(sinks)
    _writer = writer
    atexit.register(shutdown)
    name = (level or os.environ.get("BASIN_LOG_LEVEL") or "info").upper()
    threshold = getattr(logging, name, logging.INFO)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _timestamp,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(default=repr),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=lambda *_: QueueLogger(writer, sinks),
        cache_logger_on_first_use=True,
    )
    _capture_strays(threshold)


def journal(record: dict[str, Any]) -> None:
    """Append one event to events.jsonl (no-op unless configured with an events path)."""
    if _writer is not None and _journal is not None:
        _writer.put(_journal, render(record))


def shutdown() -> None:
    """Write out what is queued; called when the supervisor ends."""
    global _writer, _journal
    if _writer is not None:
        writer, _writer, _journal = _writer, None, None
        writer.close()


# ---- nothing may print on its own ----------------------------------------------------------
class _ToStructlog(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        log = structlog.get_logger()
        method = getattr(log, record.levelname.lower(), log.warning)
        exc = record.exc_info if record.exc_info and record.exc_info[0] else None
        method(
            "python.warning" if record.name == "py.warnings" else "python.log",
            logger=record.name,
            message=record.getMessage(),
            exc_info=exc,
        )


def _capture_strays(threshold: int) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(_ToStructlog())
    root.setLevel(max(threshold, logging.INFO))  # pyroute2's debug chatter is not ours
    logging.captureWarnings(True)
    warnings.simplefilter("default")
    sys.excepthook = _excepthook
    threading.excepthook = _thread_excepthook
    sys.unraisablehook = _unraisablehook


def _excepthook(
    kind: type[BaseException], exc: BaseException, tb: types.TracebackType | None
) -> None:
    structlog.get_logger().critical("supervisor.crashed", exc_info=(kind, exc, tb))
    shutdown()


def _thread_excepthook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    exc = args.exc_value or args.exc_type()
    structlog.get_logger().error(
        "thread.crashed",
        thread=args.thread.name if args.thread else None,
        exc_info=(args.exc_type, exc, args.exc_traceback),
    )


def _unraisablehook(args: Any) -> None:
    exc = args.exc_value
    structlog.get_logger().warning(
        "python.unraisable",
        message=args.err_msg or "Exception ignored",
        object=repr(args.object),
        exc_info=(args.exc_type, exc, args.exc_traceback) if exc is not None else None,
    )


# ---- a background supervisor: stdout/stderr to /dev/null -----------------------------------
def detach_stdio() -> None:
    """Point fds 1 and 2 at /dev/null (so nothing but the log's JSON lines is ever written by
    us), keeping the old stderr (the starting client's pipe) to report a failed start."""
    global _startup_fd
    _startup_fd = os.dup(2)
    os.set_inheritable(_startup_fd, False)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)


def startup_failed(message: str) -> None:
    if _startup_fd >= 0:
        with contextlib.suppress(OSError):
            os.write(_startup_fd, f"basin: {message}\n".encode())


def startup_done() -> None:
    global _startup_fd
    if _startup_fd >= 0:
        os.close(_startup_fd)
        _startup_fd = -1
