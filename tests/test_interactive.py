"""Interactive containers through a real pseudo-terminal: run -it, detach and attach, resize,
-i pipes, -t alone, and clients that die or stall while attached."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from basin.cli import detachkeys
from basin.errors import BasinError
from tests.conftest import Basin

PROMPT = "/ # "


class Terminals:
    """pexpect sessions of the real `basin` command, closed (killed if need be) at the end."""

    def __init__(self, basin: Basin) -> None:
        self.basin = basin
        self.spawned: list[pexpect.spawn] = []

    def spawn(self, *args: str, rows: int = 24, cols: int = 80) -> pexpect.spawn:
        child = pexpect.spawn(
            sys.executable,
            ["-m", "basin", *args],
            env=self.basin.env,
            timeout=15,
            dimensions=(rows, cols),
        )
        self.spawned.append(child)
        return child

    def python(self, script: str) -> pexpect.spawn:
        child = pexpect.spawn(sys.executable, ["-c", script], env=self.basin.env, timeout=15)
        self.spawned.append(child)
        return child

    def close(self) -> None:
        for child in self.spawned:
            child.close(force=True)


@pytest.fixture
def terms(basin: Basin) -> Iterator[Terminals]:
    t = Terminals(basin)
    try:
        yield t
    finally:
        t.close()


def finish(child: pexpect.spawn) -> int:
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus is not None, f"killed by signal {child.signalstatus}"
    return int(child.exitstatus)


def detach(child: pexpect.spawn) -> None:
    child.sendcontrol("p")
    child.sendcontrol("q")
    child.expect("detached from")
    assert finish(child) == 0


def status(basin: Basin, name: str) -> dict[str, object]:
    for line in basin.ok("ps", "--format", "json").splitlines():
        rec = json.loads(line)
        if rec["name"] == name:
            return dict(rec)
    raise AssertionError(f"no container {name}")


def wait_for(cond: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def log_records(basin: Basin, name: str) -> list[dict[str, str]]:
    cid = str(status(basin, name)["id"])
    path = basin.root / "containers" / cid / f"{cid}-json.log"
    text = path.read_text()
    # the log is being written: a record is complete once its newline is there
    complete = text[: text.rfind("\n") + 1]
    return [json.loads(line) for line in complete.splitlines()]


def no_fifos_left(basin: Basin) -> None:
    replies = basin.run_dir / "replies"
    wait_for(lambda: not [p for p in replies.iterdir() if p.name != "."], timeout=5)


def test_shell_on_a_terminal(basin: Basin, terms: Terminals) -> None:
    sh = terms.spawn("run", "-it", "--name", "box", "busybox", "sh", rows=30, cols=100)
    sh.expect_exact(PROMPT)
    sh.sendline("tty; echo pid=$$; stty size")
    sh.expect(r"(/dev/pts/\d+)\r\npid=(\d+)\r\n(\d+ \d+)\r\n")
    assert sh.match.groups() == (b"/dev/pts/0", b"1", b"30 100")
    sh.sendline("ps -o pid,args")
    sh.expect(r"\n\s*1 sh\r\n")
    # the window follows the user's terminal
    sh.setwinsize(40, 123)
    time.sleep(0.3)
    sh.sendline("stty size")
    sh.expect(r"\n(\d+ \d+)\r\n")
    assert sh.match.group(1) == b"40 123"
    # job control: stop a job, bring it back, interrupt it
    sh.sendline("sleep 100")
    time.sleep(0.3)
    sh.sendcontrol("z")
    sh.expect("Stopped")
    sh.sendline("fg")
    sh.expect("sleep 100")
    time.sleep(0.3)
    sh.sendcontrol("c")
    sh.expect_exact(PROMPT)
    sh.sendline("echo status=$?")
    sh.expect("status=130")
    sh.sendline("exit 7")
    assert finish(sh) == 7
    # the terminal's output is in the log, as stream stdout
    recs = log_records(basin, "box")
    assert {r["stream"] for r in recs} == {"stdout"}
    assert "/dev/pts/0" in "".join(r["log"] for r in recs)
    basin.ok("rm", "box")
    no_fifos_left(basin)


def test_detach_and_reattach(basin: Basin, terms: Terminals) -> None:
    sh = terms.spawn("run", "-it", "--name", "bg", "busybox", "sh")
    sh.expect_exact(PROMPT)
    # output that keeps coming while nobody is attached
    sh.sendline("(i=0; while true; do i=$((i+1)); echo tick$i; sleep 0.1; done) &")
    sh.expect("tick1")
    detach(sh)
    assert status(basin, "bg")["status"] == "running"
    size = len(log_records(basin, "bg"))
    wait_for(lambda: len(log_records(basin, "bg")) > size + 5)

    again = terms.spawn("attach", "bg")
    again.expect(r"tick\d+")
    again.sendline("kill %1; exit 5")
    assert finish(again) == 5
    assert status(basin, "bg")["exit_code"] == 5
    basin.ok("rm", "bg")
    no_fifos_left(basin)


def test_two_clients_both_see_output(basin: Basin, terms: Terminals) -> None:
    basin.ok("run", "-d", "-it", "--name", "shared", "busybox", "sh")
    a = terms.spawn("attach", "shared")
    b = terms.spawn("attach", "shared")
    time.sleep(0.5)
    a.sendline("echo $((6*7))")
    a.expect("42")
    b.expect("42")
    b.sendline("echo from-b-$((1+1))")
    a.expect("from-b-2")
    detach(b)
    a.sendline("echo still-$((2+3))")
    a.expect("still-5")
    a.sendline("exit 0")
    assert finish(a) == 0


def test_detach_keys(basin: Basin, terms: Terminals) -> None:
    sh = terms.spawn("run", "-it", "--detach-keys", "ctrl-a", "--name", "k", "busybox", "sh")
    sh.expect_exact(PROMPT)
    sh.sendcontrol("p")
    sh.sendcontrol("q")  # not the keys any more: they go to the shell
    sh.sendline("echo alive-$((1+1))")
    sh.expect("alive-2")
    sh.sendcontrol("a")
    sh.expect("detached from k")
    assert finish(sh) == 0

    # letters: a held "q" that is not followed by another "q" reaches the shell
    again = terms.spawn("attach", "--detach-keys", "q,q", "k")
    time.sleep(0.3)
    again.sendline("echo q-$((3+3))")
    again.expect("q-6")
    again.send("qq")
    again.expect("detached from k")
    assert finish(again) == 0
    assert status(basin, "k")["status"] == "running"

    bad = basin("attach", "--detach-keys", "ctrl-1", "k")
    assert bad.returncode == 125 and bad.stderr.startswith("basin: invalid detach keys")
    assert len(bad.stderr.strip().splitlines()) == 1


def test_detach_key_matcher() -> None:
    m = detachkeys.Matcher(detachkeys.parse(None))
    assert m.feed(b"ab\x10") == (b"ab", False)  # ctrl-p held back
    assert m.feed(b"x") == (b"\x10x", False)  # and let through when no ctrl-q follows
    assert m.feed(b"\x10\x10\x11tail") == (b"\x10", True)
    assert detachkeys.parse("ctrl-x,X,ctrl-@,ctrl-\\") == b"\x18X\x00\x1c"
    for bad in ("ctrl-", "ctrl-1", "ab", "ctrl-p,,ctrl-q", "é"):
        with pytest.raises(BasinError):
            detachkeys.parse(bad)


def test_stdin_pipe(basin: Basin) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "basin", "run", "-i", "--rm", "busybox", "cat"],
        input=b"hi\n",
        env=basin.env,
        capture_output=True,
        timeout=30,
    )
    assert (res.returncode, res.stdout) == (0, b"hi\n"), res.stderr
    # a megabyte through, stdout and stderr kept apart, EOF ends the command's input
    data = os.urandom(1 << 20)
    res = subprocess.run(
        [sys.executable, "-m", "basin", "run", "-i", "--rm", "busybox", "sh", "-c",
         "wc -c; echo to-stderr >&2; exit 3"],
        input=data,
        env=basin.env,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    assert res.returncode == 3
    assert res.stdout.split() == [str(len(data)).encode()]
    assert res.stderr == b"to-stderr\n"
    # attach to a -d -i container: our stdin becomes its stdin, its log from now on our output
    basin.ok("run", "-d", "-i", "--name", "reader", "busybox", "sh", "-c",
             "echo before; while read l; do echo got $l; done; echo bye >&2; exit 6")  # fmt: skip
    wait_for(lambda: log_records(basin, "reader"))
    res = subprocess.run(
        [sys.executable, "-m", "basin", "attach", "reader"],
        input=b"hello\nworld\n",
        env=basin.env,
        capture_output=True,
        timeout=30,
    )
    assert (res.returncode, res.stdout, res.stderr) == (6, b"got hello\ngot world\n", b"bye\n")
    no_fifos_left(basin)


def test_tty_without_stdin(basin: Basin, terms: Terminals) -> None:
    out = terms.spawn(
        "run", "-t", "--rm", "busybox", "sh", "-c", "tty; stty size", rows=33, cols=77
    )
    # our own terminal is left cooked (as docker does for -t alone): \n -> \r\n once more
    out.expect(r"/dev/pts/0\r+\n33 77\r+\n")
    assert finish(out) == 0
    # no terminal on our side at all: still a PTY inside, its output on our stdout
    res = basin("run", "-t", "--rm", "busybox", "sh", "-c", "tty; exit 4")
    assert res.returncode == 4 and res.stdout.strip() == "/dev/pts/0"
    res = basin("run", "-it", "--rm", "busybox", "true")
    assert res.returncode == 125 and "not a TTY" in res.stderr
    assert basin.ok("ps", "-q") == ""


def test_detached_tty_then_attach(basin: Basin, terms: Terminals) -> None:
    cid = basin.ok("run", "-d", "-it", "--name", "later", "busybox", "sh").strip()
    assert len(cid) == 64
    time.sleep(0.3)
    sh = terms.spawn("attach", "later", rows=20, cols=60)
    time.sleep(0.3)
    sh.sendline("tty; stty size")
    sh.expect(r"/dev/pts/0\r\n20 60\r\n")  # attach sets the size of the attaching terminal
    sh.sendline("exit 4")
    assert finish(sh) == 4
    res = basin("attach", "later")
    assert res.returncode == 125 and "stopped container" in res.stderr
    res = basin("attach", "nosuch")
    assert res.returncode != 0 and res.stderr.startswith("basin: ")


def _log_size(basin: Basin, name: str) -> int:
    return len(log_records(basin, name))


def test_killed_client_does_not_stall(basin: Basin, terms: Terminals) -> None:
    basin.ok("run", "-d", "-it", "--name", "chatty", "busybox", "sh", "-c",
             "i=0; while true; do i=$((i+1)); echo line$i; sleep 0.01; done")  # fmt: skip
    client = terms.spawn("attach", "chatty")
    client.expect(r"line\d+")
    os.kill(client.pid, signal.SIGKILL)
    client.close(force=True)
    n = _log_size(basin, "chatty")
    wait_for(lambda: _log_size(basin, "chatty") > n + 20)
    # the supervisor still serves others promptly
    started = time.monotonic()
    assert basin.ok("run", "--rm", "busybox", "echo", "ok") == "ok\n"
    assert time.monotonic() - started < 5
    basin.ok("stop", "-t", "0", "chatty")
    assert status(basin, "chatty")["status"] == "stopped"
    no_fifos_left(basin)


def test_stalled_client_is_cut_off(basin: Basin, terms: Terminals) -> None:
    basin.ok("run", "-d", "-it", "--name", "flood", "busybox", "sh", "-c",
             "while true; do head -c 65536 /dev/zero | tr '\\0' x; echo; done")  # fmt: skip
    client = terms.spawn("attach", "flood")
    client.expect("xxxx")
    os.kill(client.pid, signal.SIGSTOP)  # it stops reading: its buffer fills up
    try:
        n = _log_size(basin, "flood")
        wait_for(lambda: _log_size(basin, "flood") > n + 100)  # > 6 MiB more: never stalled
        assert basin.ok("run", "--rm", "busybox", "echo", "ok") == "ok\n"
    finally:
        os.kill(client.pid, signal.SIGCONT)
    client.expect("fell more than")
    assert finish(client) == 125
    assert status(basin, "flood")["status"] == "running"
    basin.ok("rm", "-f", "flood")


INPROCESS = """
import os, signal, sys, termios
from basin.cli.main import main
before = termios.tcgetattr(0)
handlers = [signal.getsignal(s) for s in (signal.SIGWINCH, signal.SIGTERM, signal.SIGHUP)]
print("PID", os.getpid(), flush=True)
code = main(sys.argv[1:])
same = termios.tcgetattr(0) == before
sigs = (signal.SIGWINCH, signal.SIGTERM, signal.SIGHUP)
same_handlers = handlers == [signal.getsignal(s) for s in sigs]
print(f"RESULT code={code} terminal={same} handlers={same_handlers}", flush=True)
"""


@pytest.mark.parametrize("how", ["exit", "error", "sigint", "sigterm"])
def test_in_process_restores_terminal(basin: Basin, terms: Terminals, how: str) -> None:
    image = "nosuchimage" if how == "error" else "busybox"
    child = pexpect.spawn(
        sys.executable,
        ["-c", INPROCESS, "run", "-it", "--rm", "--name", "inproc", image, "sh"],
        env=basin.env,
        timeout=15,
    )
    terms.spawned.append(child)
    child.expect(r"PID (\d+)")
    pid = int(child.match.group(1))
    expected = {"exit": 3, "error": 125, "sigint": 130, "sigterm": 143}[how]
    if how != "error":
        child.expect_exact(PROMPT)
    if how == "exit":
        child.sendline("exit 3")
    elif how == "sigint":
        os.kill(pid, signal.SIGINT)
    elif how == "sigterm":
        os.kill(pid, signal.SIGTERM)
    child.expect(r"RESULT code=(\d+) terminal=(\w+) handlers=(\w+)")
    assert child.match.groups() == (str(expected).encode(), b"True", b"True")
    finish(child)
    if how.startswith("sig"):
        # the client left; the container runs on, as after a detach
        assert status(basin, "inproc")["status"] == "running"


def test_fifo_names_are_checked(basin: Basin, tmp_path: Path) -> None:
    from basin import client
    from basin.paths import Paths

    paths = Paths(root=basin.root, run=basin.run_dir)
    basin.ok("run", "-d", "-it", "--name", "t", "busybox", "sh")
    target = tmp_path / "file"
    target.write_text("")
    os.symlink(target, basin.run_dir / "replies" / "evil.out")
    try:
        for attach in ({"stdout": "evil.out"}, {"stdin": "../control"}, {"stdout": "nope"}):
            with pytest.raises(BasinError, match="FIFO"):
                client.call(paths, {"op": "attach", "ref": "t", "attach": attach})
    finally:
        os.unlink(basin.run_dir / "replies" / "evil.out")
    assert target.read_text() == ""
    assert status(basin, "t")["status"] == "running"


def test_exec_failure_on_a_terminal(basin: Basin, terms: Terminals) -> None:
    for cmd, code in (("nosuchcmd", 127), ("/etc/passwd", 126)):
        child = terms.spawn("run", "-it", "--rm", "busybox", cmd)
        assert finish(child) == code
        text = child.before.decode()
        assert text.startswith("basin: exec:") and len(text.strip().splitlines()) == 1
    assert basin.ok("ps", "-q") == ""
    no_fifos_left(basin)


def test_interactive_client_stays_thin() -> None:
    code = (
        "import sys, basin.cli.run, basin.cli.attach, basin.cli.session;"
        "print([m for m in ('trio','prompt_toolkit','pyroute2','structlog') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
