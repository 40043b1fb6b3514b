"""Parsing of the resource-limit flags: pure, no cgroup is touched."""

from __future__ import annotations

import pytest

from basin.cgroups import Limits
from basin.errors import EXIT_BASIN, BasinError
from basin.limits import limits_from_options, parse_cpu_list, parse_size

M = 1 << 20


def lim(**kw: str) -> Limits:
    """Parse on a pretend host with 2 CPUs, 0 and 1 online."""
    return limits_from_options(**kw, cpu_count=2, online={0, 1})


def refused(match: str, **kw: str) -> None:
    with pytest.raises(BasinError, match=match) as info:
        lim(**kw)
    assert info.value.code == EXIT_BASIN
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1024", 1024),
        ("512b", 512),
        ("512B", 512),
        ("32k", 32 << 10),
        ("32m", 32 * M),
        ("32M", 32 * M),
        ("32mb", 32 * M),
        ("1g", 1 << 30),
        ("1G", 1 << 30),
        ("1.5g", 3 << 29),
        (" 64m ", 64 * M),
        ("0", 0),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    "text", ["", "-1", "-32m", "m", "32x", "abc", "3 2m", "1e9", "32mm", "½m", "٣m"]
)
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(BasinError, match="invalid"):
        parse_size(text)


def test_parse_size_refuses_absurd() -> None:
    with pytest.raises(BasinError, match="too large"):
        parse_size("99999999999g")


def test_nothing_given_is_no_limits() -> None:
    assert lim() == Limits()


def test_memory() -> None:
    assert lim(memory="32m").memory == 32 * M
    assert lim(memory="6m").memory == 6 * M
    refused("below the minimum of 6m", memory="5m")
    refused("below the minimum", memory="0")
    refused("invalid --memory", memory="-32m")
    refused("invalid --memory", memory="lots")


def test_memory_swap() -> None:
    assert lim(memory="32m", memory_swap="64m").memory_swap == 64 * M
    assert lim(memory="32m", memory_swap="32m").memory_swap == 32 * M  # no swap at all
    assert lim(memory="32m", memory_swap="-1").memory_swap == -1
    assert lim(memory_swap="-1").memory_swap == -1
    assert lim(memory="32m", memory_swap="0").memory_swap is None  # docker: 0 = unset
    refused("at least --memory", memory="64m", memory_swap="32m")
    refused("needs --memory", memory_swap="64m")
    refused("invalid --memory-swap", memory="32m", memory_swap="-2")


def test_cpu_quota_original_spelling() -> None:
    got = lim(cpu_quota="10000")
    assert (got.cpu_quota, got.cpu_period) == (10_000, 100_000)  # a tenth of a CPU
    assert lim(cpu_quota="200000").cpu_quota == 200_000  # both CPUs
    refused("at least 1000", cpu_quota="999")
    refused("at least 1000", cpu_quota="-1")
    refused("more than the 2 CPUs", cpu_quota="200001")
    refused("expected an integer", cpu_quota="0.5")
    refused("expected an integer", cpu_quota="1_000")


def test_cpus() -> None:
    assert lim(cpus="0.5").cpu_quota == 50_000
    assert lim(cpus="1.5").cpu_quota == 150_000
    assert lim(cpus="2").cpu_quota == 200_000
    assert lim(cpus="0.01").cpu_quota == 1_000
    refused("more than the 2 CPUs", cpus="2.5")
    refused("more than 0", cpus="0")
    refused("more than 0", cpus="-1")
    refused("more than 0", cpus="nan")
    refused("minimum of 0.01", cpus="0.001")
    refused("invalid --cpus", cpus="half")


def test_cpu_quota_and_cpus_exclude_each_other() -> None:
    refused("either -cpu or --cpus", cpu_quota="10000", cpus="0.5")


def test_cpu_shares() -> None:
    assert lim(cpu_shares="512").cpu_shares == 512
    assert lim(cpu_shares="2").cpu_shares == 2
    refused("between 2 and 262144", cpu_shares="1")
    refused("between 2 and 262144", cpu_shares="0")
    refused("between 2 and 262144", cpu_shares="262145")
    refused("expected an integer", cpu_shares="many")


@pytest.mark.parametrize(("text", "cpus"), [("0", {0}), ("0-1", {0, 1}), ("0,1", {0, 1}),
                                            ("0-2,5", {0, 1, 2, 5}), (" 1 ", {1})])  # fmt: skip
def test_parse_cpu_list(text: str, cpus: set[int]) -> None:
    assert parse_cpu_list(text) == cpus


def test_cpuset_cpus() -> None:
    assert lim(cpuset_cpus="0").cpuset_cpus == "0"
    assert lim(cpuset_cpus="0-1").cpuset_cpus == "0-1"
    assert lim(cpuset_cpus="0,1").cpuset_cpus == "0,1"
    refused("CPU 2 is not online", cpuset_cpus="0-2")
    refused("CPU 7 is not online", cpuset_cpus="7")
    refused("runs backwards", cpuset_cpus="1-0")
    refused("expected CPU numbers", cpuset_cpus="a")
    refused("expected CPU numbers", cpuset_cpus="0,")
    refused("expected CPU numbers", cpuset_cpus="-1")


def test_pids_limit() -> None:
    assert lim(pids_limit="10").pids == 10
    assert lim(pids_limit="-1").pids is None  # docker: unlimited
    assert lim(pids_limit="0").pids is None
    refused("must be positive", pids_limit="-2")
    refused("expected an integer", pids_limit="ten")


def test_all_together() -> None:
    got = lim(memory="64m", memory_swap="128m", cpus="0.5", cpu_shares="512",
              cpuset_cpus="1", pids_limit="20")  # fmt: skip
    assert got == Limits(memory=64 * M, memory_swap=128 * M, cpu_quota=50_000,
                         cpu_shares=512, cpuset_cpus="1", pids=20)  # fmt: skip


def test_defaults_come_from_this_host() -> None:
    # No injected host: the real cpu count and /sys/devices/system/cpu/online apply.
    assert limits_from_options(cpuset_cpus="0", cpus="1").cpuset_cpus == "0"
    with pytest.raises(BasinError, match="not online"):
        limits_from_options(cpuset_cpus="4095")
