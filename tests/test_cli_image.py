"""`basin image ...` and `basin images` against a temporary BASIN_ROOT."""

from __future__ import annotations

import io
import json
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from basin.cli.image import human_age, human_size, image_main, images_main


@pytest.fixture(autouse=True)
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "root"
    monkeypatch.setenv("BASIN_ROOT", str(root))
    monkeypatch.setenv("BASIN_RUN", str(tmp_path / "run"))
    return root


def make_tar(path: Path, size: int = 1234) -> Path:
    with tarfile.open(path, "w") as tf:
        info = tarfile.TarInfo("bin/thing")
        info.size = size
        tf.addfile(info, io.BytesIO(b"x" * size))
    return path


def test_import_list_rm(tmp_path: Path, env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tar = make_tar(tmp_path / "busybox.tar")
    assert image_main(["import", str(tar)]) == 0
    assert image_main(["import", str(tar), "a-much-longer-name"]) == 0
    assert capsys.readouterr().out.split() == ["busybox", "a-much-longer-name"]

    assert images_main([]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "SIZE", "CREATED"]
    assert lines[1].startswith("a-much-longer-name   1.23kB   ")
    assert lines[2].startswith("busybox              1.23kB   ")
    assert lines[0].index("SIZE") == lines[1].index("1.23kB")
    assert lines[0].index("CREATED") == lines[2].index("Less than a second ago")

    assert image_main(["ls", "-q"]) == 0
    assert capsys.readouterr().out == "a-much-longer-name\nbusybox\n"

    assert images_main(["--format", "json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["name"] for r in records] == ["a-much-longer-name", "busybox"]
    assert records[1]["size"] == 1234
    assert records[1]["rootfs"] == str(env / "images" / "busybox" / "rootfs")

    assert image_main(["rm", "busybox", "a-much-longer-name"]) == 0
    assert capsys.readouterr().out.split() == ["busybox", "a-much-longer-name"]
    assert images_main(["-q"]) == 0
    assert capsys.readouterr().out == ""


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.startswith("basin: ") and err.count("\n") == 1, err
    return err


def test_errors_are_one_line_125(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tar = make_tar(tmp_path / "dup.tar")
    assert image_main(["import", str(tar)]) == 0
    capsys.readouterr()
    assert image_main(["import", str(tar)]) == 125
    assert "already exists" in one_line_error(capsys)
    assert image_main(["import", str(tmp_path / "missing.tar")]) == 125
    assert "no such file" in one_line_error(capsys)
    assert image_main(["import", str(tar), "bad/name"]) == 125
    assert "invalid image name" in one_line_error(capsys)
    # rm goes on past a missing name and fails at the end
    assert image_main(["rm", "nope", "dup"]) == 125
    out = capsys.readouterr()
    assert out.err == "basin: no such image: nope\n" and out.out == "dup\n"


@pytest.mark.parametrize(
    "argv",
    [[], ["frobnicate"], ["import"], ["rm"], ["ls", "--bogus"], ["ls", "--format", "yaml"]],
)
def test_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert image_main(argv) == 125
    assert "basin image" in one_line_error(capsys)


def test_images_usage_error_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert images_main(["extra"]) == 125
    assert "basin images" in one_line_error(capsys)
    assert images_main(["--help"]) == 0
    assert "usage: basin images" in capsys.readouterr().out


def test_empty_listing(capsys: pytest.CaptureFixture[str]) -> None:
    assert images_main([]) == 0
    assert capsys.readouterr().out.split() == ["NAME", "SIZE", "CREATED"]


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0B"),
        (999, "999B"),
        (1000, "1kB"),
        (1234, "1.23kB"),
        (999_999, "1MB"),
        (1_982_415, "1.98MB"),
        (72_800_000, "72.8MB"),
        (5 * 10**12, "5TB"),
    ],
)
def test_human_size(size: int, text: str) -> None:
    assert human_size(size) == text


@pytest.mark.parametrize(
    ("ago", "text"),
    [
        (timedelta(0), "Less than a second ago"),
        (timedelta(seconds=30), "30 seconds ago"),
        (timedelta(seconds=90), "About a minute ago"),
        (timedelta(minutes=5), "5 minutes ago"),
        (timedelta(minutes=65), "About an hour ago"),
        (timedelta(hours=5), "5 hours ago"),
        (timedelta(days=3), "3 days ago"),
        (timedelta(days=21), "3 weeks ago"),
        (timedelta(days=90), "3 months ago"),
        (timedelta(days=1000), "2 years ago"),
    ],
)
def test_human_age(ago: timedelta, text: str) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    created = (now - ago).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert human_age(created, now) == text
