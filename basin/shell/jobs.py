"""Background jobs: `logs -f NAME &` follows a container's json-file log on the shell's asyncio
loop, reading it with aiofiles, and prints what arrives above the prompt while the user types.
`jobs` lists them, `kill %N` ends one, and a follower ends by itself once its container stops.

aiofiles lives here and only here: it needs asyncio and fails under trio, so the supervisor never
imports this module."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiofiles

from basin import logfile, records
from basin.paths import Paths
from basin.records import RUNNING

# (stream, text) lines, stream being "stdout", "stderr" or "notice" for the shell's own words
Lines = list[tuple[str, str]]
Sink = Callable[[str, Lines], None]  # (container name, lines)

POLL_S = 0.1  # how often an idle follower looks for new bytes
STATE_EVERY = 3  # ... and every this many idle polls, whether its container still runs
_CONTROL = {c: "?" for c in range(32) if c != 9} | {127: "?"}


@dataclass(frozen=True)
class FollowSpec:
    cid: str
    name: str
    tail: int | None = None  # print only the last N existing lines first (None: all)
    since: float | None = None  # ... and only those written since this time
    timestamps: bool = False


def record_lines(rec: dict[str, Any], timestamps: bool) -> Lines:
    """A log record as display lines: a terminal's \\r\\n and control bytes made harmless,
    since they would scramble the prompt drawn below them."""
    text = logfile.payload(rec).decode("utf-8", "replace")
    if text.endswith("\n"):
        text = text[:-1]
    stream = "stderr" if rec.get("stream") == "stderr" else "stdout"
    stamp = f"{rec.get('time', '')} " if timestamps else ""
    return [(stream, stamp + line.rstrip("\r").translate(_CONTROL)) for line in text.split("\n")]


def _still_running(paths: Paths, cid: str) -> bool:
    try:
        state = records.load(paths, cid).state
    except (FileNotFoundError, ValueError, KeyError):
        return False  # removed (rm -f) or unreadable: nothing more will come
    return state.status == RUNNING and records.alive(state)


async def follow(paths: Paths, spec: FollowSpec, sink: Sink) -> None:
    """Print the existing log (after --tail/--since), then new records as they are written,
    until the container is no longer running."""
    path = paths.container_log(spec.cid)
    while True:
        try:
            f = await aiofiles.open(path, "rb")
            break
        except FileNotFoundError:
            if not await asyncio.to_thread(_still_running, paths, spec.cid):
                return
            await asyncio.sleep(POLL_S)
    try:
        data: bytes = await f.read()
        # a torn last line is the writer mid-record: keep it for the next read
        cut = data.rfind(b"\n") + 1
        head, pending = data[:cut], data[cut:]
        recs = list(logfile.records(head))
        if spec.since is not None:
            recs = [r for r in recs if logfile.parse_time(r["time"]) >= spec.since]
        if spec.tail is not None:
            recs = recs[len(recs) - spec.tail :] if spec.tail else []
        _emit(recs, spec, sink)
        idle = 0
        while True:
            chunk: bytes = await f.read(1 << 20)
            if chunk:
                idle = 0
                pending = _pump(pending + chunk, spec, sink)
                continue
            idle += 1
            if idle % STATE_EVERY == 0 and not await asyncio.to_thread(
                _still_running, paths, spec.cid
            ):
                # what the container wrote just before it ended
                _pump(pending + await f.read() + b"\n", spec, sink)
                return
            await asyncio.sleep(POLL_S)
    finally:
        await f.close()


def _pump(data: bytes, spec: FollowSpec, sink: Sink) -> bytes:
    *lines, rest = data.split(b"\n")
    recs = [r for r in map(logfile.decode_line, lines) if r is not None]
    _emit(recs, spec, sink)
    return rest


def _emit(recs: list[dict[str, Any]], spec: FollowSpec, sink: Sink) -> None:
    out: Lines = []
    for r in recs:
        out += record_lines(r, spec.timestamps)
    if out:
        sink(spec.name, out)


@dataclass
class Job:
    number: int
    command: str
    work: Coroutine[Any, Any, None] | None = field(default=None, repr=False)
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class JobTable:
    """Numbered background jobs, as a shell's: the next number is one past the highest in use.
    `notify` gets the shell's own lines ('[1]  done  logs -f web')."""

    def __init__(self, notify: Callable[[str], None], on_change: Callable[[], None]) -> None:
        self._jobs: dict[int, Job] = {}
        self._notify = notify
        self._on_change = on_change

    def __len__(self) -> int:
        return len(self._jobs)

    def listing(self) -> list[tuple[int, str]]:
        return [(n, j.command) for n, j in sorted(self._jobs.items())]

    def start(self, command: str, work: Coroutine[Any, Any, None]) -> Job:
        job = Job(max(self._jobs, default=0) + 1, command, work)
        self._jobs[job.number] = job
        job.task = asyncio.create_task(self._run(job, work))
        self._on_change()
        return job

    async def _run(self, job: Job, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the log became unreadable: report it, keep the shell
            self._notify(f"[{job.number}]  failed  {job.command}: {e}")
        else:
            self._notify(f"[{job.number}]  done  {job.command}")
        finally:
            if self._jobs.get(job.number) is job:
                del self._jobs[job.number]
                self._on_change()

    async def kill(self, number: int) -> Job | None:
        job = self._jobs.pop(number, None)
        if job is None:
            return None
        self._on_change()
        await _cancel(job)
        return job

    async def close(self) -> None:
        jobs = list(self._jobs.values())
        self._jobs.clear()
        for job in jobs:
            await _cancel(job)


async def _cancel(job: Job) -> None:
    if job.task is None:
        return
    job.task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await job.task
    if job.work is not None:
        job.work.close()  # killed before it ever ran: no "never awaited" warning
