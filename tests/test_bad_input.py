"""Bad input: one clear line on stderr, docker's exit code, and nothing half-made."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import Basin


def _assert_clean_error(res: object, code: int = 125) -> None:
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)  # type: ignore[attr-defined]
    lines = res.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("basin: "), lines


def _nothing_made(basin: Basin) -> None:
    d = basin.root / "containers"
    assert not d.exists() or os.listdir(d) == []


@pytest.mark.parametrize(
    "args",
    [
        ["run", "no-such-image", "true"],
        ["run", "--name", "../x", "busybox", "true"],
        ["run", "--name", "-rf", "busybox", "true"],
        ["run", "--name", "a/b", "busybox", "true"],
        ["run", "--name", "", "busybox", "true"],
        ["run", "busybox", ""],
        ["run", "-v", "nocolon", "busybox", "true"],
        ["run", "-v", "/definitely/not/here:/x", "busybox", "true"],
        ["run", "-v", "relative:/x", "busybox", "true"],
        ["run", "-v", "/tmp:/x:bogus", "busybox", "true"],
        ["run", "-v", "/tmp:/", "busybox", "true"],
        ["run", "--bogus-flag", "busybox", "true"],
        ["run"],
        ["run", "--name"],
        ["run", "-e", "=novar", "busybox", "true"],
        ["run", "--stop-timeout", "soon", "busybox", "true"],
        ["run", "-w", "relative", "busybox", "true"],
        ["stop", "-t", "x", "c"],
        ["ps", "--format", "yaml"],
        ["frobnicate"],
    ],
)
def test_bad_input_is_one_line_exit_125_and_leaves_nothing(basin: Basin, args: list[str]) -> None:
    _assert_clean_error(basin(*args))
    _nothing_made(basin)


def test_duplicate_name(basin: Basin) -> None:
    basin.ok("run", "-d", "--name", "dup", "busybox", "sleep", "30")
    res = basin("run", "--name", "dup", "busybox", "true")
    _assert_clean_error(res)
    assert "already in use" in res.stderr
    assert len(os.listdir(basin.root / "containers")) == 1


def test_unknown_container_in_stop_rm_logs(basin: Basin) -> None:
    for verb in ("stop", "rm"):
        res = basin(verb, "ghost")
        assert res.returncode == 1 and res.stderr.strip() == "basin: no such container: ghost"
    _assert_clean_error(basin("logs", "ghost"), 125)


def test_supervisor_that_died_is_replaced(basin: Basin) -> None:
    basin.ok("run", "--rm", "busybox", "true")
    pid = basin.supervisor_pid()
    assert pid is not None
    zygotes = [p for p in os.listdir("/proc") if p.isdigit() and _parent(int(p)) == pid]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    # the next command starts a fresh supervisor and works
    assert basin.ok("run", "--rm", "busybox", "echo", "again") == "again\n"
    assert basin.supervisor_pid() not in (None, pid)
    # the dead supervisor's zygote outlived it and serves the new one (tests/test_survival.py)
    assert [p for p in zygotes if Path(f"/proc/{p}").exists()] == zygotes


def _parent(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])
