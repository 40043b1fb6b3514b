"""Shared fixtures. Every test runs against its own BASIN_ROOT/BASIN_RUN and fails if it
leaves a mount, link, cgroup, rule, process or state file behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import leaks

if os.geteuid() != 0:  # the integration tests need namespaces, mounts and cgroups
    raise pytest.UsageError("basin's tests run as root")


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[None]:
    roots = [tmp_path / "root", tmp_path / "run"]
    before = leaks.snapshot(roots)
    yield
    # processes may take a moment to be reaped after the last test step
    deadline = time.monotonic() + 5
    while True:
        left = leaks.snapshot(roots) - before
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not left, "test leaked:\n" + "\n".join(sorted(left))


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from basin import busybox

    out = tmp_path_factory.mktemp("image") / "busybox.tar"
    busybox.build(out)
    return out


REPO = Path(__file__).resolve().parent.parent
PYTHON_CLI = [sys.executable, "-m", "basin"]


@pytest.fixture(scope="session")
def compiled_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """client/basin.c built as scripts/setup builds it, execing this interpreter's basin."""
    out = tmp_path_factory.mktemp("client") / "basin"
    subprocess.run([str(REPO / "scripts" / "build-client"), str(out), sys.executable], check=True)
    return out


class Basin:
    """Runs the real `basin` command against this test's own state root: the compiled client
    as a user runs it (it execs the Python CLI for what it does not do itself), or the Python
    CLI when `command` says so."""

    def __init__(self, root: Path, run: Path, command: list[str] | None = None) -> None:
        self.env = {**os.environ, "BASIN_ROOT": str(root), "BASIN_RUN": str(run)}
        self.root = root
        self.run_dir = run
        self.command = command or PYTHON_CLI

    def __call__(
        self, *args: str, timeout: float = 60, input: bytes | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.command, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=None if input is None else input.decode(),
        )

    def ok(self, *args: str, timeout: float = 60) -> str:
        res = self(*args, timeout=timeout)
        assert res.returncode == 0, f"basin {' '.join(args)} -> {res.returncode}: {res.stderr}"
        return res.stdout

    def processes(self, needle: bytes) -> list[int]:
        """Processes whose command line holds `needle` and that serve this test's BASIN_RUN."""
        marker = f"BASIN_RUN={self.run_dir}".encode()
        out = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if needle in cmd and marker in env:
                out.append(int(pid))
        return out

    def supervisor_pid(self) -> int | None:
        try:
            return int((self.run_dir / "supervisor.pid").read_text())
        except (OSError, ValueError):
            return None

    def cleanup(self) -> None:
        ids = self("ps", "-q", "--no-trunc").stdout.split()
        if ids:
            self("rm", "-f", *ids)
        nets = self("network", "ls", "-q").stdout.split()
        if nets:
            self("network", "rm", *nets)
        pid = self.supervisor_pid()
        if pid is not None:
            self("supervisor", "stop", "--force")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.02)


@pytest.fixture
def basin(tmp_path: Path, busybox_tar: Path, compiled_client: Path) -> Iterator[Basin]:
    b = Basin(tmp_path / "root", tmp_path / "run", [str(compiled_client)])
    b.ok("image", "import", str(busybox_tar), "busybox")
    try:
        yield b
    finally:
        b.cleanup()
