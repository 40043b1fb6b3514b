"""Containers outlive their supervisor: SIGKILL it, and the next one re-adopts every container
(output, exit codes, stop, attach, rm) through the zygote that kept their fds."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pexpect
import pytest

from tests.conftest import Basin

COUNTER = "i=0; while true; do echo $i; i=$((i+1)); sleep 0.1; done"


def wait_for(cond: Callable[[], object], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


def kill_supervisor(basin: Basin, sig: int = signal.SIGKILL) -> int:
    pid = basin.supervisor_pid()
    assert pid is not None
    os.kill(pid, sig)
    wait_for(lambda: gone(pid), "the supervisor to die")
    return pid


def zygotes(basin: Basin) -> list[int]:
    """The zygote processes serving this test's BASIN_RUN."""
    return [pid for pid in basin.processes(b"basin.zygote") if not gone(pid)]


def numbers(basin: Basin, name: str) -> list[int]:
    return [int(line) for line in basin.ok("logs", name).split()]


def ps(basin: Basin) -> dict[str, dict[str, object]]:
    rows = [json.loads(line) for line in basin.ok("ps", "-a", "--format", "json").splitlines()]
    return {str(r["name"]): r for r in rows}


def started_events(basin: Basin) -> list[dict[str, object]]:
    lines = (basin.root / "supervisor.log").read_text().splitlines()
    recs = [json.loads(line) for line in lines]
    return [r for r in recs if r.get("event") == "supervisor.started"]


def test_a_killed_supervisor_loses_nothing(basin: Basin) -> None:
    basin.ok("run", "-d", "--name", "count", "busybox", "sh", "-c", COUNTER)
    basin.ok("run", "-d", "--name", "trap", "busybox", "sh", "-c",
             "trap 'exit 7' TERM; while true; do sleep 0.1; done")  # fmt: skip
    basin.ok("run", "-d", "--name", "three", "busybox", "sh", "-c", "sleep 1.5; exit 3")
    basin.ok("run", "-d", "-it", "--name", "tty", "busybox", "sh")
    basin.ok("run", "-d", "-i", "--name", "inp", "busybox", "cat")
    wait_for(lambda: len(numbers(basin, "count")) >= 3, "count's first lines")
    [zygote] = zygotes(basin)
    old = kill_supervisor(basin)

    # nobody reads their output now: it waits in the pipes the zygote keeps open
    before = len(numbers(basin, "count"))
    time.sleep(2.5)
    assert len(numbers(basin, "count")) == before
    # "three" ended meanwhile: its parent, the zygote, reaped it and kept the code (ps reads
    # the record on disk and starts no supervisor)
    assert ps(basin)["three"]["exit_code"] == 3
    assert basin.supervisor_pid() == old and zygotes(basin) == [zygote]

    # the next command starts a supervisor that takes everything back from the same zygote
    assert basin.ok("stop", "trap") == "trap\n"
    assert basin.supervisor_pid() != old and zygotes(basin) == [zygote]
    rows = ps(basin)
    assert rows["trap"]["status"] == "stopped" and rows["trap"]["exit_code"] == 7
    assert rows["three"]["status"] == "exited" and rows["three"]["exit_code"] == 3
    assert all(rows[n]["status"] == "running" for n in ("count", "tty", "inp"))
    assert started_events(basin)[-1]["readopted"] == 5

    # no line lost: the ones written while no supervisor ran came out of the pipe, in order
    wait_for(lambda: len(numbers(basin, "count")) > before + 25, "the pipe's backlog")
    got = numbers(basin, "count")
    assert got == list(range(len(got)))

    # the -d -it shell still has its terminal, and we can attach to it
    sh = pexpect.spawn(sys.executable, ["-m", "basin", "attach", "tty"], env=basin.env, timeout=15)
    try:
        sh.sendline("echo $((6*7)); tty")
        sh.expect(r"42\r\n/dev/pts/0\r\n")
        sh.sendcontrol("p")
        sh.sendcontrol("q")
        sh.expect("detached from")
        sh.expect(pexpect.EOF)
    finally:
        sh.close(force=True)
    assert sh.exitstatus == 0

    # the -d -i one still has its stdin: our EOF is its EOF (the zygote let go of its copy)
    res = subprocess.run(
        [sys.executable, "-m", "basin", "attach", "inp"],
        env=basin.env, input=b"through\n", capture_output=True, timeout=30,
    )  # fmt: skip
    assert res.returncode == 0 and res.stdout == b"through\n", res.stderr
    assert ps(basin)["inp"]["status"] == "exited" and ps(basin)["inp"]["exit_code"] == 0

    basin.ok("rm", "-f", "count", "tty", "trap", "three", "inp")
    assert basin.ok("ps", "-a", "-q") == ""
    basin.ok("supervisor", "stop", "--force")
    wait_for(lambda: not zygotes(basin), "the zygote to exit after supervisor stop --force")


def test_exit_codes_across_two_crashes(basin: Basin) -> None:
    basin.ok("run", "-d", "--name", "a", "busybox", "sleep", "300")
    basin.ok("run", "-d", "--name", "b", "busybox", "sh", "-c", "sleep 1.5; exit 5")
    kill_supervisor(basin)
    basin.ok("stats", "--no-stream", "a")  # a new supervisor, which re-adopts both
    kill_supervisor(basin)  # and dies too, before b ends
    wait_for(lambda: ps(basin)["b"]["exit_code"] == 5, "b's exit code in its record")
    assert "exited (5)" in basin.ok("ps", "-a")
    basin.ok("stop", "-t", "0", "a")
    rows = ps(basin)
    assert rows["a"]["status"] == "stopped" and rows["a"]["exit_code"] == 137
    assert rows["b"]["status"] == "exited" and rows["b"]["exit_code"] == 5
    assert started_events(basin)[-1]["readopted"] == 2
    basin.ok("rm", "a", "b")


def test_sigterm_leaves_containers_running(basin: Basin) -> None:
    """A supervisor stopped by its service manager (SIGTERM) keeps the containers, as docker's
    live-restore does; the next one takes them back."""
    basin.ok("run", "-d", "--name", "kept", "busybox", "sh", "-c", COUNTER)
    pid = int(str(ps(basin)["kept"]["pid"]))
    kill_supervisor(basin, signal.SIGTERM)
    assert not gone(pid) and len(zygotes(basin)) == 1
    time.sleep(0.5)
    assert ps(basin)["kept"]["status"] == "running"
    basin.ok("stop", "-t", "1", "kept")
    assert ps(basin)["kept"]["exit_code"] == 137
    got = numbers(basin, "kept")
    assert got == list(range(len(got))) and len(got) >= 5
    basin.ok("rm", "kept")


def test_one_zygote_per_run_dir_and_it_leaves_when_idle(basin: Basin) -> None:
    basin.ok("run", "--rm", "busybox", "true")
    [zygote] = zygotes(basin)
    assert (basin.run_dir / "zygote.sock").stat().st_mode & 0o777 == 0o600
    kill_supervisor(basin)
    # a new supervisor within the zygote's idle time finds it, and starts no second one
    assert basin.ok("run", "--rm", "busybox", "echo", "again") == "again\n"
    assert zygotes(basin) == [zygote]
    # with no supervisor and no container, it leaves on its own (and takes its socket)
    kill_supervisor(basin)
    wait_for(lambda: gone(zygote), "the idle zygote to exit")
    assert not (basin.run_dir / "zygote.sock").exists()
    assert basin.ok("run", "--rm", "busybox", "echo", "fresh") == "fresh\n"
    assert len(zygotes(basin)) == 1 and zygotes(basin) != [zygote]


def test_plain_supervisor_stop_ends_the_zygote(basin: Basin) -> None:
    basin.ok("run", "--rm", "busybox", "true")
    [zygote] = zygotes(basin)
    basin.ok("supervisor", "stop")
    wait_for(lambda: gone(zygote), "the zygote to exit with its supervisor")


def test_a_killed_zygote_is_replaced(basin: Basin) -> None:
    """The zygote dies under a running supervisor: its containers come to the supervisor (a
    subreaper), which still stops and reaps them; the next run starts a new zygote."""
    basin.ok("run", "-d", "--name", "trap", "busybox", "sh", "-c",
             "trap 'exit 7' TERM; echo up; while true; do sleep 0.1; done")  # fmt: skip
    wait_for(lambda: basin.ok("logs", "trap") == "up\n", "trap to start")
    [zygote] = zygotes(basin)
    os.kill(zygote, signal.SIGKILL)
    wait_for(lambda: gone(zygote), "the zygote to die")
    assert basin.ok("stop", "trap") == "trap\n"
    rows = ps(basin)
    assert rows["trap"]["status"] == "stopped" and rows["trap"]["exit_code"] == 7
    assert basin.ok("run", "--rm", "busybox", "echo", "again") == "again\n"
    assert len(zygotes(basin)) == 1 and zygotes(basin) != [zygote]
    basin.ok("rm", "trap")


def fetch(url: str, deadline_s: float = 10) -> str:
    """GET url, retrying while the server in the container is still starting."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return str(r.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_a_networked_container_keeps_its_address(basin: Basin) -> None:
    net = "sv" + secrets.token_hex(4)
    basin.ok("network", "create", "--subnet", "10.234.245.0/24", net)
    basin.ok("run", "-d", "--name", "web", "-h", "webhost", "--network", net,
             "busybox", "httpd", "-f", "-p", "80", "-h", "/etc")  # fmt: skip
    ip = json.loads(basin.ok("inspect", "web"))[0]["NetworkSettings"]["IPAddress"]
    assert fetch(f"http://{ip}/hostname") == "webhost\n"
    kill_supervisor(basin)
    basin.ok("stats", "--no-stream", "web")  # a new supervisor: its start-up reconcile...
    assert fetch(f"http://{ip}/hostname", 2) == "webhost\n"  # ...left the veth alone
    basin.ok("rm", "-f", "web")
    with pytest.raises(OSError):
        fetch(f"http://{ip}/hostname", 0)
    basin.ok("network", "rm", net)
