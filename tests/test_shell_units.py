"""The shell's pure parts, without a terminal: completion, line parsing, the toolbar, the
background follower against a log file written by the test."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from basin import logfile, records
from basin.errors import BasinError
from basin.paths import Paths
from basin.shell import catalog, commands
from basin.shell.completion import ShellCompleter, split_words, suggest
from basin.shell.jobs import FollowSpec, JobTable, Lines, follow, record_lines
from basin.shell.snapshot import ContainerName, Snapshot, network_names
from basin.shell.toolbar import toolbar

SNAP = Snapshot(
    containers=(
        ContainerName("web", True, "busybox", "running"),
        ContainerName("worker", False, "busybox", "exited (0)"),
        ContainerName("db", True, "alpine", "running"),
    ),
    images=("busybox", "alpine"),
    networks=("basin0", "backend"),
    supervisor_pid=4711,
)


def texts(text: str, jobs: list[tuple[int, str]] | None = None) -> list[str]:
    return [s.text for s in suggest(text, SNAP, jobs or [])]


def test_split_words() -> None:
    assert split_words("") == ([], "")
    assert split_words("st") == ([], "st")
    assert split_words("stop ") == (["stop"], "")
    assert split_words("stop  we") == (["stop"], "we")


def test_first_word_is_a_command_or_builtin() -> None:
    assert texts("st") == ["stop", "stats"]
    assert set(texts("")) >= {"run", "ps", "logs", "stop", "rm", "images", "help", "exit", "jobs"}
    assert "init" not in texts("")  # internal verb
    assert texts("basin st") == ["stop", "stats"]  # typed out of habit
    got = suggest("lo", SNAP)
    assert [(s.text, s.start, s.meta) for s in got] == [
        ("logs", -2, "Print the logs of a container")
    ]


def test_stop_and_attach_offer_running_containers_only() -> None:
    assert texts("stop ") == ["web", "db"]
    assert texts("stop w") == ["web"]
    assert texts("stop -t 5 w") == ["web"]  # -t's value is skipped
    assert texts("stop web ") == ["db"]  # already named
    assert [(s.text, s.start) for s in suggest("stop we", SNAP)] == [("web", -2)]


def test_rm_and_logs_offer_every_container() -> None:
    assert texts("rm ") == ["web", "worker", "db"]
    assert texts("rm -f wo") == ["worker"]
    assert texts("logs -n 10 w") == ["web", "worker"]
    metas = {s.text: s.meta for s in suggest("logs ", SNAP)}
    assert metas["worker"] == "exited (0)"


def test_flags_come_from_the_verbs_option_lists() -> None:
    assert set(texts("ps -")) == {
        "-a",
        "-q",
        "--all",
        "--quiet",
        "--format",
        "--no-trunc",
        "-h",
        "--help",
    }
    assert texts("rm --f") == ["--force"]
    assert texts("stop --t") == ["--time", "--timeout"]
    assert texts("logs --fo") == ["--follow"]
    run = texts("run --")
    assert "--name" in run and "--network" in run and "--rm" in run
    # the seed's single-dash long names only once the user types one
    assert "-name" not in texts("run -")
    assert texts("run -na") == ["-name"]


def test_run_offers_images_then_nothing_for_the_command() -> None:
    assert texts("run ") == ["busybox", "alpine"]
    assert texts("run -d --name x b") == ["busybox"]
    assert texts("run busybox ") == []
    assert texts("run busybox sh -") == []  # the command's own flags are not basin's
    assert texts("run --name ") == []  # a name is the user's to invent


def test_network_names_after_network_flags() -> None:
    assert texts("run --network ") == ["none", "host", "basin0", "backend"]
    assert texts("run --network b") == ["basin0", "backend"]
    assert texts("run -d --net bas") == ["basin0"]
    got = suggest("run --network=back", SNAP)
    assert [(s.text, s.start) for s in got] == [("backend", -4)]
    # after the network's value, the image again
    assert texts("run --network basin0 busy") == ["busybox"]


def test_subcommands_and_their_arguments() -> None:
    assert texts("image ") == ["import", "ls", "rm"]
    assert texts("image rm a") == ["alpine"]
    assert texts("network rm b") == ["basin0", "backend"]
    assert texts("network inspect bas") == ["basin0"]


def test_help_and_kill() -> None:
    assert texts("help lo") == ["logs"]
    assert texts("help logs ") == []
    assert texts("kill %", [(1, "logs -f web"), (3, "logs -f db")]) == ["%1", "%3"]
    assert texts("kill ", []) == []


def test_unknown_verb_completes_nothing() -> None:
    assert texts("frobnicate ") == []
    assert texts("frobnicate -") == []


def test_flags_of_a_verb_whose_module_is_missing() -> None:
    # a verb named in the dispatcher but not importable must not break completion
    assert catalog.flags("no-such-verb") == ()


def test_completer_adapter_reads_the_current_snapshot() -> None:
    from prompt_toolkit.completion import CompleteEvent
    from prompt_toolkit.document import Document

    current = [Snapshot()]
    comp = ShellCompleter(lambda: current[0])
    assert list(comp.get_completions(Document("stop "), CompleteEvent())) == []
    current[0] = SNAP
    got = list(comp.get_completions(Document("stop d"), CompleteEvent()))
    assert [(c.text, c.start_position) for c in got] == [("db", -1)]


def test_parse_line() -> None:
    assert commands.parse_line("run -d --name web busybox httpd -f").argv == [
        "run",
        "-d",
        "--name",
        "web",
        "busybox",
        "httpd",
        "-f",
    ]
    assert commands.parse_line("logs -f web &") == commands.Line(["logs", "-f", "web"], True)
    assert commands.parse_line("logs -f web&") == commands.Line(["logs", "-f", "web"], True)
    assert commands.parse_line("run busybox sh -c 'echo a b'").argv[-1] == "echo a b"
    assert commands.parse_line("basin ps").argv == ["ps"]
    assert commands.parse_line("quit").argv == ["exit"]
    assert commands.parse_line("   ").argv == []
    with pytest.raises(BasinError, match="closing quotation"):
        commands.parse_line("run busybox echo 'x")


def test_job_number() -> None:
    assert commands.job_number("%2") == 2
    for bad in ("2", "%", "%x", "web"):
        with pytest.raises(BasinError, match="not a job"):
            commands.job_number(bad)


def test_toolbar() -> None:
    def plain(ft: object) -> str:
        return "".join(t for _, t in ft)  # type: ignore[attr-defined]

    up = plain(toolbar(SNAP, followers=2, last_code=125))
    assert "supervisor: up (pid 4711)" in up
    assert "containers: 2 running / 3 total" in up
    assert "jobs: 2" in up and "last exit: 125" in up
    down = plain(toolbar(Snapshot()))
    assert "supervisor: down" in down and "0 running / 0 total" in down
    assert "jobs" not in down and "last exit" not in down


def test_network_names_read_from_records(tmp_path: Path) -> None:
    paths = Paths(tmp_path / "state", tmp_path / "state-run")
    paths.networks.mkdir(parents=True)
    (paths.networks / "b.json").write_text(json.dumps({"name": "basin0", "subnet": "x"}))
    (paths.networks / "a.json").write_text(json.dumps({"name": "alpha"}))
    (paths.networks / "torn.json").write_text('{"name": ')
    (paths.networks / ".lock").write_text("")
    assert network_names(paths) == ["alpha", "basin0"]


def test_record_lines_make_terminal_bytes_harmless() -> None:
    rec = {"log": "a\x1b[2Jb\r\n", "stream": "stdout", "time": "T"}
    assert record_lines(rec, False) == [("stdout", "a?[2Jb")]
    rec = {"log": "one\ntwo\n", "stream": "stderr", "time": "T"}
    assert record_lines(rec, True) == [("stderr", "T one"), ("stderr", "T two")]


# --- the background follower against a real file ------------------------------------------


def _fake_container(paths: Paths, cid: str, running: bool) -> Path:
    d = paths.container(cid)
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps({"name": "web", "image": "busybox"}))
    pid = os.getpid()  # a live process stands in for the container's
    state = {
        "status": "running" if running else "exited",
        "pid": pid,
        "start_ticks": records.start_ticks(pid),
        "exit_code": None if running else 0,
    }
    (d / "state.json").write_text(json.dumps(state))
    return paths.container_log(cid)


def _append(log: Path, text: str, stream: str = "stdout") -> None:
    with open(log, "ab") as f:
        f.write(logfile.encode(stream, text.encode(), logfile.timestamp()))


def test_follower_prints_tail_then_new_lines_and_ends_with_its_container(tmp_path: Path) -> None:
    paths = Paths(tmp_path / "state", tmp_path / "state-run")
    cid = "c" * 64
    log = _fake_container(paths, cid, running=True)
    for i in range(5):
        _append(log, f"old{i}\n")
    got: Lines = []

    async def scenario() -> None:
        task = asyncio.create_task(
            follow(paths, FollowSpec(cid, "web", tail=2), lambda name, lines: got.extend(lines))
        )
        await asyncio.sleep(0.3)
        assert got == [("stdout", "old3"), ("stdout", "old4")]
        _append(log, "new\n")
        _append(log, "oops\n", "stderr")
        await asyncio.sleep(0.5)
        assert got[2:] == [("stdout", "new"), ("stderr", "oops")]
        assert not task.done()
        # the last words, then the container ends: the follower prints them and stops
        _append(log, "last\n")
        _fake_container(paths, cid, running=False)
        await asyncio.wait_for(task, 3)
        assert got[-1] == ("stdout", "last")

    asyncio.run(scenario())


def test_job_table_numbers_kills_and_reports(tmp_path: Path) -> None:
    notes: list[str] = []

    async def forever() -> None:
        await asyncio.sleep(3600)

    async def quick() -> None:
        await asyncio.sleep(0)

    async def scenario() -> None:
        table = JobTable(notes.append, lambda: None)
        a = table.start("logs -f a", forever())
        b = table.start("logs -f b", forever())
        assert (a.number, b.number) == (1, 2)
        assert table.listing() == [(1, "logs -f a"), (2, "logs -f b")]
        killed = await table.kill(1)
        assert killed is a and a.task is not None and a.task.cancelled()
        assert await table.kill(1) is None
        c = table.start("logs -f c", quick())
        assert c.number == 3  # one past the highest in use, as sh numbers jobs
        await asyncio.sleep(0.05)
        assert notes == ["[3]  done  logs -f c"]
        assert table.listing() == [(2, "logs -f b")]
        await table.close()
        assert b.task is not None and b.task.cancelled() and len(table) == 0

    asyncio.run(scenario())
