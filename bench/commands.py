"""Running one command under a stopwatch, and turning its failure into one line of text."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_TIMEOUT = 120.0


@dataclass(frozen=True)
class Outcome:
    seconds: float
    ok: bool
    error: str
    stdout: bytes


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
    """Run `cmd` to completion, timing it with perf_counter around subprocess.run."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            list(cmd),
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        return Outcome(time.perf_counter() - start, False, f"not installed: {exc.filename}", b"")
    except subprocess.TimeoutExpired:
        return Outcome(time.perf_counter() - start, False, f"timed out after {timeout:.0f} s", b"")
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        return Outcome(seconds, False, error_text(proc.returncode, proc.stderr, proc.stdout), b"")
    return Outcome(seconds, True, "", proc.stdout)


def quiet(cmd: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 60) -> bool:
    """Run a cleanup command, ignoring how it ends; True when it exited 0."""
    return run(cmd, env=env, timeout=timeout).ok


def launch_many(
    cmds: Sequence[Sequence[str]], *, env: Mapping[str, str] | None = None, timeout: float = 300
) -> Outcome:
    """Start every command at once (one client each), wait for all; time the whole burst."""
    environ = dict(env) if env is not None else dict(os.environ)
    start = time.perf_counter()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for cmd in cmds:
            procs.append(
                subprocess.Popen(
                    list(cmd),
                    env=environ,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
            )
    except FileNotFoundError as exc:
        for proc in procs:
            proc.kill()
            proc.wait()
        return Outcome(0.0, False, f"not installed: {exc.filename}", b"")
    deadline = start + timeout
    errors: list[str] = []
    for proc in procs:
        try:
            _, stderr = proc.communicate(timeout=max(0.1, deadline - time.perf_counter()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            errors.append(f"timed out after {timeout:.0f} s")
            continue
        if proc.returncode != 0:
            errors.append(error_text(proc.returncode, stderr))
    seconds = time.perf_counter() - start
    if errors:
        return Outcome(seconds, False, f"{len(errors)}/{len(cmds)} failed, first: {errors[0]}", b"")
    return Outcome(seconds, True, "", b"")
