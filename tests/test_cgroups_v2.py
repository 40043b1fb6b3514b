"""The v2 backend against a plain directory laid out like cgroup2: the test writes the files the
kernel would provide (cgroup.controllers, memory.events...), and a small subclass stands in for
the two kernel behaviours a directory lacks: rmdir of a group with files in it, and EBUSY while
cgroup.procs lists a process. One test runs on a real cgroup2 host only."""

from __future__ import annotations

import errno
import os
import secrets
import select
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from basin.cgroups import Limits
from basin.errors import BasinError
from plugins.cgroups import _fs
from plugins.cgroups._fs import LimitError
from plugins.cgroups.layout import host_layout
from plugins.cgroups.v2 import SUPERVISOR_LEAF, CgroupV2, cpu_shares, cpu_weight

M = 1 << 20
ALL = "cpuset cpu io memory hugetlb pids rdma misc"


class FakeV2(CgroupV2):
    def _rmdir(self, path: Path) -> None:
        procs = path / "cgroup.procs"
        if procs.exists() and procs.read_text().strip():
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), str(path))
        for f in path.iterdir():
            if f.is_file():
                f.unlink()
        os.rmdir(path)


def tree(root: Path, svc_procs: str = "", controllers: str = ALL) -> FakeV2:
    """A cgroup2 root with the supervisor in /svc."""
    root.mkdir()
    (root / "cgroup.controllers").write_text(ALL + "\n")
    (root / "cgroup.subtree_control").write_text("cpu memory pids\n")
    (root / "cgroup.procs").write_text("1\n")
    svc = root / "svc"
    svc.mkdir()
    (svc / "cgroup.controllers").write_text(controllers + "\n")
    (svc / "cgroup.subtree_control").write_text("")
    (svc / "cgroup.procs").write_text(svc_procs)
    return FakeV2(root, "/svc")


def read(path: Path) -> str:
    return path.read_text().strip()


@pytest.fixture
def cg(tmp_path: Path) -> FakeV2:
    return tree(tmp_path / "cg")


def test_cpu_weight_matches_docker() -> None:
    assert cpu_weight(2) == 1
    assert cpu_weight(1024) == 39
    assert cpu_weight(262_144) == 10_000
    assert cpu_weight(1) == 1  # clamped like the kernel clamps shares
    assert cpu_weight(10**9) == 10_000


def test_limits_land_in_the_files(cg: FakeV2) -> None:
    cg.create(
        "c1",
        Limits(memory=64 * M, memory_swap=96 * M, cpu_quota=50_000, cpu_shares=512,
               cpuset_cpus="0-1", pids=10),
    )  # fmt: skip
    g = cg.path("c1")
    assert g == cg._parent / "basin-c1"
    assert read(g / "cpu.max") == "50000 100000"
    assert read(g / "cpu.weight") == str(cpu_weight(512))
    assert read(g / "memory.max") == str(64 * M)
    assert read(g / "memory.swap.max") == str(32 * M)  # v2 limits swap alone
    assert read(g / "cpuset.cpus") == "0-1"
    assert read(g / "pids.max") == "10"
    assert read(cg._parent / "cgroup.subtree_control") == "+cpu +cpuset +memory +pids"


def test_unlimited_values(cg: FakeV2) -> None:
    cg.create("c1", Limits(memory=64 * M, memory_swap=-1, cpu_quota=-1))
    g = cg.path("c1")
    assert read(g / "memory.swap.max") == "max"
    assert read(g / "cpu.max") == "max 100000"


def test_no_limits_writes_no_limit_files(cg: FakeV2) -> None:
    cg.create("c1", Limits())
    assert sorted(p.name for p in cg.path("c1").iterdir()) == []
    # memory and pids still go to the children, for OOM events and stats
    assert read(cg._parent / "cgroup.subtree_control") == "+memory +pids"


def test_enabled_controllers_are_not_written_again(cg: FakeV2) -> None:
    (cg._parent / "cgroup.subtree_control").write_text("cpu memory pids\n")
    cg.create("c1", Limits(cpu_quota=10_000))
    assert read(cg._parent / "cgroup.subtree_control") == "cpu memory pids"


def test_supervisor_processes_move_to_a_leaf(tmp_path: Path) -> None:
    cg = tree(tmp_path / "cg", svc_procs="4242\n")
    cg.create("c1", Limits(memory=64 * M))
    assert read(cg._parent / SUPERVISOR_LEAF / "cgroup.procs") == "4242"


def test_root_processes_never_move(tmp_path: Path) -> None:
    tree(tmp_path / "cg")
    cg = FakeV2(tmp_path / "cg", "/")
    cg.create("c1", Limits(memory=64 * M))
    assert not (tmp_path / "cg" / SUPERVISOR_LEAF).exists()
    assert (tmp_path / "cg" / "basin-c1").is_dir()


def test_a_supervisor_in_its_leaf_makes_groups_beside_it(tmp_path: Path) -> None:
    tree(tmp_path / "cg")
    cg = FakeV2(tmp_path / "cg", f"/svc/{SUPERVISOR_LEAF}")
    assert cg.path("c1") == tmp_path / "cg" / "svc" / "basin-c1"


def test_missing_controller_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    cg = tree(tmp_path / "cg", controllers="cpu memory pids")
    with pytest.raises(BasinError, match="cpuset controller is not available"):
        cg.create("c1", Limits(cpuset_cpus="0"))
    assert not cg.exists("c1")
    assert read(cg._parent / "cgroup.subtree_control") == ""


def test_swap_limit_needs_a_memory_limit(cg: FakeV2) -> None:
    with pytest.raises(BasinError, match="needs a memory limit"):
        cg.create("c1", Limits(memory_swap=64 * M))
    assert not cg.exists("c1")


def _failing_write(monkeypatch: pytest.MonkeyPatch, name: str, err: int) -> None:
    real = _fs.write

    def write(path: Path, value: str | int, what: str | None = None) -> None:
        if path.name == name:
            raise LimitError(what or name, str(value), OSError(err, os.strerror(err)))
        real(path, value, what)

    monkeypatch.setattr(_fs, "write", write)


def test_failed_write_leaves_nothing(cg: FakeV2, monkeypatch: pytest.MonkeyPatch) -> None:
    _failing_write(monkeypatch, "pids.max", errno.EINVAL)
    with pytest.raises(BasinError, match=r"cannot set pids.max to 10: Invalid argument"):
        cg.create("c1", Limits(memory=64 * M, cpu_quota=50_000, pids=10))
    assert not cg.exists("c1")


def test_missing_swap_accounting(cg: FakeV2, monkeypatch: pytest.MonkeyPatch) -> None:
    _failing_write(monkeypatch, "memory.swap.max", errno.EACCES)
    with pytest.raises(BasinError, match="lack swap accounting"):
        cg.create("c1", Limits(memory=64 * M, memory_swap=128 * M))
    assert not cg.exists("c1")


def test_create_twice_is_refused(cg: FakeV2) -> None:
    cg.create("c1", Limits())
    with pytest.raises(BasinError, match="cannot create cgroup"):
        cg.create("c1", Limits())


def test_add_writes_the_pid(cg: FakeV2) -> None:
    cg.create("c1", Limits())
    cg.add("c1", 777)
    assert read(cg.path("c1") / "cgroup.procs") == "777"


def test_oom_events_through_inotify(cg: FakeV2) -> None:
    cg.create("c1", Limits(memory=32 * M))
    assert cg.oom_fd("c1") is None  # no memory.events: no memory controller
    events = cg.path("c1") / "memory.events"
    events.write_text("low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n")
    fd = cg.oom_fd("c1")
    assert fd is not None
    try:
        assert select.select([fd], [], [], 0)[0] == []
        assert not cg.oom_killed("c1")
        events.write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
        assert select.select([fd], [], [], 2)[0] == [fd]
        assert os.read(fd, 4096)  # drains the inotify events
        assert cg.oom_killed("c1")
    finally:
        os.close(fd)


def test_stats(cg: FakeV2) -> None:
    cg.create("c1", Limits(memory=64 * M))
    g = cg.path("c1")
    (g / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
    (g / "memory.current").write_text(f"{5 * M}\n")
    (g / "pids.current").write_text("3\n")
    st = cg.stats("c1")
    assert (st.cpu_usage_ns, st.memory_usage, st.memory_limit, st.pids) == (
        1_500_000, 5 * M, 64 * M, 3
    )  # fmt: skip
    (g / "memory.max").write_text("max\n")
    assert cg.stats("c1").memory_limit is None


def test_stats_leave_out_inactive_page_cache(cg: FakeV2) -> None:
    cg.create("c1", Limits())
    g = cg.path("c1")
    (g / "memory.current").write_text(f"{5 * M}\n")
    (g / "memory.stat").write_text(f"anon {3 * M}\ninactive_file {2 * M}\nactive_file 0\n")
    assert cg.stats("c1").memory_usage == 3 * M


def test_cpu_shares_inverts_cpu_weight() -> None:
    for weight in range(1, 10_001):
        assert cpu_weight(cpu_shares(weight)) == weight
    assert cpu_shares(1) == 2 and cpu_shares(10_000) == 262_144


def test_enforced_reads_back_what_the_files_hold(cg: FakeV2) -> None:
    cg.create(
        "c1",
        Limits(memory=64 * M, memory_swap=96 * M, cpu_quota=50_000, cpu_shares=1024,
               cpuset_cpus="0-1", pids=10),
    )  # fmt: skip
    (cg.path("c1") / "cpuset.cpus.effective").write_text("1\n")  # the parent allows only 1
    assert cg.enforced("c1") == Limits(
        memory=64 * M, memory_swap=96 * M, cpu_quota=50_000, cpu_period=100_000,
        cpu_shares=cpu_shares(cpu_weight(1024)), cpuset_cpus="1", pids=10,
    )  # fmt: skip
    cg.create("c2", Limits())
    assert cg.enforced("c2") == Limits()


def test_check_names_the_limit_and_touches_nothing(tmp_path: Path) -> None:
    cg = tree(tmp_path / "cg", controllers="cpu memory")
    with pytest.raises(BasinError, match=r"cannot enforce the pids limit: the pids controller"):
        cg.check(Limits(pids=10))
    cg.check(Limits(memory=64 * M, cpu_quota=10_000))
    assert read(cg._parent / "cgroup.subtree_control") == ""
    assert [p.name for p in cg._parent.iterdir() if p.is_dir()] == []


def test_kill_uses_cgroup_kill(cg: FakeV2) -> None:
    cg.create("c1", Limits())
    (cg.path("c1") / "cgroup.kill").write_text("")
    cg.kill("c1")
    assert read(cg.path("c1") / "cgroup.kill") == "1"


def test_remove_retries_while_busy(cg: FakeV2) -> None:
    cg.create("c1", Limits(pids=5))
    cg.add("c1", 777)
    # the "kernel" lets the group go once the task is gone
    threading.Timer(0.3, (cg.path("c1") / "cgroup.procs").write_text, [""]).start()
    cg.remove("c1")
    assert not cg.exists("c1")
    cg.remove("c1")  # idempotent


def test_remove_gives_up(cg: FakeV2, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_fs, "REMOVE_TIMEOUT", 0.1)
    cg.create("c1", Limits())
    cg.add("c1", 777)
    with pytest.raises(BasinError, match="Device or resource busy"):
        cg.remove("c1")
    (cg.path("c1") / "cgroup.procs").write_text("")
    cg.remove("c1")


@pytest.mark.skipif(host_layout() != "v2", reason="needs a pure cgroup2 host; this one is not")
def test_real_cgroup2() -> None:
    cg = CgroupV2()
    cid = f"t{os.getpid()}-{secrets.token_hex(3)}"
    cg.create(cid, Limits(memory=32 * M, pids=10))
    p = None
    try:
        gate = "import os, sys; os.read(0, 1); os.execvp(sys.argv[1], sys.argv[1:])"
        hog = "chunks = []\nwhile True: chunks.append(b'x' * (1 << 20))"
        p = subprocess.Popen([sys.executable, "-c", gate, sys.executable, "-c", hog],
                             stdin=subprocess.PIPE)  # fmt: skip
        cg.add(cid, p.pid)
        fd = cg.oom_fd(cid)
        assert fd is not None
        try:
            assert p.stdin is not None
            p.stdin.write(b"g")
            p.stdin.close()
            assert select.select([fd], [], [], 20)[0] == [fd]
            assert p.wait(timeout=10) == -9
            assert cg.oom_killed(cid)
        finally:
            os.close(fd)
    finally:
        if p is not None and p.poll() is None:
            cg.kill(cid)
            p.wait()
        cg.remove(cid)
