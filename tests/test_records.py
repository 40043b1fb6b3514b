"""Records on disk: atomic writes, and a corrupt record never takes `ps` down."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from basin import records
from basin.paths import Paths
from basin.store import CorruptRecord, read_json, write_json
from tests.conftest import PYTHON_CLI, Basin


def test_write_json_is_atomic_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    write_json(target, {"a": 1})
    write_json(target, {"a": 2})
    assert read_json(target) == {"a": 2}
    assert os.listdir(tmp_path) == ["state.json"]


def test_state_is_not_fsynced_but_a_new_record_is_made_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    paths = Paths(root=tmp_path, run=tmp_path / "run")
    ctr = records.Container(id="a" * 64, name="one", config={"name": "one"})
    paths.container(ctr.id).mkdir(parents=True)
    records.save_config(paths, ctr, durable=False)
    records.save_state(paths, ctr)
    assert synced == []  # what the supervisor does on its event loop
    records.sync_new(paths, ctr.id)  # ... and in a worker thread meanwhile
    d = paths.container(ctr.id)
    assert synced == [str(d / "config.json"), str(d / "state.json")]
    ctr.state.status = records.RUNNING
    records.save_state(paths, ctr)
    assert len(synced) == 2
    assert records.load(paths, ctr.id).state.status == records.RUNNING
    (d / "state.json").unlink()
    records.sync_new(paths, ctr.id)  # a record removed meanwhile is no error
    assert synced[2:] == [str(d / "config.json")]
    write_json(d / "other.json", {})  # everything else stays durable by default
    assert synced[3].endswith(".tmp")


def test_read_json_reports_a_torn_record(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text('{"status": "runn')
    try:
        read_json(target)
    except CorruptRecord as e:
        assert "state.json" in str(e)
    else:
        raise AssertionError("a torn record must not parse")


def test_resolve_by_name_id_and_unique_prefix() -> None:
    a = records.Container(id="ab" + "0" * 62, name="one", config={})
    b = records.Container(id="ac" + "0" * 62, name="two", config={})
    assert records.resolve([a, b], "two") is b
    assert records.resolve([a, b], a.id) is a
    assert records.resolve([a, b], "ab") is a
    for ref, text in (("a", "ambiguous"), ("zz", "no such container"), ("", "empty")):
        try:
            records.resolve([a, b], ref)
        except Exception as e:
            assert text in str(e)
        else:
            raise AssertionError(ref)


def test_ps_skips_a_corrupt_record_with_one_warning(basin: Basin) -> None:
    basin.ok("run", "--name", "good", "busybox", "true")
    paths = Paths(root=basin.root, run=basin.run_dir)
    bad = paths.containers / ("f" * 64)
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    # the Python CLI reads the records on disk (as `basin ps` does with no supervisor)
    res = subprocess.run([*PYTHON_CLI, "ps"], env=basin.env, capture_output=True, text=True)
    assert res.returncode == 0
    assert "good" in res.stdout and "f" * 12 not in res.stdout
    assert res.stderr.count("skipping unreadable container record") == 1
    # the supervisor answers from the records it holds: the bad one was never among them
    rows = [json.loads(line) for line in basin.ok("ps", "--format", "json").splitlines()]
    assert [r["name"] for r in rows] == ["good"]
    # the supervisor, restarted, loads around it too and still serves
    basin.ok("supervisor", "stop")
    assert basin.ok("run", "--rm", "busybox", "echo", "fine") == "fine\n"
    for p in bad.iterdir():
        p.unlink()
    bad.rmdir()
