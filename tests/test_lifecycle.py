"""The container lifecycle end to end: the real CLI, a real supervisor, real namespaces."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import Basin


@pytest.mark.parametrize("code", [0, 1, 32])
def test_exit_code_is_the_containers(basin: Basin, code: int) -> None:
    res = basin("run", "--rm", "busybox", "sh", "-c", f"exit {code}")
    assert res.returncode == code, res.stderr


def test_command_not_found_is_127(basin: Basin) -> None:
    res = basin("run", "--rm", "busybox", "no-such-command")
    assert res.returncode == 127
    assert "no-such-command" in res.stderr and "not found" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_command_not_executable_is_126(basin: Basin) -> None:
    res = basin("run", "--rm", "busybox", "/etc/passwd")
    assert res.returncode == 126
    assert "permission denied" in res.stderr


def test_killed_by_signal_is_128_plus_n(basin: Basin) -> None:
    # inside its namespace PID 1 is immune even to SIGKILL; from the host it is not
    basin.ok("run", "-d", "--name", "victim", "busybox", "sleep", "60")
    rec = json.loads(basin.ok("ps", "--format", "json"))
    os.kill(rec["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while json.loads(basin.ok("ps", "--format", "json"))["status"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    rec = json.loads(basin.ok("ps", "--format", "json"))
    assert rec["status"] == "exited" and rec["exit_code"] == 128 + signal.SIGKILL
    assert "exited (137)" in basin.ok("ps")


def test_command_is_pid_1_in_its_own_namespaces(basin: Basin) -> None:
    out = basin.ok("run", "--rm", "busybox", "sh", "-c", "echo $$; ps -o pid,args | tail -n +2")
    lines = out.splitlines()
    assert lines[0] == "1"
    assert lines[1].split()[0] == "1" and "sh -c" in lines[1]
    # the host's processes are not visible: only sh, ps and tail
    assert len(lines) == 4
    kinds = ("net", "mnt", "uts", "ipc", "pid")
    script = "; ".join(f"readlink /proc/1/ns/{k}" for k in kinds)
    ns = basin.ok("run", "--rm", "busybox", "sh", "-c", script).split()
    host = [os.readlink(f"/proc/self/ns/{k}") for k in kinds]
    assert len(ns) == 5 and set(ns).isdisjoint(host)


def test_root_is_the_overlay_with_proc_dev_sys(basin: Basin) -> None:
    out = basin.ok("run", "--rm", "busybox", "cat", "/proc/mounts")
    mounts = {line.split()[1]: line.split() for line in out.splitlines()}
    assert mounts["/"][2] == "overlay"
    assert mounts["/proc"][2] == "proc"
    assert mounts["/dev"][2] == "tmpfs"
    assert mounts["/dev/pts"][2] == "devpts"
    assert mounts["/dev/shm"][2] == "tmpfs"
    assert mounts["/sys"][2] == "sysfs" and "ro" in mounts["/sys"][3].split(",")
    devs = basin.ok("run", "--rm", "busybox", "ls", "/dev").split()
    for name in ("null", "zero", "full", "random", "urandom", "tty", "pts", "shm"):
        assert name in devs
    assert (
        basin.ok(
            "run", "--rm", "busybox", "sh", "-c", "echo x > /dev/null; head -c 4 /dev/zero | wc -c"
        ).strip()
        == "4"
    )


def test_writes_stay_in_the_container(basin: Basin) -> None:
    basin.ok("run", "--name", "w1", "busybox", "sh", "-c", "echo hi > /etc/marker")
    res = basin("run", "--rm", "busybox", "cat", "/etc/marker")
    assert res.returncode == 1  # another container does not see it, nor the image
    image_root = basin.root / "images" / "busybox" / "rootfs"
    assert not (image_root / "etc" / "marker").exists()


def test_hostname_defaults_to_short_id_and_can_be_set(basin: Basin) -> None:
    cid = basin.ok("run", "-d", "busybox", "sleep", "30").strip()
    basin.ok("stop", "-t", "0", cid)
    assert basin.ok("logs", cid) == ""
    out = basin.ok("run", "--rm", "busybox", "hostname")
    assert len(out.strip()) == 12 and all(c in "0123456789abcdef" for c in out.strip())
    assert basin.ok("run", "--rm", "-h", "box1", "busybox", "hostname").strip() == "box1"
    assert basin.ok("run", "--rm", "--hostname=box2", "busybox", "hostname").strip() == "box2"


def test_env_and_arguments_keep_spaces_and_quotes(basin: Basin, tmp_path: Path) -> None:
    envfile = tmp_path / "env"
    envfile.write_text("# comment\nFROM_FILE=file value\n\n")
    out = basin.ok(
        "run",
        "--rm",
        "-e",
        "GREETING=hello big  world",
        "-env",
        "X=1",
        "--env-file",
        str(envfile),
        "busybox",
        "sh",
        "-c",
        'printf "[%s]" "$GREETING" "$X" "$FROM_FILE"',
    )
    assert out == "[hello big  world][1][file value]"
    out = basin.ok("run", "--rm", "busybox", "printf", "<%s>", "a b", '"q"', "", "it's", "-x")
    assert out == '<a b><"q"><><it\'s><-x>'


def test_workdir(basin: Basin) -> None:
    assert basin.ok("run", "--rm", "-w", "/tmp/new/dir", "busybox", "pwd").strip() == "/tmp/new/dir"


def test_volumes_rw_and_ro(basin: Basin, tmp_path: Path) -> None:
    host = tmp_path / "vol"
    host.mkdir()
    (host / "in.txt").write_text("from host\n")
    out = basin.ok(
        "run",
        "--rm",
        "-v",
        f"{host}:/data",
        "busybox",
        "sh",
        "-c",
        "cat /data/in.txt; echo back > /data/out.txt",
    )
    assert out == "from host\n"
    assert (host / "out.txt").read_text() == "back\n"
    res = basin(
        "run",
        "--rm",
        "-volume",
        f"{host}:/ro:ro",
        "busybox",
        "sh",
        "-c",
        "cat /ro/in.txt; echo no > /ro/x",
    )
    assert res.returncode != 0
    assert res.stdout == "from host\n"
    assert "Read-only file system" in res.stderr
    assert not (host / "x").exists()


def test_logs_both_streams_tail_and_timestamps(basin: Basin) -> None:
    basin.ok(
        "run",
        "--name",
        "talk",
        "busybox",
        "sh",
        "-c",
        "echo out1; echo err1 >&2; echo out2; printf tail",
    )
    res = basin("logs", "talk")
    assert res.returncode == 0
    assert res.stdout == "out1\nout2\ntail"
    assert res.stderr == "err1\n"
    assert basin.ok("logs", "--tail", "1", "talk") == "tail"
    assert basin.ok("logs", "-n", "0", "talk") == ""
    stamped = basin.ok("logs", "-t", "talk").splitlines()[0]
    assert stamped.endswith(" out1") and stamped[:4].isdigit() and "T" in stamped
    cid = json.loads(basin.ok("ps", "--format", "json"))["id"]
    logfile = basin.root / "containers" / cid / f"{cid}-json.log"
    recs = [json.loads(line) for line in logfile.read_text().splitlines()]
    assert {r["stream"] for r in recs} == {"stdout", "stderr"}
    out = [r for r in recs if r["stream"] == "stdout"]
    assert out[0]["log"] == "out1\n" and out[0]["time"].endswith("Z")
    assert [r["log"] for r in out] == ["out1\n", "out2\n", "tail"]
    # the log needs no supervisor
    basin.ok("supervisor", "stop")
    assert basin.ok("logs", "talk") == "out1\nout2\ntail"


def test_logs_follow_until_exit(basin: Basin) -> None:
    basin.ok(
        "run",
        "-d",
        "--name",
        "ticker",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3; do echo $i; sleep 0.3; done",
    )
    started = time.monotonic()
    out = basin.ok("logs", "-f", "ticker", timeout=20)
    assert out == "1\n2\n3\n"
    assert time.monotonic() - started > 0.4  # it really waited for the later lines


def test_detach_prints_id_and_ps_shows_it(basin: Basin) -> None:
    out = basin.ok("run", "-d", "--name", "sleeper", "busybox", "sleep", "60")
    cid = out.strip()
    assert len(cid) == 64
    table = basin.ok("ps").splitlines()
    assert table[0].split() == ["ID", "NAME", "PID", "STATUS", "COMMAND", "CREATED"]
    row = next(line for line in table if "sleeper" in line).split()
    assert row[0] == cid[:12] and row[3] == "running" and row[4:6] == ["sleep", "60"]
    pid = int(row[2])
    assert Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x0060\x00"
    rec = json.loads(basin.ok("ps", "--format", "json"))
    assert rec["id"] == cid and rec["name"] == "sleeper" and rec["status"] == "running"
    assert rec["pid"] == pid and rec["image"] == "busybox" and rec["command"] == ["sleep", "60"]
    assert rec["exit_code"] is None and rec["created"]
    assert basin.ok("ps", "-q").split() == [cid[:12]]
    # every command takes the name, the ID or a unique prefix
    assert basin.ok("stop", "-t", "0", cid[:5]).strip() == cid[:5]


def test_stop_sigterm_ignored_by_pid1_is_killed_after_timeout(basin: Basin) -> None:
    basin.ok("run", "-d", "--name", "stubborn", "busybox", "sleep", "60")
    t0 = time.monotonic()
    basin.ok("stop", "-t", "1", "stubborn")
    assert time.monotonic() - t0 >= 0.9
    rec = json.loads(basin.ok("ps", "--format", "json"))
    assert rec["status"] == "stopped" and rec["exit_code"] == 137
    assert "stopped (137)" in basin.ok("ps")


def test_stop_of_pid1_that_traps_sigterm(basin: Basin) -> None:
    basin.ok(
        "run",
        "-d",
        "--name",
        "polite",
        "busybox",
        "sh",
        "-c",
        "trap 'echo bye; exit 143' TERM; echo ready; while true; do sleep 0.1; done",
    )
    _wait_for_log(basin, "polite", "ready")
    t0 = time.monotonic()
    basin.ok("stop", "polite")  # default timeout 10 s: the trap answers long before
    assert time.monotonic() - t0 < 5
    rec = json.loads(basin.ok("ps", "--format", "json"))
    assert rec["exit_code"] == 143
    assert basin.ok("logs", "polite") == "ready\nbye\n"


def test_stop_t_0_kills_at_once(basin: Basin) -> None:
    basin.ok("run", "-d", "--name", "k", "busybox", "sleep", "60")
    basin.ok("stop", "-t", "0", "k")
    assert json.loads(basin.ok("ps", "--format", "json"))["exit_code"] == 137


def test_rm_refuses_running_unless_forced_and_leaves_nothing(basin: Basin) -> None:
    cid = basin.ok("run", "-d", "--name", "busy", "busybox", "sleep", "60").strip()
    res = basin("rm", "busy")
    assert res.returncode != 0
    assert "running" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert (basin.root / "containers" / cid).is_dir()
    assert basin.ok("rm", "-f", "busy").strip() == "busy"
    assert not (basin.root / "containers" / cid).exists()
    assert basin.ok("ps", "-q") == ""
    res = basin("rm", "busy")
    assert res.returncode == 1 and res.stderr.strip() == "basin: no such container: busy"


def test_a_root_that_cannot_be_built_is_125_and_leaves_nothing(
    basin: Basin, tmp_path: Path
) -> None:
    # PID 1 builds its root before the supervisor lets it go; a failure there still comes
    # back as the run's error, after which nothing of the container is left
    vol = tmp_path / "dir"
    vol.mkdir()
    for flags in (["--rm"], []):
        res = basin("run", *flags, "-v", f"{vol}:/bin/busybox", "busybox", "true")
        assert res.returncode == 125
        assert res.stderr.strip() == "basin: container setup failed: /bin/busybox: Not a directory"
    assert basin.ok("ps", "-a", "-q") == ""
    assert os.listdir(basin.root / "containers") == []


def test_rm_flag_removes_after_exit(basin: Basin) -> None:
    assert basin.ok("run", "--rm", "busybox", "echo", "gone") == "gone\n"
    assert basin.ok("ps", "-q") == ""
    basin.ok("run", "-d", "--rm", "--name", "short", "busybox", "sleep", "0.2")
    deadline = time.monotonic() + 10
    while basin.ok("ps", "-q") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert basin.ok("ps", "-q") == ""
    assert os.listdir(basin.root / "containers") == []


def test_twenty_parallel_clients(basin: Basin) -> None:
    def start(i: int) -> str:
        return basin.ok("run", "-d", "--name", f"par{i}", "busybox", "sleep", "60").strip()

    with ThreadPoolExecutor(20) as pool:
        ids = list(pool.map(start, range(20)))
    assert len(set(ids)) == 20
    recs = [json.loads(line) for line in basin.ok("ps", "--format", "json").splitlines()]
    assert len(recs) == 20 and all(r["status"] == "running" for r in recs)
    assert len({r["pid"] for r in recs}) == 20
    basin.ok("rm", "-f", *[f"par{i}" for i in range(20)])
    assert basin.ok("ps", "-q") == ""


def test_supervisor_is_started_once_for_parallel_first_clients(basin: Basin) -> None:
    assert basin.supervisor_pid() is None
    with ThreadPoolExecutor(8) as pool:
        outs = list(
            pool.map(lambda _: basin("run", "--rm", "busybox", "true").returncode, range(8))
        )
    assert outs == [0] * 8
    supervisors = basin.processes(b"supervisor")
    assert supervisors == [basin.supervisor_pid()]
    assert basin.supervisor_pid() is not None


def _wait_for_log(basin: Basin, name: str, text: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while text not in basin.ok("logs", name):
        assert time.monotonic() < deadline, f"{text!r} never appeared in {name}'s log"
        time.sleep(0.05)


def test_supervisor_log_is_json_lines(basin: Basin) -> None:
    basin.ok("run", "--rm", "--name", "j", "busybox", "true")
    # the supervisor's writer thread appends a line a moment after the change it reports
    deadline = time.monotonic() + 10
    while "container.removed" not in (basin.root / "supervisor.log").read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    lines = (basin.root / "supervisor.log").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    assert all({"timestamp", "level", "event"} <= e.keys() for e in events)
    names = [e["event"] for e in events]
    for ev in (
        "supervisor.started",
        "container.created",
        "container.started",
        "container.exited",
        "container.removed",
    ):
        assert ev in names


def test_thin_client_imports_nothing_heavy(basin: Basin) -> None:
    code = (
        "import sys, runpy; sys.argv=['basin','ps'];"
        "from basin.cli.main import main; main(['ps']);"
        "heavy=[m for m in ('trio','prompt_toolkit','pyroute2','structlog') if m in sys.modules];"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=basin.env, capture_output=True, text=True, check=True
    )
    assert "HEAVY []" in out.stdout


def test_image_in_use_is_not_removed(basin: Basin) -> None:
    basin.ok("run", "--name", "user", "busybox", "true")
    res = basin("image", "rm", "busybox")
    assert res.returncode == 125
    assert (
        res.stderr.strip() == "basin: image busybox is used by container(s) user: remove them first"
    )
    assert (basin.root / "images" / "busybox" / "rootfs" / "bin" / "busybox").exists()
    basin.ok("rm", "user")
    assert basin.ok("image", "rm", "busybox") == "busybox\n"


def test_copy_storage_where_overlayfs_cannot_stack(basin: Basin) -> None:
    # BASIN_STORAGE=copy is what a BASIN_ROOT on overlayfs gets: a private copy of the image
    basin.env["BASIN_STORAGE"] = "copy"
    out = basin.ok(
        "run", "--name", "copied", "busybox", "sh", "-c", "echo hi > /etc/marker; cat /proc/mounts"
    )
    root = next(line.split() for line in out.splitlines() if line.split()[1] == "/")
    assert root[2] != "overlay"
    cid = json.loads(basin.ok("ps", "--format", "json"))["id"]
    assert (basin.root / "containers" / cid / "rootfs" / "etc" / "marker").read_text() == "hi\n"
    assert not (basin.root / "images" / "busybox" / "rootfs" / "etc" / "marker").exists()
    basin.ok("rm", "copied")
    assert not (basin.root / "containers" / cid).exists()


def test_storage_mode_follows_the_filesystem(tmp_path: Path) -> None:
    from basin import storage

    assert storage.fs_type(tmp_path) != storage.OVERLAYFS_MAGIC
    assert storage.mode_for(tmp_path) == "overlay"
