"""Container logs: rotation by --log-opt, reading across rotated files, long lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import Basin


def _log_files(basin: Basin, cid: str) -> list[Path]:
    d = basin.root / "containers" / cid
    return sorted(p for p in d.iterdir() if p.name.startswith(f"{cid}-json.log"))


def _wait_exited(basin: Basin, name: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while basin.ok("inspect", "--format", "{{.State.Status}}", name).strip() == "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_rotation_keeps_max_file_files_and_logs_reads_them_in_order(basin: Basin) -> None:
    cid = basin.ok(
        "run",
        "-d",
        "--name",
        "chatty",
        "--log-opt",
        "max-size=10k",
        "--log-opt",
        "max-file=3",
        "busybox",
        "sh",
        "-c",
        'i=1; while [ $i -le 2000 ]; do echo "line $i"; i=$((i+1)); done',
    ).strip()
    _wait_exited(basin, "chatty")
    files = _log_files(basin, cid)
    assert [p.name for p in files] == [f"{cid}-json.log", f"{cid}-json.log.1", f"{cid}-json.log.2"]
    for p in files:
        assert p.stat().st_size <= 10 * 1024
    retained = sum(len(p.read_text().splitlines()) for p in files)
    out = basin.ok("logs", "chatty").splitlines()
    numbers = [int(line.split()[1]) for line in out]
    # complete for what the retained files hold, in order, ending at the last line
    assert len(numbers) == retained
    assert numbers == list(range(2001 - retained, 2001))
    assert retained < 2000  # the oldest were really dropped
    assert basin.ok("logs", "--tail", "3", "chatty") == "line 1998\nline 1999\nline 2000\n"
    cfg = json.loads((basin.root / "containers" / cid / "config.json").read_text())
    assert cfg["log_opts"] == {"max-size": "10k", "max-file": "3"}


def test_logs_follow_continues_across_rotations(basin: Basin) -> None:
    basin.ok(
        "run",
        "-d",
        "--name",
        "slow",
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=5",
        "busybox",
        "sh",
        "-c",
        'i=1; while [ $i -le 300 ]; do echo "line $i"; [ $((i % 10)) = 0 ] && sleep 0.05;'
        " i=$((i+1)); done",
    )
    out = basin.ok("logs", "-f", "slow", timeout=60).splitlines()
    assert out == [f"line {i}" for i in range(1, 301)]
    cid = json.loads(basin.ok("inspect", "slow"))[0]["Id"]
    assert len(_log_files(basin, cid)) == 5  # it did rotate (300 records are ~19 KiB)


def test_without_log_opts_nothing_rotates(basin: Basin) -> None:
    cid = basin.ok(
        "run",
        "--name",
        "plain",
        "busybox",
        "sh",
        "-c",
        'i=1; while [ $i -le 500 ]; do echo "line $i"; i=$((i+1)); done',
    )
    cid = json.loads(basin.ok("inspect", "plain"))[0]["Id"]
    assert len(_log_files(basin, cid)) == 1
    assert len(basin.ok("logs", "plain").splitlines()) == 500


def test_a_40k_line_round_trips_byte_exactly(basin: Basin, tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    vol.mkdir()
    # every byte value but newline, UTF-8 or not, then the newline: one 40 KiB line
    body = bytes(b for b in os.urandom(60 * 1024) if b != 0x0A)[: 40 * 1024 - 1] + b"\n"
    assert len(body) == 40 * 1024
    (vol / "big").write_bytes(body)
    basin.ok("run", "-d", "--name", "big", "-v", f"{vol}:/data:ro", "busybox", "cat", "/data/big")
    _wait_exited(basin, "big")
    out = subprocess.run(
        [sys.executable, "-m", "basin", "logs", "big"],
        env=basin.env,
        capture_output=True,
        check=True,
    ).stdout
    assert out == body
    cid = json.loads(basin.ok("inspect", "big"))[0]["Id"]
    recs = [json.loads(line) for line in _log_files(basin, cid)[0].read_text().splitlines()]
    # split as docker does: 16 KiB partial records without a newline, then the rest
    sizes = [len(r["log"].encode("utf-8", "surrogateescape")) for r in recs]
    assert sizes == [16384, 16384, 8192]
    assert [r["log"].endswith("\n") for r in recs] == [False, False, True]


def test_bad_log_opts_fail_before_anything_is_made(basin: Basin) -> None:
    cases = [
        (["--log-opt", "max-size=lots"], "max-size"),
        (["--log-opt", "colour=blue"], "colour"),
        (["--log-opt", "max-file=3"], "max-size"),
        (["--log-opt", "max-size=1k", "--log-opt", "max-file=0"], "max-file"),
        (["--log-opt", "max-size"], "KEY=VALUE"),
    ]
    for flags, word in cases:
        res = basin("run", *flags, "busybox", "true")
        assert res.returncode == 125, (flags, res.stderr)
        assert res.stderr.startswith("basin: ") and word in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
    assert basin.ok("ps", "-q") == ""
