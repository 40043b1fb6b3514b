"""Running one command under a stopwatch, and turning its failure into one line of text."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_TIMEOUT = 120.0
# Captured output goes to files on tmpfs: as cheap as pipes (measured), and never waits for EOF.
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") else None


@dataclass(frozen=True)
class Outcome:
    seconds: float
    ok: bool
    error: str
    stdout: bytes
    stderr: bytes = b""


def error_text(returncode: int | None, stderr: bytes, stdout: bytes = b"") -> str:
    """The last meaningful line a failed command printed, short enough for a table cell."""
    text = (stderr or stdout).decode(errors="replace").strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    last = lines[-1] if lines else "(no output)"
    prefix = f"exit {returncode}: " if returncode is not None else ""
    return (prefix + last)[:240]


def run(
    cmd: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Outcome:
    """Run `cmd` to completion, timing it with perf_counter around subprocess.run.

    Output goes to temp files, not pipes: a daemon the command leaves behind (basin's
    auto-started supervisor) may keep inherited fds open, and a pipe would then never see EOF.
    """
    with tempfile.TemporaryFile(dir=SCRATCH) as out, tempfile.TemporaryFile(dir=SCRATCH) as err:
        start = time.perf_counter()
        try:
            proc = subprocess.Popen(
                list(cmd),
                env=dict(env) if env is not None else None,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        except FileNotFoundError as exc:
            seconds = time.perf_counter() - start
            return Outcome(seconds, False, f"not installed: {exc.filename}", b"")
        timed_out = _wait(proc, timeout)
        seconds = time.perf_counter() - start
        if timed_out:
            return Outcome(seconds, False, f"timed out after {timeout:.0f} s", b"")
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        return Outcome(seconds, False, error_text(proc.returncode, stderr, stdout), b"")
    return Outcome(seconds, True, "", stdout, stderr)


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait for proc in a blocking waitpid; True if it had to be killed after `timeout`.

    Not Popen.wait(timeout=...): that polls with sleeps doubling from 0.5 ms up to 50 ms, so
    every time it measures is rounded up to the next of 32, 64, 114, 164... ms."""
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        proc.kill()

    killer = threading.Timer(timeout, kill)
    killer.start()
    try:
        proc.wait()
    finally:
        killer.cancel()
    return killed.is_set()


def quiet(cmd: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 60) -> bool:
    """Run a cleanup command, ignoring how it ends; True when it exited 0."""
    return run(cmd, env=env, timeout=timeout).ok


def launch_many(
    cmds: Sequence[Sequence[str]], *, env: Mapping[str, str] | None = None, timeout: float = 300
) -> Outcome:
    """Start every command at once (one client each), wait for all; time the whole burst."""
    environ = dict(env) if env is not None else dict(os.environ)
    with contextlib.ExitStack() as stack:
        errs = [stack.enter_context(tempfile.TemporaryFile(dir=SCRATCH)) for _ in cmds]
        start = time.perf_counter()
        procs: list[subprocess.Popen[bytes]] = []
        try:
            for cmd, err in zip(cmds, errs, strict=True):
                procs.append(
                    subprocess.Popen(
                        list(cmd),
                        env=environ,
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                        stderr=err,
                    )
                )
        except FileNotFoundError as exc:
            for proc in procs:
                proc.kill()
                proc.wait()
            return Outcome(0.0, False, f"not installed: {exc.filename}", b"")
        deadline = start + timeout
        errors: list[str] = []
        for proc, err in zip(procs, errs, strict=False):
            if _wait(proc, max(0.1, deadline - time.perf_counter())):
                errors.append(f"timed out after {timeout:.0f} s")
                continue
            if proc.returncode != 0:
                err.seek(0)
                errors.append(error_text(proc.returncode, err.read()))
        seconds = time.perf_counter() - start
    if errors:
        return Outcome(seconds, False, f"{len(errors)}/{len(cmds)} failed, first: {errors[0]}", b"")
    return Outcome(seconds, True, "", b"")
