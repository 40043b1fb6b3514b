"""Size-rotated files and reading them back in order, also while the writer rotates."""

from __future__ import annotations

from pathlib import Path

import pytest

from basin.rotation import ChainReader, RotatingFile, numbered


def _line(i: int) -> bytes:
    return f"line {i:05d}\n".encode()  # 11 bytes


def _numbers(data: bytes) -> list[int]:
    return [int(line.split()[1]) for line in data.splitlines()]


def test_rotates_between_lines_and_keeps_max_files(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    f = RotatingFile(path, max_size=100, max_files=3)
    for i in range(100):
        f.write(_line(i))
    f.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["x.log", "x.log.1", "x.log.2"]
    for n in range(3):
        data = numbered(path, n).read_bytes()
        assert len(data) <= 100 and data.endswith(b"\n")  # whole lines only
    got = _numbers(ChainReader(path).read_existing())
    assert got == list(range(got[0], 100)) and got[0] > 0  # contiguous, oldest dropped


def test_write_lines_batches_but_respects_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    f = RotatingFile(path, max_size=50, max_files=10)
    f.write_lines([_line(i) for i in range(20)])
    f.close()
    assert all(len(p.read_bytes()) <= 50 for p in tmp_path.iterdir())
    assert _numbers(ChainReader(path).read_existing()) == list(range(20))


def test_a_line_longer_than_max_size_goes_in_whole(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    f = RotatingFile(path, max_size=10, max_files=2)
    f.write(b"a" * 30 + b"\n")
    f.write(b"b" * 30 + b"\n")
    f.close()
    assert path.read_bytes() == b"b" * 30 + b"\n"
    assert numbered(path, 1).read_bytes() == b"a" * 30 + b"\n"


def test_max_files_one_drops_old_content(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    f = RotatingFile(path, max_size=30, max_files=1)
    for i in range(10):
        f.write(_line(i))
    f.close()
    assert [p.name for p in tmp_path.iterdir()] == ["x.log"]
    assert _numbers(path.read_bytes()) == [8, 9]  # 30 bytes hold two 11-byte lines


def test_reopen_appends_and_counts_the_existing_size(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_bytes(b"x" * 95)
    f = RotatingFile(path, max_size=100, max_files=2)
    f.write(_line(1))
    f.close()
    assert numbered(path, 1).read_bytes() == b"x" * 95
    assert path.read_bytes() == _line(1)


@pytest.mark.parametrize("lines_between_reads", [1, 7, 25])
def test_follow_across_rotations_loses_and_repeats_nothing(
    tmp_path: Path, lines_between_reads: int
) -> None:
    # 25 lines between reads = 2-3 rotations: still inside the retained files (max_files 5)
    path = tmp_path / "x.log"
    f = RotatingFile(path, max_size=120, max_files=5)
    reader = ChainReader(path)
    got = _numbers(reader.read_existing())
    i = 0
    for _ in range(40):
        for _ in range(lines_between_reads):
            f.write(_line(i))
            i += 1
        got += _numbers(reader.read_new())
    f.close()
    reader.close()
    assert got == list(range(i))


def test_reader_started_before_the_file_exists(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    reader = ChainReader(path)
    assert reader.read_existing() == b""
    assert reader.read_new() == b""
    f = RotatingFile(path, max_size=40, max_files=3)
    for i in range(6):
        f.write(_line(i))
    f.close()
    assert _numbers(reader.read_new()) == list(range(6))
    reader.close()


def test_snapshot_skips_a_gap_only_at_the_end(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    numbered(path, 2).write_bytes(_line(0))
    numbered(path, 1).write_bytes(_line(1))
    # no current file yet (between a rotation's rename and the new file's creation)
    assert _numbers(ChainReader(path).read_existing()) == [0, 1]
