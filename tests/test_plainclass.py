"""basin.plainclass stands in for dataclasses on the thin client's path: same behaviour for
the records that use it, and none of dataclasses' import cost."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from basin import plainclass
from basin.paths import Paths
from basin.records import State


@plainclass.dataclass
class Plain:
    name: str
    count: int = 0
    tags: list[str] = plainclass.field(default_factory=list)


@dataclasses.dataclass
class Real:
    name: str
    count: int = 0
    tags: list[str] = dataclasses.field(default_factory=list)


@plainclass.dataclass(frozen=True)
class Frozen:
    a: int
    b: str = "x"


def test_constructs_compares_and_prints_as_a_dataclass_does() -> None:
    p, r = Plain("a", tags=["t"]), Real("a", tags=["t"])
    assert (p.name, p.count, p.tags) == (r.name, r.count, r.tags)
    assert repr(p) == repr(r).replace("Real", "Plain")
    assert Plain("a") == Plain("a", 0, [])
    assert Plain("a") != Plain("b")
    assert Plain("a").tags is not Plain("a").tags  # a fresh default each time
    assert plainclass.asdict(p) == dataclasses.asdict(r)
    assert plainclass.asdict(p)["tags"] is not p.tags


def test_wrong_arguments_fail_as_they_would() -> None:
    with pytest.raises(TypeError):
        Plain()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Plain("a", nope=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Plain("a", 1, [], "extra")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Plain("a", name="b")  # type: ignore[misc]


def test_frozen_refuses_assignment_and_hashes() -> None:
    f = Frozen(1)
    with pytest.raises(AttributeError):
        f.a = 2  # type: ignore[misc]
    assert hash(f) == hash(Frozen(1, "x"))
    assert {Paths.from_env(): 1}[Paths.from_env()] == 1
    with pytest.raises(TypeError):
        hash(Plain("a"))


def test_records_round_trip() -> None:
    s = State(status="running", pid=7, network={"ip": "10.0.0.2"})
    again = State.from_json(plainclass.asdict(s))
    assert again == s
    assert State().limits_enforced is not State().limits_enforced


def test_ps_and_run_load_neither_dataclasses_nor_typing(tmp_path: object) -> None:
    code = (
        "import sys\n"
        "before = set(sys.modules)  # what site (.pth files) loaded is not ours\n"
        "from basin.cli.main import main\n"
        "main(['ps'])\n"
        "import basin.cli.run, basin.cli.logs, basin.cli.lifecycle, basin.cli.wait\n"
        "heavy = {'dataclasses', 'typing', 'secrets', 'subprocess', 'datetime'}\n"
        "print(sorted(heavy & (set(sys.modules) - before)))\n"
    )
    env = {**os.environ, "BASIN_ROOT": f"{tmp_path}/root", "BASIN_RUN": f"{tmp_path}/run"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"
