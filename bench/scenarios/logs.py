"""6. Log throughput: a container writes N MB of base64 lines, or of `yes` lines, to stdout;
timed from `run -d` until `logs` reads all of it back byte for byte (after `wait`, where the
tool has it). basin vs podman."""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from bench import commands
from bench.commands import Outcome
from bench.context import Context
from bench.results import Row, compare
from bench.rootfs import build_rootfs

NAME = "6 logs"
MB = 1_000_000


def workloads(size: int) -> dict[str, str]:
    """Shell commands run by the container's busybox `sh -c`, each writing `size` bytes or so."""
    return {
        "base64 lines": f"seq 100000000 | head -c {size * 3 // 4} | base64",
        "yes lines": f"yes | head -c {size}",
    }


def expected(script: str, busybox_bin: Path) -> tuple[int, str, float]:
    """Length and sha256 of the script's output from the same busybox applets on the host, and
    the seconds that took (the floor: producing the bytes with no container and no log)."""
    env = {"PATH": str(busybox_bin)}
    start = time.perf_counter()
    out = subprocess.run(
        [str(busybox_bin / "sh"), "-c", script], env=env, capture_output=True, check=True
    ).stdout
    seconds = time.perf_counter() - start
    return len(out), hashlib.sha256(out).hexdigest(), seconds


def _until_logged(
    start_cmd: Callable[[], Outcome],
    wait_cmd: Callable[[], Outcome],
    read_cmd: Callable[[], Outcome],
    want: tuple[int, str],
    timeout: float,
) -> Outcome:
    """Time from `run -d` until `logs` returns exactly the expected bytes. `wait` (docker's
    verb) lets the reader skip partial reads; a tool without it is polled instead."""
    begin = time.perf_counter()
    started = start_cmd()
    if not started.ok:
        return started
    wait_cmd()
    deadline = begin + timeout
    length = 0
    while time.perf_counter() < deadline:
        got = read_cmd()
        if not got.ok:
            return got
        length = len(got.stdout)
        if length >= want[0]:
            seconds = time.perf_counter() - begin
            if length == want[0] and hashlib.sha256(got.stdout).hexdigest() == want[1]:
                return Outcome(seconds, True, "", b"")
            return Outcome(seconds, False, f"logs differ: {length} bytes, want {want[0]}", b"")
        time.sleep(0.05)
    return Outcome(timeout, False, f"only {length} of {want[0]} bytes after {timeout:.0f} s", b"")


def scenario(ctx: Context) -> list[Row]:
    b, podman = ctx.basin, ctx.podman
    size = ctx.scaled(100, 5) * MB
    timeout = ctx.scaled(900, 60)
    busybox_bin = b.state / "expected-rootfs" / "bin"
    if not busybox_bin.exists():
        build_rootfs(busybox_bin.parent)
    rows: list[Row] = []
    for label, script in workloads(size).items():
        size_out, digest, floor = expected(script, busybox_bin)
        want = (size_out, digest)
        scenario_name = f"{NAME}: {want[0] / MB:.0f} MB of {label}"
        host = Row(scenario_name, "busybox on the host, no container", samples=[floor * 1000])
        host.note = "the same pipeline into a pipe: the floor"
        basin = Row(scenario_name, "basin", error=b.problem)
        pod = Row(scenario_name, "podman", error=podman.problem)

        def basin_once(name: str, script: str = script, want: tuple[int, str] = want) -> Outcome:
            return _until_logged(
                lambda: b.detached(name, "sh", "-c", script),
                lambda: b.run("wait", name, timeout=timeout),
                lambda: b.run("logs", name, timeout=timeout),
                want,
                timeout,
            )

        def podman_once(name: str, script: str = script, want: tuple[int, str] = want) -> Outcome:
            return _until_logged(
                lambda: commands.run(podman.detached(name, "sh", "-c", script)),
                lambda: commands.run(podman.cmd("wait", name), timeout=timeout),
                lambda: commands.run(podman.cmd("logs", name), timeout=timeout),
                want,
                timeout,
            )

        try:
            for i in range(ctx.few):
                turns = [(basin, basin_once, b.new_name), (pod, podman_once, podman.new_name)]
                for row, once, new_name in turns if i % 2 == 0 else reversed(turns):
                    if row.error:
                        continue
                    outcome = once(new_name())
                    if outcome.ok:
                        row.samples.append(outcome.seconds * 1000)
                    else:
                        row.fail(outcome.error)
        finally:
            b.cleanup()
            podman.cleanup()
        for row in (basin, pod):
            if row.median:
                row.note = f"{want[0] / MB / (row.median / 1000):.0f} MB/s"
        compare(basin, pod, "basin at least as fast as podman", 1.0)
        compare(basin, host)
        rows += [basin, pod, host]
    return rows
