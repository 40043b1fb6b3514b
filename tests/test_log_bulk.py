"""The bulk paths of the json-file log: plain-text output is encoded and read back in a few
passes over whole chunks; the bytes must be exactly what the line-by-line path makes."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from basin import logfile
from basin.cli.output import LogFollower
from tests.conftest import Basin

WHEN = "2026-12-04T10:00:00.123456789Z"


def _one_by_one(stream: str, data: bytes) -> bytes:
    lines, rest = logfile.split_records(data)
    assert not rest
    return b"".join(logfile.encode(stream, line, WHEN) for line in lines)


@pytest.mark.parametrize(
    "data",
    [b"y\n" * 5000, b"hello world\n", b"a\n\n\nb\n", b"~!#$%&'()*+,-./09:;<=>?@AZ[]^_`az{|}\n"],
)
def test_plain_lines_encode_in_bulk_as_json_dumps_does(data: bytes) -> None:
    assert logfile.encode_lines("stdout", data, WHEN) == _one_by_one("stdout", data)
    assert logfile.plain_payload(_one_by_one("stderr", data)) == ("stderr", data)


@pytest.mark.parametrize(
    "data",
    [b'a "quote"\n', b"back\\slash\n", b"tab\there\n", b"\xc3\xa9t\xc3\xa9\n", b"del\x7f\n",
     b"x" * (logfile.MAX_RECORD + 1) + b"\n"],
)  # fmt: skip
def test_lines_that_need_escaping_or_splitting_take_the_slow_path(data: bytes) -> None:
    assert logfile.encode_lines("stdout", data, WHEN) is None
    assert logfile.plain_payload(_one_by_one("stdout", data)) is None


def test_a_block_of_two_streams_or_a_partial_record_is_decoded_record_by_record() -> None:
    mixed = _one_by_one("stdout", b"a\n") + _one_by_one("stderr", b"b\n")
    assert logfile.plain_payload(mixed) is None
    partial = logfile.encode("stdout", b"prompt> ", WHEN)
    assert logfile.plain_payload(partial) is None


def test_follower_writes_each_stream_in_order(capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    records = (
        _one_by_one("stdout", b"one\ntwo\n")
        + logfile.encode("stderr", "é\n".encode(), WHEN)
        + _one_by_one("stdout", b"three\n")
    )
    follower = LogFollower.__new__(LogFollower)
    follower.timestamps = False
    follower._buf = b""
    follower.feed(records[:7])  # a torn record waits for the rest
    follower.feed(records[7:])
    sys.stdout.flush()
    sys.stderr.flush()
    out, err = capfdbinary.readouterr()
    assert out == b"one\ntwo\nthree\n"
    assert err == "é\n".encode()


def test_megabytes_of_output_round_trip_through_wait_and_logs(basin: Basin) -> None:
    script = "seq 300000 | base64; yes | head -c 3000000; printf 'no newline'"
    cid = basin.ok("run", "-d", "busybox", "sh", "-c", script).strip()
    assert basin.ok("wait", cid).strip() == "0"
    host = subprocess.run(["busybox", "sh", "-c", script], capture_output=True, check=True).stdout
    logs = subprocess.run(
        [sys.executable, "-m", "basin", "logs", cid],
        env=basin.env,
        capture_output=True,
        check=True,
    ).stdout
    assert len(logs) == len(host)
    assert hashlib.sha256(logs).digest() == hashlib.sha256(host).digest()
    basin.ok("rm", cid)


def test_wait_prints_the_exit_code_and_refuses_unknown_names(basin: Basin) -> None:
    basin.ok("run", "-d", "--name", "seven", "busybox", "sh", "-c", "exit 7")
    assert basin.ok("wait", "seven").strip() == "7"
    res = basin("wait", "nosuch")
    assert res.returncode != 0
    assert res.stderr.strip() == "basin: no such container: nosuch"
    basin.ok("rm", "seven")
