"""Events (names and fields), the supervisor's JSON log, events.jsonl and `basin events`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import trio
from structlog.testing import capture_logs

from basin import records
from basin.cli import events as events_cli
from basin.paths import Paths
from basin.records import RUNNING, Container
from basin.rotation import RotatingFile
from basin.supervisor import logconfig
from basin.supervisor.events import Events
from basin.supervisor.runtime import Live, Runtime
from tests.conftest import Basin


# ---- unit: names and fields -----------------------------------------------------------------
def test_emit_logs_the_event_with_its_fields_and_level() -> None:
    with capture_logs() as logs:
        Events().emit("container.started", container="abc", name="web", pid=12)
        Events().emit("container.start_failed", "warning", container="abc", error="boom")
    assert logs[0]["event"] == "container.started" and logs[0]["log_level"] == "info"
    assert logs[0]["container"] == "abc" and logs[0]["pid"] == 12
    assert logs[0]["timestamp"].endswith("Z")
    assert logs[1]["log_level"] == "warning" and logs[1]["error"] == "boom"


def test_emit_appends_to_the_journal_with_the_same_timestamp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = logconfig.LineWriter()
    journal = RotatingFile(tmp_path / "events.jsonl")
    monkeypatch.setattr(logconfig, "_writer", writer)
    monkeypatch.setattr(logconfig, "_journal", journal)
    with capture_logs() as logs:
        Events().emit("network.created", network="basin0", subnet="10.234.1.0/24")
    writer.close()
    journal.close()
    rec = json.loads((tmp_path / "events.jsonl").read_text())
    assert rec == {
        "timestamp": logs[0]["timestamp"],
        "level": "info",
        "event": "network.created",
        "network": "basin0",
        "subnet": "10.234.1.0/24",
    }


def _runtime(tmp_path: Path) -> tuple[Runtime, Container]:
    # not the basin fixture's root/run: those must be empty at the end (leak check)
    paths = Paths(tmp_path / "unit-root", tmp_path / "unit-run")
    paths.ensure()
    rt = Runtime(paths, zygote=None, cgroups=None)  # type: ignore[arg-type]
    ctr = Container(id="c0ffee" * 10 + "abcd", name="web", config={"auto_remove": False})
    ctr.state.status = RUNNING
    paths.container(ctr.id).mkdir()
    records.save_config(rt.paths, Container(ctr.id, ctr.name, {**ctr.config, "name": "web"}))
    rt.containers[ctr.id] = ctr
    return rt, ctr


def test_finish_of_a_stopped_container_emits_exited_then_stopped(tmp_path: Path) -> None:
    rt, ctr = _runtime(tmp_path)

    async def main() -> None:
        live = Live(pidfd=-1, stop_requested="rm -f", term_signal=9)
        await rt._finish(ctr, live, 137)

    with capture_logs() as logs:
        trio.run(main)
    assert [e["event"] for e in logs] == ["container.exited", "container.stopped"]
    exited, stopped = logs
    assert exited["container"] == ctr.id[:12] and exited["name"] == "web"
    assert exited["exit_code"] == 137 and exited["signal"] == "SIGKILL"
    assert exited["oom_killed"] is False and exited["stopped_by"] == "rm -f"
    assert stopped["stopped_by"] == "rm -f" and stopped["exit_code"] == 137
    assert records.load(rt.paths, ctr.id).state.status == "stopped"


def test_finish_of_a_container_that_exited_by_itself(tmp_path: Path) -> None:
    rt, ctr = _runtime(tmp_path)

    async def main() -> None:
        await rt._finish(ctr, Live(pidfd=-1), 3)

    with capture_logs() as logs:
        trio.run(main)
    assert [e["event"] for e in logs] == ["container.exited"]
    assert logs[0]["exit_code"] == 3 and logs[0]["signal"] is None
    assert logs[0]["stopped_by"] is None


def test_human_format_is_docker_like() -> None:
    ev = {
        "timestamp": "2026-12-04T10:00:00.123456Z",
        "level": "info",
        "event": "container.started",
        "container": "abcdef012345",
        "name": "web",
        "pid": 123,
    }
    line = events_cli.human(ev)
    assert line == "2026-12-04T10:00:00.123Z container.started web (id=abcdef012345, pid=123)"
    net = {"timestamp": "2026-12-04T10:00:00.5Z", "event": "network.removed", "network": "n0"}
    assert events_cli.human(net) == "2026-12-04T10:00:00.5Z network.removed n0"


def test_filters_and_across_keys_or_within() -> None:
    ev = {"event": "container.exited", "container": "abcdef012345", "name": "web"}
    f = events_cli.parse_filters
    assert events_cli.matches(ev, f(["container=web"]))
    assert events_cli.matches(ev, f(["container=abcdef"]))  # an ID prefix
    assert events_cli.matches(ev, f(["container=abcdef012345" + "ff" * 26]))  # the full ID
    assert events_cli.matches(ev, f(["container=db", "container=web"]))
    assert not events_cli.matches(ev, f(["container=db"]))
    assert events_cli.matches(ev, f(["event=exited", "container=web"]))
    assert events_cli.matches(ev, f(["event=container.exited"]))
    assert not events_cli.matches(ev, f(["event=started", "container=web"]))
    assert not events_cli.matches({"event": "supervisor.started"}, f(["container=web"]))


# ---- nothing but JSON reaches the log -----------------------------------------------------
STRAYS = r"""
import logging, os, sys, threading, warnings
from pathlib import Path
import structlog
from basin.supervisor import logconfig
logconfig.configure(Path(sys.argv[1]), foreground=False)
logconfig.detach_stdio()
print("a stray print")
os.write(2, b"a stray write to fd 2\n")
warnings.warn("a deprecation", DeprecationWarning)
logging.getLogger("pyroute2").warning("netlink said %s", "hello")
t = threading.Thread(target=lambda: 1 / 0, name="worker")
t.start(); t.join()
try:
    {}["missing"]
except KeyError:
    structlog.get_logger().exception("request.failed", request="run")
raise RuntimeError("the end")
"""


def test_strays_become_json_lines_and_print_goes_nowhere(tmp_path: Path) -> None:
    log = tmp_path / "supervisor.log"
    res = subprocess.run(
        [sys.executable, "-c", STRAYS, str(log)], capture_output=True, text=True, timeout=30
    )
    assert res.returncode == 1
    assert res.stdout == "" and res.stderr == ""  # detached: /dev/null
    lines = log.read_text().splitlines()
    recs = [json.loads(line) for line in lines]  # every line parses
    by_event = {r["event"]: r for r in recs}
    assert "a deprecation" in by_event["python.warning"]["message"]
    assert by_event["python.log"]["logger"] == "pyroute2"
    assert by_event["python.log"]["message"] == "netlink said hello"
    assert "ZeroDivisionError" in by_event["thread.crashed"]["exception"]
    assert by_event["thread.crashed"]["thread"] == "worker"
    assert "KeyError" in by_event["request.failed"]["exception"]
    assert "RuntimeError: the end" in by_event["supervisor.crashed"]["exception"]
    assert "stray" not in log.read_text()
    assert all(r["timestamp"].endswith("Z") and "level" in r for r in recs)


def test_a_stuck_disk_does_not_stall_the_caller() -> None:
    release = threading.Event()

    class StuckSink:
        def write(self, data: bytes) -> None:
            release.wait(10)

        def close(self) -> None:
            pass

    writer = logconfig.LineWriter(size=100)
    sink = StuckSink()
    t0 = time.perf_counter()
    for _ in range(5000):
        writer.put(sink, b"{}\n")
    elapsed = time.perf_counter() - t0
    assert elapsed < 0.5, f"5000 puts took {elapsed:.3f}s against a stuck sink"
    assert writer.dropped >= 5000 - 101
    release.set()
    writer.close()


# ---- a real supervisor ---------------------------------------------------------------------
def _read_events(path: Path, want: str, timeout: float = 10) -> list[dict[str, Any]]:
    """The JSON lines of path once an event named want is among them (the log is written by a
    thread of the supervisor, a moment after the change)."""
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text() if path.exists() else ""
        recs = [json.loads(line) for line in text.splitlines()]
        if any(r["event"] == want for r in recs):
            return recs
        assert time.monotonic() < deadline, f"{want} never appeared in {path}"
        time.sleep(0.05)


def _in_order(names: list[str], expected: list[str]) -> bool:
    it = iter(names)
    return all(any(n == e for n in it) for e in expected)


def test_supervisor_log_after_run_stop_rm(basin: Basin) -> None:
    basin.env["BASIN_LOG_LEVEL"] = "debug"
    cid = basin.ok("run", "-d", "--name", "cyc", "busybox", "sleep", "60").strip()
    basin.ok("stop", "-t", "0", "cyc")
    basin.ok("rm", "cyc")
    # a request is logged as handled once its answer is out: the client may be faster
    deadline = time.monotonic() + 10
    while '"cli rm"' not in (basin.root / "supervisor.log").read_text():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    recs = _read_events(basin.root / "supervisor.log", "container.removed")
    names = [r["event"] for r in recs]
    expected = [
        "supervisor.started",
        "container.created",
        "container.started",
        "container.stopping",
        "container.exited",
        "container.stopped",
        "container.removed",
    ]
    assert _in_order(names, expected), names
    started = next(r for r in recs if r["event"] == "supervisor.started")
    assert started["version"] and started["pid"] == basin.supervisor_pid()
    assert "cgroup_layout" in started and started["readopted"] == 0
    exited = next(r for r in recs if r["event"] == "container.exited")
    assert exited["container"] == cid[:12] and exited["name"] == "cyc"
    assert exited["exit_code"] == 137 and exited["signal"] == "SIGKILL"
    assert exited["stopped_by"] == "stop" and exited["oom_killed"] is False
    handled = [r for r in recs if r["event"] == "request.handled"]
    # the compiled client forwards whole command lines: "cli run" and so on
    assert {r["request"].removeprefix("cli ") for r in handled} >= {"run", "stop", "rm"}
    assert all(r["level"] == "debug" and r["duration_ms"] >= 0 for r in handled)
    assert all(r["outcome"] == "ok" for r in handled)
    assert all(r["timestamp"].endswith("Z") for r in recs)
    # events.jsonl: the same state changes, without the request lines
    journal = _read_events(basin.root / "events.jsonl", "container.removed")
    assert [r["event"] for r in journal if r["event"] in expected] == expected
    assert not any(r["event"] == "request.handled" for r in journal)


def test_background_supervisor_has_no_stdout_or_stderr(basin: Basin) -> None:
    basin.ok("run", "--rm", "busybox", "true")
    pid = basin.supervisor_pid()
    assert pid is not None
    for fd in (1, 2):
        assert os.readlink(f"/proc/{pid}/fd/{fd}") == "/dev/null"


def test_internal_error_is_logged_with_its_exception(basin: Basin) -> None:
    from basin import client
    from basin.errors import BasinError

    basin.ok("run", "--rm", "busybox", "true")  # a supervisor is up
    paths = Paths(basin.root, basin.run_dir)
    with pytest.raises(BasinError, match="internal error"):
        client.call(paths, {"op": "stop", "refs": ["x"], "timeout": "soon"}, start=False)
    recs = _read_events(basin.root / "supervisor.log", "request.failed")
    failed = next(r for r in recs if r["event"] == "request.failed")
    assert failed["level"] == "error" and failed["request"] == "stop"
    assert "ValueError" in failed["exception"] and "Traceback" in failed["exception"]


def test_events_command_past_filters_and_json(basin: Basin) -> None:
    basin.ok("run", "--name", "one", "busybox", "true")
    basin("run", "--name", "two", "busybox", "sh", "-c", "exit 3")
    _read_events(basin.root / "events.jsonl", "container.exited")
    basin.ok("supervisor", "stop")  # past events need no supervisor
    deadline = time.monotonic() + 10
    while basin.supervisor_pid() is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    out = basin.ok("events", "--filter", "container=two").splitlines()
    assert [line.split()[1] for line in out] == [
        "container.created",
        "container.started",
        "container.exited",
    ]
    assert all(line.split()[2] == "two" for line in out)
    assert "exit_code=3" in out[-1]
    exits = [
        json.loads(line)
        for line in basin.ok("events", "--filter", "event=exited", "--format", "json").splitlines()
    ]
    assert [(e["name"], e["exit_code"]) for e in exits] == [("one", 0), ("two", 3)]
    assert basin.ok("events", "--filter", "event=exited", "--format", "{{.name}}") == "one\ntwo\n"
    assert basin.ok("events", "--since", "2999-01-01T00:00:00Z") == ""
    assert basin.ok("events", "--until", "2000-01-01T00:00:00Z") == ""
    everything = basin.ok("events").splitlines()
    assert everything[0].split()[1] == "supervisor.started"
    assert everything[-1].split()[1] == "supervisor.stopped"
    res = basin("events", "--filter", "colour=red")
    assert res.returncode == 125 and res.stderr.startswith("basin: ")
    res = basin("events", "--since", "yesterday")
    assert res.returncode == 125 and "--since" in res.stderr


def test_events_follow_sees_a_container_exit(basin: Basin) -> None:
    basin.ok("run", "--rm", "busybox", "true")  # a supervisor and some history for another one
    proc = subprocess.Popen(
        [sys.executable, "-m", "basin", "events", "-f", "--filter", "container=fx"],
        env=basin.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(0.3)  # following by now
        basin.ok("run", "-d", "--name", "fx", "busybox", "sleep", "60")
        basin.ok("stop", "-t", "0", "fx")
        seen: list[str] = []
        deadline = time.monotonic() + 15
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            seen.append(line.split()[1])
            if seen[-1] == "container.stopped":
                break
        assert seen == [
            "container.created",
            "container.started",
            "container.stopping",
            "container.exited",
            "container.stopped",
        ]
        assert proc.poll() is None  # still following
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()


def test_supervisor_log_and_events_rotate_by_size(basin: Basin) -> None:
    basin.env.update(BASIN_LOG_MAX_SIZE="2k", BASIN_LOG_MAX_FILES="3", BASIN_LOG_LEVEL="debug")
    for i in range(12):
        basin.ok("run", "--name", f"r{i}", "busybox", "true")
    basin.ok("rm", *[f"r{i}" for i in range(12)])
    _read_events(basin.root / "events.jsonl", "container.removed")
    for base in ("supervisor.log", "events.jsonl"):
        files = sorted(p.name for p in basin.root.iterdir() if p.name.startswith(base))
        assert files == [base, f"{base}.1", f"{base}.2"], files
        for name in files:
            text = (basin.root / name).read_text()
            assert len(text) <= 2048
            for line in text.splitlines():
                json.loads(line)
    # `basin events` reads across the rotated files, oldest first
    stamps = [
        json.loads(line)["timestamp"]
        for line in basin.ok("events", "--format", "json").splitlines()
    ]
    assert len(stamps) > len((basin.root / "events.jsonl").read_text().splitlines())
    assert stamps == sorted(stamps)


def test_lnav_reads_the_log_with_the_shipped_format(basin: Basin, tmp_path: Path) -> None:
    lnav = subprocess.run(["which", "lnav"], capture_output=True, text=True).stdout.strip()
    if not lnav:
        pytest.skip("lnav is not installed (apt-get install lnav)")
    assert basin("run", "--name", "ln", "busybox", "sh", "-c", "exit 4").returncode == 4
    _read_events(basin.root / "supervisor.log", "container.exited")
    home = tmp_path / "home"
    home.mkdir()
    fmt = Path(__file__).parent.parent / "contrib" / "lnav" / "basin_log.json"
    env = {**os.environ, "HOME": str(home)}
    subprocess.run([lnav, "-i", str(fmt)], env=env, check=True, capture_output=True)
    query = ";SELECT log_level, log_body, name, exit_code FROM basin_log WHERE name = 'ln'"
    out = subprocess.run(
        [lnav, "-n", "-c", query, str(basin.root / "supervisor.log")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines()[1:]]
    assert ["info", "container.exited", "ln", "4"] in rows


def test_events_and_inspect_import_nothing_heavy(basin: Basin) -> None:
    code = (
        "import sys; from basin.cli.main import main;"
        "main(['events']); main(['inspect', 'nothing']);"
        "heavy=[m for m in ('trio','prompt_toolkit','pyroute2','structlog') if m in sys.modules];"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=basin.env, capture_output=True, text=True, check=True
    )
    assert "HEAVY []" in out.stdout
