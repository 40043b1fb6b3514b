"""The compiled thin client (client/basin.c): what it forwards to the supervisor must behave
exactly as the Python CLI does, and everything else must reach the Python CLI unchanged.

Every other test runs `basin` through this client as well (tests/conftest.py); these tests pin
down what is particular to it: parity with the Python CLI, the fallbacks, byte-exact output
through its frames, a slow reader, signals and a supervisor that dies under it."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import PYTHON_CLI, Basin


def _handled(basin: Basin) -> list[str]:
    """The requests the supervisor logged (needs BASIN_LOG_LEVEL=debug at its start)."""
    out = []
    for line in (basin.root / "supervisor.log").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("event") == "request.handled":
            out.append(rec["request"])
    return out


def _python(basin: Basin, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PYTHON_CLI, *args], env=basin.env, capture_output=True, text=True, timeout=60
    )


def test_forwarded_verbs_are_answered_by_the_supervisor(basin: Basin) -> None:
    basin.env["BASIN_LOG_LEVEL"] = "debug"
    # no supervisor yet: `ps` goes to the Python CLI, which reads the records and starts none
    assert basin.ok("ps").startswith("ID")
    assert basin.supervisor_pid() is None
    # the first run starts one (through the Python CLI); the next ones are forwarded
    basin.ok("run", "--rm", "busybox", "true")
    assert basin.supervisor_pid() is not None
    cid = basin.ok("run", "-d", "--name", "fw", "busybox", "sleep", "60").strip()
    assert basin.ok("ps", "-q", "--no-trunc").split() == [cid]
    assert basin.ok("stop", "-t", "0", "fw") == "fw\n"
    assert basin.ok("rm", "fw") == "fw\n"
    assert basin.ok("run", "--rm", "busybox", "echo", "hi") == "hi\n"
    # a request is logged as handled once its answer is out: the client may be faster
    want = ["run", "cli run", "cli ps", "cli stop", "cli rm", "cli run"]  # first: the Python CLI
    deadline = time.monotonic() + 10
    while _handled(basin) != want:
        assert time.monotonic() < deadline, _handled(basin)
        time.sleep(0.02)


BAD_OR_ODD = [
    ["run"],
    ["run", "busybox", ""],
    ["run", "--memory", "lots", "busybox", "true"],
    ["run", "--name", "no/slash", "busybox", "true"],
    ["run", "--network", "no-such-net", "busybox", "true"],
    ["run", "-p", "99999:80", "busybox", "true"],
    ["run", "--detach-keys", "ctrl-1", "busybox", "true"],
    ["run", "--no-such-flag", "busybox"],
    ["run", "-w", "relative", "busybox", "true"],
    ["run", "no-such-image", "true"],
    ["run", "--rm", "busybox", "no-such-command"],
    ["run", "--help"],
    ["ps", "--format", "yaml"],
    ["ps", "extra"],
    ["ps", "--help"],
    ["stop"],
    ["stop", "-t", "x", "a"],
    ["stop", "nope1", "nope2"],
    ["rm", "nope"],
    ["rm", "--help"],
]


@pytest.mark.parametrize("argv", BAD_OR_ODD, ids=lambda a: " ".join(a) or "empty")
def test_same_answer_as_the_python_cli(basin: Basin, argv: list[str]) -> None:
    basin.ok("supervisor", "start")
    ours = basin(*argv)
    theirs = _python(basin, *argv)
    assert (ours.returncode, ours.stdout, ours.stderr) == (
        theirs.returncode,
        theirs.stdout,
        theirs.stderr,
    )
    if ours.returncode:
        assert ours.stderr.startswith("basin: ") or ours.stderr.startswith("basin run: ")
    # nothing half-made: bad input leaves no container behind
    assert basin.ok("ps", "-q") == ""


def test_output_is_byte_exact_and_streams_stay_apart(basin: Basin, tmp_path: Path) -> None:
    basin.ok("supervisor", "start")
    script = (
        "printf 'a\\377\\000b\\n'; printf 'no newline'; "
        "head -c 3000000 /dev/urandom > /tmp/r; cat /tmp/r; md5sum /tmp/r >&2"
    )
    cmd = [*basin.command, "run", "--rm", "busybox", "sh", "-c", script]
    res = subprocess.run(cmd, env=basin.env, capture_output=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(b"a\xff\x00b\nno newline")
    body = res.stdout[len(b"a\xff\x00b\nno newline") :]
    assert len(body) == 3_000_000
    assert res.stderr.decode().split()[0] == hashlib.md5(body).hexdigest()


def test_a_slow_reader_gets_everything(basin: Basin) -> None:
    """The client's stdout is a pipe nobody reads for a while: the container waits for it (as
    a program writing to a slow terminal does), and no byte is lost."""
    basin.ok("supervisor", "start")
    cmd = [*basin.command, "run", "--rm", "busybox", "sh", "-c", "seq 1 400000"]
    proc = subprocess.Popen(cmd, env=basin.env, stdout=subprocess.PIPE)
    time.sleep(1.5)  # far more than the 64 KiB pipe and the supervisor's 1 MiB queue
    assert proc.stdout is not None
    data = proc.stdout.read()
    assert proc.wait(timeout=30) == 0
    lines = data.decode().splitlines()
    assert len(lines) == 400000 and lines[-1] == "400000"


def test_env_from_the_client_and_env_file_relative_to_its_cwd(basin: Basin, tmp_path: Path) -> None:
    basin.ok("supervisor", "start")
    (tmp_path / "vars.env").write_text("FROM_FILE=yes\n")
    cmd = [*basin.command, "run", "--rm", "-e", "FROM_CLIENT", "-e", "UNSET_ONE"]
    cmd += ["--env-file", "vars.env", "busybox", "env"]
    env = {**basin.env, "FROM_CLIENT": "a value with spaces"}
    env.pop("UNSET_ONE", None)
    res = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert "FROM_CLIENT=a value with spaces" in lines and "FROM_FILE=yes" in lines
    assert not any(line.startswith("UNSET_ONE") for line in lines)


def test_interactive_runs_fall_back_to_the_python_client(basin: Basin) -> None:
    basin.env["BASIN_LOG_LEVEL"] = "debug"
    basin.ok("supervisor", "start")
    res = basin("run", "-i", "--rm", "busybox", "cat", input=b"through stdin\n")
    assert res.returncode == 0 and res.stdout == "through stdin\n", res.stderr
    # the forwarded line was handed back (fallback), then the Python client ran it (its
    # request is logged once the supervisor has removed the container, a moment later)
    deadline = time.monotonic() + 10
    while _handled(basin)[-2:] != ["cli run", "run"]:
        assert time.monotonic() < deadline, _handled(basin)
        time.sleep(0.05)


def test_too_long_or_not_utf8_goes_to_the_python_cli(basin: Basin) -> None:
    basin.ok("supervisor", "start")
    res = basin("run", "--rm", "busybox", "echo", "x" * 5000)
    theirs = _python(basin, "run", "--rm", "busybox", "echo", "x" * 5000)
    assert res.returncode == theirs.returncode == 125
    assert res.stderr == theirs.stderr and "request too large" in res.stderr
    odd = os.fsdecode(b"caf\xe9")
    cmd = [*basin.command, "run", "--rm", "busybox", "echo", odd]
    res2 = subprocess.run(cmd, env=basin.env, capture_output=True, timeout=60)
    py = subprocess.run([*PYTHON_CLI, *cmd[1:]], env=basin.env, capture_output=True, timeout=60)
    assert (res2.returncode, res2.stdout, res2.stderr) == (py.returncode, py.stdout, py.stderr)


def test_ctrl_c_leaves_no_reply_fifo_and_the_container_runs_on(basin: Basin) -> None:
    basin.ok("supervisor", "start")
    cmd = [*basin.command, "run", "--rm", "--name", "fg", "busybox", "sleep", "60"]
    proc = subprocess.Popen(cmd, env=basin.env)
    deadline = time.monotonic() + 10
    while "running" not in basin.ok("ps"):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == -signal.SIGINT
    assert os.listdir(basin.run_dir / "replies") == []
    assert "running" in basin.ok("ps")  # docker's run without sig-proxy: it goes on
    basin.ok("stop", "-t", "0", "fg")
    # --rm still holds once its client is gone
    deadline = time.monotonic() + 10
    while basin.ok("ps", "-q"):
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_supervisor_killed_under_a_waiting_client(basin: Basin) -> None:
    basin.ok("supervisor", "start")
    cmd = [*basin.command, "run", "--rm", "--name", "orphan", "busybox", "sleep", "60"]
    proc = subprocess.Popen(cmd, env=basin.env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while "running" not in basin.ok("ps"):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    pid = basin.supervisor_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 125
    assert err.strip().splitlines() == ["basin: the supervisor died while handling the request"]
    basin.ok("rm", "-f", "orphan")  # a new supervisor takes it back; cleanup as usual


def test_a_reader_that_leaves_early(basin: Basin) -> None:
    """`basin run ... | head -1`: the client exits 0 on the broken pipe (as the Python CLI
    does); the container runs to its end regardless and --rm removes it."""
    basin.ok("supervisor", "start")
    client = " ".join(basin.command)
    script = (
        f"{client} run --rm --name early busybox seq 1 2000000 | head -1; echo ${{PIPESTATUS[0]}}"
    )
    res = subprocess.run(
        ["bash", "-c", script], env=basin.env, capture_output=True, text=True, timeout=60
    )
    assert res.stdout.splitlines() == ["1", "0"], res.stderr
    assert res.stderr == ""
    deadline = time.monotonic() + 20
    while basin.ok("ps", "-q"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
