"""The `basin>` shell through a real pseudo-terminal: what a person types, what they see."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from tests.conftest import Basin

# CSI and OSC sequences, and the few two-byte escapes prompt_toolkit writes
ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[=>()78][0-9A-Za-z]?"
)
BACKSPACED = re.compile(r"[^\n]?\x08")
CPR = "\x1b[6n"
UP, RIGHT, TAB = "\x1b[A", "\x1b[C", "\t"


class Term:
    """A shell on a pseudo-terminal; `seen` is everything it printed, escapes stripped."""

    def __init__(self, basin: Basin, history: Path) -> None:
        env = {
            **basin.env,
            "BASIN_HISTORY": str(history),
            "TERM": "xterm",
        }
        self.child = pexpect.spawn(
            sys.executable,
            ["-m", "basin"],
            env=env,
            dimensions=(40, 120),
            encoding="utf-8",
            codec_errors="replace",
        )
        self.seen = ""
        self.mark = 0  # wait_for searches from here on

    def _read(self, timeout: float) -> None:
        try:
            chunk = self.child.read_nonblocking(65536, timeout=timeout)
        except pexpect.TIMEOUT:
            return
        except pexpect.EOF:
            raise AssertionError(f"the shell ended; it printed:\n{self.seen[-2000:]}") from None
        # a terminal answers prompt_toolkit's cursor position requests; without an answer it
        # does not know the screen's height and leaves the bottom toolbar out
        for _ in range(chunk.count(CPR)):
            self.child.send("\x1b[1;1R")
        self.seen += BACKSPACED.sub("", ANSI.sub("", chunk).replace("\r", ""))

    def wait_for(self, pattern: str, timeout: float = 20) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern, re.M)
        while True:
            m = rx.search(self.seen, self.mark)
            if m:
                self.mark = m.end()
                return m
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} within {timeout}s in:\n{self.seen[-2000:]}")
            self._read(0.1)

    def quiet_for(self, seconds: float) -> str:
        """What the shell prints in the next `seconds`."""
        start = len(self.seen)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._read(0.05)
        self.mark = len(self.seen)
        return self.seen[start:]

    def send(self, text: str) -> None:
        self.child.send(text)

    def line(self, text: str) -> None:
        self.child.send(text + "\r")

    def finish(self) -> int:
        """Ctrl-D at an empty prompt; the shell's exit status."""
        self.child.send("\x04")
        self.child.expect(pexpect.EOF, timeout=10)
        self.child.close()
        assert self.child.exitstatus is not None
        return int(self.child.exitstatus)


@pytest.fixture
def shell(basin: Basin, tmp_path: Path) -> Iterator[Term]:
    term = Term(basin, tmp_path / "history")
    try:
        term.wait_for("basin>")
        yield term
    finally:
        if term.child.isalive():
            term.child.close(force=True)


def test_run_complete_ps_stop_rm(shell: Term, basin: Basin) -> None:
    shell.wait_for(r"supervisor: down  \|  containers: 0 running / 0 total")
    shell.line("run -d --name web busybox sleep 60")
    shell.wait_for(r"^[0-9a-f]{64}$")
    pid = basin.supervisor_pid()
    shell.wait_for(rf"supervisor: up \(pid {pid}\)  \|  containers: 1 running / 1 total")
    shell.line("ps")
    shell.wait_for(r"^[0-9a-f]{12}\s+web\s+\d+\s+running\s+sleep 60")
    # the name is completed from the background snapshot: `stop -t 1 we<Tab>` runs `stop web`
    shell.send("stop -t 1 we")
    time.sleep(0.5)
    shell.send(TAB)
    time.sleep(0.3)
    shell.send("\r")
    shell.wait_for(r"^web$")
    assert "no such container" not in shell.seen
    assert '"status": "stopped"' in basin.ok("ps", "--format", "json").replace(
        '"status":"stopped"', '"status": "stopped"'
    )
    shell.line("rm web")
    shell.wait_for(r"^web$")
    assert basin.ok("ps", "-q") == ""
    shell.wait_for("basin>")
    assert shell.finish() == 0


def test_error_does_not_end_the_shell(shell: Term) -> None:
    shell.line("rm nope")
    shell.wait_for(r"^basin: no such container: nope$")
    shell.line("frobnicate")
    shell.wait_for(r"^basin: unknown command 'frobnicate'")
    shell.line("run busybox echo 'unclosed")
    shell.wait_for(r"^basin: cannot read the line: No closing quotation$")
    shell.line("ps &")
    shell.wait_for(r"^basin: only 'logs -f NAME &' runs in the background$")
    shell.line("run --bogus busybox")
    shell.wait_for(r"^basin: basin run: unknown flag: --bogus$")
    # still alive: a command still runs, and the toolbar shows the last failure
    shell.line("help stop")
    shell.wait_for(r"^Usage: basin stop \[OPTIONS\] NAME\.\.\.$")
    shell.line("exit 3")
    shell.child.expect(pexpect.EOF, timeout=10)
    shell.child.close()
    assert shell.child.exitstatus == 3


def test_rm_force_asks_before_killing_a_running_container(shell: Term, basin: Basin) -> None:
    shell.line("run -d --name web busybox sleep 60")
    shell.wait_for(r"^[0-9a-f]{64}$")
    shell.line("rm -f web")
    shell.wait_for(r"web is running: kill and remove it\? \[y/N\]")
    shell.line("n")
    shell.wait_for(r"^basin: rm: cancelled, nothing removed$")
    assert "running" in basin.ok("ps")
    shell.line("rm -f web")
    shell.wait_for(r"web is running: kill and remove it\? \[y/N\]")
    shell.line("y")
    shell.wait_for(r"^web$")
    assert basin.ok("ps", "-q") == ""
    # nothing running: rm -f asks nothing
    shell.line("run -d --name done busybox true")
    shell.wait_for(r"^[0-9a-f]{64}$")
    deadline = time.monotonic() + 10
    while "running" in basin.ok("ps"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    shell.line("rm -f done")
    shell.wait_for(r"^done$")
    assert "kill and remove" not in shell.seen[shell.seen.rindex("rm -f done") :]
    assert shell.finish() == 0


def test_logs_follow_in_the_background(shell: Term, basin: Basin) -> None:
    basin.ok(
        "run", "-d", "--name", "web", "busybox", "sh", "-c",
        "i=0; while :; do echo tick$i; i=$((i+1)); sleep 0.2; done",
    )  # fmt: skip
    # in the foreground, Ctrl-C ends the command, not the shell
    shell.line("logs -f web")
    shell.wait_for(r"^tick\d+$")
    shell.send("\x03")
    shell.wait_for(r"last exit: 130")
    shell.line("logs -f web &")
    shell.wait_for(r"^\[1\] logs -f web$")
    shell.wait_for(r"web \| tick\d+\n")
    # the prompt stays live while lines arrive above it: half a command, a line, the rest
    shell.send("p")
    shell.wait_for(r"web \| tick\d+\n")
    shell.send("s\r")
    shell.wait_for(r"^[0-9a-f]{12}\s+web\s+\d+\s+running")
    shell.line("jobs")
    shell.wait_for(r"^\[1\]  running  logs -f web$")
    shell.line("kill %1")
    shell.wait_for(r"^\[1\]  killed  logs -f web$")
    shell.quiet_for(0.5)  # a line already on its way may still land
    assert "tick" not in shell.quiet_for(1.5)
    shell.line("jobs")
    shell.line("kill %1")
    shell.wait_for(r"^basin: kill: no such job: %1$")
    # a follower ends by itself when its container stops
    shell.line("logs -n 0 -f web &")
    shell.wait_for(r"^\[1\] logs -n 0 -f web$")
    shell.wait_for(r"web \| tick\d+\n")
    basin.ok("stop", "-t", "1", "web")
    shell.wait_for(r"^\[1\]  done  logs -n 0 -f web$", timeout=10)
    shell.line("jobs")
    assert "running  logs" not in shell.quiet_for(0.5)
    assert shell.finish() == 0


def test_history_survives_a_restart(basin: Basin, tmp_path: Path) -> None:
    history = tmp_path / "history"
    first = Term(basin, history)
    try:
        first.wait_for("basin>")
        first.line("help stop")
        first.wait_for(r"^Usage: basin stop")
        assert first.finish() == 0
    finally:
        first.child.close(force=True)
    assert "+help stop" in history.read_text()
    assert history.stat().st_mode & 0o777 == 0o600

    second = Term(basin, history)
    try:
        second.wait_for("basin>")
        time.sleep(0.5)  # history loads in the background as the prompt starts
        second.send(UP)
        time.sleep(0.3)
        second.send("\r")
        second.wait_for(r"^Usage: basin stop")
        # and the grey suggestion from history: `help s` + Right arrow completes the line
        second.send("help s")
        time.sleep(0.3)
        second.send(RIGHT + "\r")
        second.wait_for(r"^Usage: basin stop")
        assert second.finish() == 0
    finally:
        second.child.close(force=True)


def test_no_terminal_prints_usage_and_exits_2(basin: Basin, tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "basin"],
        env=basin.env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode == 2
    assert res.stderr.startswith("Usage: basin COMMAND") and res.stdout == ""
    # a terminal on stdin but output to a file is not interactive either
    out_file = tmp_path / "out"
    out = pexpect.run(
        f"sh -c '{sys.executable} -m basin >{out_file} 2>&1; echo code=$?'",
        env={**basin.env, "TERM": "xterm"},
        timeout=30,
        encoding="utf-8",
    )
    assert "code=2" in out
    assert out_file.read_text().startswith("Usage: basin COMMAND")


def test_thin_commands_do_not_import_the_shell(basin: Basin) -> None:
    code = (
        "import sys; from basin.cli.main import main; main(['ps']);"
        "print([m for m in ('prompt_toolkit', 'aiofiles', 'basin.shell') if m in sys.modules])"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], env=basin.env, capture_output=True, text=True, timeout=30
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "[]"


def test_shell_session_imports_no_trio(basin: Basin, tmp_path: Path) -> None:
    # aiofiles belongs to the shell's asyncio loop; the shell never pulls in the trio side
    code = (
        "import sys, basin.shell.app;"
        "print(sorted(m for m in ('trio', 'pyroute2', 'structlog') if m in sys.modules))"
    )
    env = {**basin.env, "BASIN_HISTORY": os.fspath(tmp_path / "h")}
    res = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"
