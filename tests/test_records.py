"""Records on disk: atomic writes, and a corrupt record never takes `ps` down."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

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
