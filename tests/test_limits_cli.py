"""Resource limits end to end: the real CLI, a real supervisor, the real kernel's cgroups.

The kernel files are read from the host through the container's own /proc/PID/cgroup, so the
tests check where the container really is, not where basin meant to put it. Tests that read a
container's output do not use --rm: a foreground `run --rm` can still lose a quick container's
output (the log is removed before the client has opened it), which is not what is tested here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from plugins.cgroups.layout import group_dir, host_layout, parse_proc_cgroup, read_mounts
from tests.conftest import Basin

M = 1 << 20
NCPU = os.cpu_count() or 1
# Grows the shell's own memory: $(...) collects 64 MiB of output in the shell that runs it.
ALLOCATE_64M = 'x=$(head -c 64m /dev/zero | tr "\\0" a); echo survived ${#x}'

v1_only = pytest.mark.skipif(host_layout() == "v2", reason="reads cgroup v1 control files")


def ps_json(basin: Basin, name: str) -> dict[str, Any]:
    for line in basin.ok("ps", "--format", "json").splitlines():
        rec: dict[str, Any] = json.loads(line)
        if rec["name"] == name:
            return rec
    raise AssertionError(f"no container {name} in ps")


def groups_of(pid: int) -> dict[str, Path]:
    """Controller -> the directory of the cgroup the process is in ("" = cgroup2)."""
    where = parse_proc_cgroup(Path(f"/proc/{pid}/cgroup").read_text())
    out: dict[str, Path] = {}
    for m in read_mounts():
        for c in m.controllers if m.version == 1 else {""}:
            if c in where and c not in out:
                out[c] = group_dir(m, where[c])
    return out


def cpu_usage_ns(group: dict[str, Path]) -> int:
    if "cpuacct" in group:
        return int((group["cpuacct"] / "cpuacct.usage").read_text())
    for line in (group[""] / "cpu.stat").read_text().splitlines():
        if line.startswith("usage_usec "):
            return int(line.split()[1]) * 1000
    raise AssertionError("no CPU usage counter")


def assert_clean_error(res: subprocess.CompletedProcess[str], *words: str) -> None:
    assert res.returncode == 125, (res.returncode, res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("basin: "), lines
    for w in words:
        assert w in lines[0], (w, lines[0])


def nothing_made(basin: Basin) -> None:
    d = basin.root / "containers"
    assert not d.exists() or os.listdir(d) == []
    assert basin.ok("ps", "-q") == ""


# ---- the flags reach the kernel -------------------------------------------------------


@v1_only
def test_every_limit_is_in_the_kernel_files(basin: Basin) -> None:
    basin.ok(
        "run",
        "-d",
        "--name",
        "lim",
        "-m",
        "32m",
        "--memory-swap",
        "64m",
        "--cpus",
        "0.5",
        "--cpu-shares",
        "512",
        "--cpuset-cpus",
        "0",
        "--pids-limit",
        "10",
        "busybox",
        "sleep",
        "60",
    )
    rec = ps_json(basin, "lim")
    g = groups_of(rec["pid"])
    for c in ("memory", "cpu", "cpuacct", "cpuset", "pids"):
        assert g[c].name == "basin-" + rec["id"], (c, g[c])

    def read(c: str, f: str) -> str:
        return (g[c] / f).read_text().strip()

    assert read("memory", "memory.limit_in_bytes") == str(32 * M)
    assert read("memory", "memory.memsw.limit_in_bytes") == str(64 * M)
    assert read("cpu", "cpu.cfs_quota_us") == "50000"
    assert read("cpu", "cpu.cfs_period_us") == "100000"
    assert read("cpu", "cpu.shares") == "512"
    assert read("cpuset", "cpuset.cpus") == "0"
    assert read("pids", "pids.max") == "10"

    # the records hold what was asked and what the kernel holds
    cdir = basin.root / "containers" / rec["id"]
    config = json.loads((cdir / "config.json").read_text())
    state = json.loads((cdir / "state.json").read_text())
    assert config["limits"]["memory"] == 32 * M and config["limits"]["pids"] == 10
    assert state["limits_enforced"] == {
        "memory": 32 * M,
        "memory_swap": 64 * M,
        "cpu_quota": 50000,
        "cpu_period": 100000,
        "cpu_shares": 512,
        "cpuset_cpus": "0",
        "pids": 10,
    }
    basin.ok("rm", "-f", "lim")
    assert not any(p.exists() for p in g.values() if p.name.startswith("basin-"))


@v1_only
def test_enforced_records_what_the_host_filled_in(basin: Basin) -> None:
    # 10000001 bytes is not a whole number of pages; no cpuset asked: the parent's is inherited
    basin.ok("run", "-d", "--name", "odd", "-m", "10000001", "busybox", "sleep", "60")
    rec = ps_json(basin, "odd")
    state = json.loads((basin.root / "containers" / rec["id"] / "state.json").read_text())
    enforced = state["limits_enforced"]
    page = os.sysconf("SC_PAGE_SIZE")
    assert enforced["memory"] == 10000001 // page * page
    online = Path("/sys/devices/system/cpu/online").read_text().strip()
    assert enforced["cpuset_cpus"] == online
    assert enforced["cpu_quota"] is None and enforced["pids"] is None


def test_limits_are_in_force_when_the_command_starts(basin: Basin) -> None:
    # The command's first act is to look at its own cgroups: it is already in all of them.
    out = basin.ok("run", "--name", "first", "-m", "32m", "busybox", "cat", "/proc/self/cgroup")
    cid = ps_json(basin, "first")["id"]
    where = parse_proc_cgroup(out)
    wanted = ("memory", "cpu", "cpuacct", "cpuset", "pids") if "memory" in where else ("",)
    for c in wanted:
        assert where[c].endswith("/basin-" + cid), (c, where[c])


@v1_only
def test_cpu_quota_flag_writes_quota_and_period(basin: Basin) -> None:
    basin.ok("run", "-d", "--name", "q", "-cpu", "10000", "busybox", "sleep", "60")
    g = groups_of(ps_json(basin, "q")["pid"])
    assert (g["cpu"] / "cpu.cfs_quota_us").read_text().strip() == "10000"
    assert (g["cpu"] / "cpu.cfs_period_us").read_text().strip() == "100000"


@v1_only
def test_memory_swap(basin: Basin) -> None:
    basin.ok(
        "run", "-d", "--name", "sw", "-m", "32m", "--memory-swap", "48m", "busybox", "sleep", "60"
    )
    basin.ok(
        "run", "-d", "--name", "inf", "-m", "32m", "--memory-swap", "-1", "busybox", "sleep", "60"
    )
    sw = groups_of(ps_json(basin, "sw")["pid"])["memory"]
    inf = groups_of(ps_json(basin, "inf")["pid"])["memory"]
    assert (sw / "memory.memsw.limit_in_bytes").read_text().strip() == str(48 * M)
    assert int((inf / "memory.memsw.limit_in_bytes").read_text()) > 1 << 62  # unlimited
    assert (inf / "memory.limit_in_bytes").read_text().strip() == str(32 * M)


# ---- the limits work --------------------------------------------------------------------


def test_oom_kill_is_exit_137_and_reported(basin: Basin) -> None:
    res = basin("run", "--name", "hog", "-m", "32m", "busybox", "sh", "-c", ALLOCATE_64M)
    assert res.returncode == 137, (res.stdout, res.stderr)
    assert "survived" not in res.stdout
    rec = ps_json(basin, "hog")
    assert rec["oom_killed"] is True and rec["exit_code"] == 137
    assert "exited (137)" in basin.ok("ps")
    events = [json.loads(line) for line in (basin.root / "supervisor.log").read_text().splitlines()]
    oom = [e for e in events if e["event"] == "container.oom"]
    assert [e["container"] for e in oom] == [rec["id"][:12]]
    assert oom[0]["name"] == "hog"


def test_without_a_limit_the_same_command_survives(basin: Basin) -> None:
    # the control for the test above: it is the limit that kills, not the command
    out = basin.ok("run", "--name", "fine", "busybox", "sh", "-c", ALLOCATE_64M)
    assert out == f"survived {64 * M}\n"
    assert ps_json(basin, "fine")["oom_killed"] is False


def test_oom_is_noticed_by_event_while_the_container_runs(basin: Basin) -> None:
    # The kernel kills the big child; PID 1 lives on, so nothing but the OOM event can tell.
    # PID 1 opts out of the OOM killer's choice (its child opts back in), or the kernel may
    # pick PID 1 instead of the child and the container ends before anything can be asserted
    script = (
        "echo -1000 > /proc/self/oom_score_adj; "
        f"sh -c 'echo 0 > /proc/self/oom_score_adj; {ALLOCATE_64M}'; echo child $?; "
        # until the victim's memory is reaped, forking `sleep` can fail (the group is still at
        # its limit, with nothing left to kill): PID 1 must not end because of that
        "while :; do sleep 60; done"
    )
    basin.ok("run", "-d", "--name", "runs-on", "-m", "32m", "busybox", "sh", "-c", script)
    deadline = time.monotonic() + 30  # reclaim before the kill is slow on a loaded machine
    while not (rec := ps_json(basin, "runs-on"))["oom_killed"]:
        assert time.monotonic() < deadline, "the OOM kill was not noticed while running"
        time.sleep(0.05)
    assert rec["status"] == "running", (rec, basin("logs", "runs-on"))
    # the event can beat the shell's own line to the log, and the log writer is a thread
    while (
        "child 137" not in basin.ok("logs", "runs-on")
        or "container.oom" not in (basin.root / "supervisor.log").read_text()
    ):
        assert time.monotonic() < deadline, "the killed child's status or the event never came"
        time.sleep(0.05)
    assert "child 137" in basin.ok("logs", "runs-on")
    events = [json.loads(line) for line in (basin.root / "supervisor.log").read_text().splitlines()]
    oom = [e for e in events if e["event"] == "container.oom"]
    assert [(e["name"], e["noticed"]) for e in oom] == [("runs-on", "event")]
    basin.ok("rm", "-f", "runs-on")


def test_cpus_half_holds_two_spinners_to_half_a_cpu(basin: Basin) -> None:
    spin = "while :; do :; done"
    basin.ok(
        "run", "-d", "--name", "spin", "--cpus", "0.5", "busybox", "sh", "-c", f"{spin} & {spin}"
    )
    g = groups_of(ps_json(basin, "spin")["pid"])
    time.sleep(0.3)  # let both spinners start
    u0, t0 = cpu_usage_ns(g), time.monotonic_ns()
    time.sleep(2)
    u1, t1 = cpu_usage_ns(g), time.monotonic_ns()
    cpus = (u1 - u0) / (t1 - t0)
    # unlimited, two spinners would take two CPUs; the floor only shows they did spin
    assert 0.2 < cpus <= 0.6, cpus
    basin.ok("rm", "-f", "spin")


def test_cpuset_confines_to_the_cpus_given(basin: Basin) -> None:
    def allowed(*flags: str) -> str:
        out = basin.ok("run", *flags, "busybox", "grep", "Cpus_allowed_list", "/proc/1/status")
        return out.split()[-1]

    assert allowed("--cpuset-cpus", "0") == "0"
    online = Path("/sys/devices/system/cpu/online").read_text().strip()
    assert allowed() == online
    if NCPU > 1:
        assert allowed("-cpuset", "1") == "1"


def test_pids_limit_makes_fork_fail_inside(basin: Basin) -> None:
    # An inner shell forks until it cannot (busybox sh then gives up); its sleeps stay. The
    # outer one counts the processes with builtins only: at the limit nothing else starts.
    script = (
        "sh -c 'for i in $(seq 20); do sleep 30 & done'; echo inner $?;"
        " set -- /proc/[0-9]*; echo procs $#"
    )
    res = basin("run", "--pids-limit", "10", "busybox", "sh", "-c", script)
    assert res.returncode == 0, res.stderr
    assert "can't fork" in res.stderr
    assert "inner 2" in res.stdout
    assert int(res.stdout.split()[-1]) <= 10
    res = basin("run", "busybox", "sh", "-c", script)  # control: no limit, no failure
    assert res.stderr == "" and res.stdout == "inner 0\nprocs 21\n"


# ---- stats ------------------------------------------------------------------------------


def test_stats_shows_a_running_containers_numbers(basin: Basin) -> None:
    basin.ok(
        "run",
        "-d",
        "--name",
        "busy",
        "-m",
        "64m",
        "--cpus",
        "0.5",
        "busybox",
        "sh",
        "-c",
        "while :; do :; done",
    )
    basin.ok("run", "-d", "--name", "idle", "busybox", "sleep", "60")
    basin.ok("run", "--name", "gone", "busybox", "true")

    lines = basin.ok("stats", "--no-stream").splitlines()
    assert lines[0].split() == [
        "CONTAINER",
        "ID",
        "NAME",
        "CPU",
        "%",
        "MEM",
        "USAGE",
        "/",
        "LIMIT",
        "MEM",
        "%",
        "PIDS",
    ]
    rows = {line.split()[1]: line.split() for line in lines[1:]}
    assert set(rows) == {"busy", "idle"}  # running ones only
    busy = rows["busy"]
    assert busy[0] == ps_json(basin, "busy")["id"][:12]
    assert busy[5] == "64MiB" and busy[-1] == "1"
    assert 10 < float(busy[2].rstrip("%")) <= 60

    stats = [
        json.loads(line)
        for line in basin.ok(
            "stats", "--no-stream", "--format", "json", "busy", "idle"
        ).splitlines()
    ]
    assert [s["name"] for s in stats] == ["busy", "idle"]
    busy_j, idle_j = stats
    assert busy_j["memory_limit"] == 64 * M and busy_j["memory_limited"] is True
    assert 0 < busy_j["memory_usage"] < 64 * M and busy_j["pids"] == 1
    assert 10 < busy_j["cpu_percent"] <= 60
    assert idle_j["cpu_percent"] < 5 and idle_j["memory_limited"] is False

    # a named container that is not running is shown without numbers, an unknown one refused
    assert "--" in basin.ok("stats", "--no-stream", "gone")
    res = basin("stats", "--no-stream", "nobody")
    assert res.returncode == 125 and "no such container: nobody" in res.stderr


def test_stats_streams_until_interrupted(basin: Basin) -> None:
    basin.ok("run", "-d", "--name", "s", "busybox", "sleep", "60")
    proc = subprocess.Popen(
        [sys.executable, "-m", "basin", "stats", "--format", "json"],
        env=basin.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first, second = proc.stdout.readline(), proc.stdout.readline()
    proc.send_signal(2)
    assert proc.wait(10) == 0
    assert json.loads(first)["name"] == json.loads(second)["name"] == "s"


def test_stats_client_imports_nothing_heavy(basin: Basin) -> None:
    basin.ok("run", "-d", "--name", "light", "busybox", "sleep", "60")
    code = (
        "import sys; from basin.cli.main import main; main(['stats', '--no-stream']);"
        "print('HEAVY', [m for m in ('trio', 'prompt_toolkit', 'pyroute2', 'structlog')"
        " if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=basin.env, capture_output=True, text=True, check=True
    )
    assert "HEAVY []" in out.stdout and "light" in out.stdout


# ---- bad values -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["-m", "-5m"], ["--memory", "-5m"]),
        (["-m", "lots"], ["--memory", "lots"]),
        (["--memory", "32q"], ["--memory"]),
        (["-mem", "5m"], ["below the minimum of 6m"]),
        (["--memory-swap", "64m"], ["needs --memory"]),
        (["-m", "32m", "--memory-swap", "16m"], ["at least --memory"]),
        (["-m", "32m", "--memory-swap", "x"], ["--memory-swap"]),
        (["--cpus", str(NCPU + 1)], ["more than the", "CPUs of this host"]),
        (["--cpus", "0"], ["more than 0"]),
        (["--cpus", "-1"], ["more than 0"]),
        (["--cpus", "half"], ["--cpus"]),
        (["--cpus", "0.001"], ["minimum"]),
        (["-cpu", "500"], ["at least 1000"]),
        (["-cpu", str((NCPU + 1) * 100000)], ["CPUs of this host"]),
        (["-cpu", "ten"], ["-cpu"]),
        (["-cpu", "10000", "--cpus", "0.5"], ["either"]),
        (["--cpu-shares", "1"], ["between 2 and"]),
        (["--cpuset-cpus", str(NCPU)], [f"CPU {NCPU} is not online"]),
        (["-cpuset", "0-99"], ["is not online"]),
        (["--cpuset-cpus", "1-0"], ["backwards"]),
        (["--cpuset-cpus", "zero"], ["--cpuset-cpus"]),
        (["--pids-limit", "-5"], ["--pids-limit"]),
        (["--pids-limit", "many"], ["--pids-limit"]),
    ],
)
def test_bad_value_is_refused_before_anything_is_made(
    basin: Basin, flags: list[str], words: list[str]
) -> None:
    res = basin("run", *flags, "busybox", "true")
    assert_clean_error(res, *words)
    # refused by the client itself: no supervisor was even asked
    assert basin.supervisor_pid() is None
    nothing_made(basin)


def _in_own_mount_ns(basin: Basin, umount: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `basin ARGS` (and the supervisor it starts) where `umount` unmounted some cgroup
    hierarchy, as on a host that lacks it; the host's own mounts are untouched."""
    script = f'umount {umount} && exec "$@"'
    return subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
            sys.executable,
            "-m",
            "basin",
            *args,
        ],
        env=basin.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@v1_only
def test_limit_the_host_cannot_enforce_is_refused(basin: Basin) -> None:
    assert basin.supervisor_pid() is None  # the supervisor must start without the pids mount
    res = _in_own_mount_ns(
        basin, "/sys/fs/cgroup/pids", "run", "--pids-limit", "10", "busybox", "true"
    )
    assert_clean_error(res, "pids limit", "pids cgroup controller is not mounted")
    nothing_made(basin)
    # refused before a record was made, so before any cgroup (the leak check looks as well)
    log = (basin.root / "supervisor.log").read_text()
    assert "container.created" not in log
    # what the host can enforce still works there
    out = basin.ok("run", "-m", "32m", "busybox", "echo", "ok")
    assert out == "ok\n"


def test_without_cgroups_a_limit_fails_clearly(basin: Basin) -> None:
    assert basin.supervisor_pid() is None
    res = _in_own_mount_ns(
        basin, "-R /sys/fs/cgroup", "run", "--rm", "-m", "32m", "busybox", "true"
    )
    assert_clean_error(res, "memory", "runs without cgroups", "no cgroup filesystem is mounted")
    nothing_made(basin)
    # the same supervisor runs containers without limits
    assert basin.ok("run", "busybox", "echo", "unlimited") == "unlimited\n"
    log = (basin.root / "supervisor.log").read_text()
    assert '"event": "cgroups.unavailable"' in log
