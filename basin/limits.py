"""The resource-limit flags of ``basin run``, parsed and checked before anything is created, so
a bad value fails as one line and exit code 125 instead of a half-made container."""

from __future__ import annotations

import os
import re
from pathlib import Path

from basin.cgroups import Limits
from basin.errors import BasinError

CPU_PERIOD = 100_000  # µs; docker's and the kernel's default CFS period
MIN_MEMORY = 6 * 1024 * 1024  # docker's minimum: below it a container cannot even start
MIN_QUOTA = 1_000  # µs; the kernel refuses a CFS quota under 1 ms
MAX_SHARES = 262_144  # the kernel's cpu.shares ceiling
_MAX_BYTES = 1 << 62

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([kmg]?)b?", re.IGNORECASE)
_INT = re.compile(r"-?[0-9]+")


def parse_size(text: str, flag: str = "size") -> int:
    """Bytes from "1024", "512b", "32k", "32m", "1g", "1.5g" (case-insensitive, 1k = 1024)."""
    m = _SIZE.fullmatch(text.strip())
    if not m:
        raise BasinError(
            f"invalid {flag} {text!r}: expected a number of bytes with an optional "
            "b, k, m or g suffix"
        )
    size = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if size > _MAX_BYTES:
        raise BasinError(f"invalid {flag} {text!r}: too large")
    return size


def _parse_int(text: str, flag: str) -> int:
    # int() alone would also take "1_000", "+5" and non-ASCII digits.
    if not _INT.fullmatch(text.strip()):
        raise BasinError(f"invalid {flag} {text!r}: expected an integer")
    return int(text)


def parse_cpu_list(text: str, flag: str = "--cpuset-cpus") -> set[int]:
    """CPU numbers of a kernel cpu list: "0", "0-3", "0,2", "0-1,3"."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        m = re.fullmatch(r"([0-9]+)(?:-([0-9]+))?", part.strip())
        if not m:
            raise BasinError(f"invalid {flag} {text!r}: expected CPU numbers like 0, 0-1 or 0,1")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise BasinError(f"invalid {flag} {text!r}: range {part} runs backwards")
        cpus.update(range(lo, hi + 1))
    return cpus


def online_cpus() -> set[int]:
    return parse_cpu_list(Path("/sys/devices/system/cpu/online").read_text(), "online cpu list")


def _memory(memory: str | None, memory_swap: str | None) -> tuple[int | None, int | None]:
    mem = None
    if memory is not None:
        mem = parse_size(memory, "--memory")
        if mem < MIN_MEMORY:
            raise BasinError(f"--memory {memory} is below the minimum of 6m")
    swap = None
    if memory_swap is not None:
        if memory_swap.strip() == "-1":
            swap = -1
        elif memory_swap.strip() == "0":  # docker: 0 is the same as not given
            swap = None
        else:
            swap = parse_size(memory_swap, "--memory-swap")
            if mem is None:
                raise BasinError("--memory-swap needs --memory as well")
            if swap < mem:
                raise BasinError(
                    f"--memory-swap {memory_swap} must be at least --memory {memory} "
                    "(it counts memory plus swap), or -1 for unlimited swap"
                )
    return mem, swap


def _cpu_quota(cpu_quota: str | None, cpus: str | None, ncpu: int) -> int | None:
    if cpu_quota is not None and cpus is not None:
        raise BasinError("give either -cpu or --cpus, not both")
    if cpu_quota is not None:
        quota = _parse_int(cpu_quota, "-cpu")
        if quota < MIN_QUOTA:
            raise BasinError(
                f"-cpu {cpu_quota}: the quota must be at least {MIN_QUOTA} µs per {CPU_PERIOD} µs"
            )
    elif cpus is not None:
        try:
            f = float(cpus)
        except ValueError:
            raise BasinError(f"invalid --cpus {cpus!r}: expected a number such as 0.5") from None
        if not f > 0:  # also catches nan
            raise BasinError(f"--cpus {cpus} must be more than 0")
        if f > ncpu:
            raise BasinError(f"--cpus {cpus} is more than the {ncpu} CPUs of this host")
        quota = round(f * CPU_PERIOD)
        if quota < MIN_QUOTA:
            raise BasinError(f"--cpus {cpus} is below the minimum of 0.01")
    else:
        return None
    if quota > ncpu * CPU_PERIOD:
        raise BasinError(
            f"-cpu {cpu_quota} is more than the {ncpu} CPUs of this host "
            f"({ncpu * CPU_PERIOD} µs per {CPU_PERIOD} µs)"
        )
    return quota


def _cpu_shares(cpu_shares: str | None) -> int | None:
    if cpu_shares is None:
        return None
    shares = _parse_int(cpu_shares, "--cpu-shares")
    if not 2 <= shares <= MAX_SHARES:
        raise BasinError(f"--cpu-shares {cpu_shares} must be between 2 and {MAX_SHARES}")
    return shares


def _cpuset(cpuset_cpus: str | None, online: set[int]) -> str | None:
    if cpuset_cpus is None:
        return None
    missing = sorted(parse_cpu_list(cpuset_cpus) - online)
    if missing:
        have = ",".join(map(str, sorted(online)))
        raise BasinError(
            f"--cpuset-cpus {cpuset_cpus}: CPU {missing[0]} is not online (this host has {have})"
        )
    return cpuset_cpus.strip()


def _pids(pids_limit: str | None) -> int | None:
    if pids_limit is None:
        return None
    n = _parse_int(pids_limit, "--pids-limit")
    if n in (0, -1):  # docker: 0 and -1 both mean unlimited
        return None
    if n < 0:
        raise BasinError(f"--pids-limit {pids_limit} must be positive, or -1 for unlimited")
    return n


def limits_from_options(
    memory: str | None = None,
    memory_swap: str | None = None,
    cpu_quota: str | None = None,
    cpus: str | None = None,
    cpu_shares: str | None = None,
    cpuset_cpus: str | None = None,
    pids_limit: str | None = None,
    *,
    cpu_count: int | None = None,
    online: set[int] | None = None,
) -> Limits:
    """The Limits for the flags as typed (None = flag absent). ``cpu_count`` and ``online``
    default to this host's; tests pass others. Raises BasinError (125) on any bad value."""
    ncpu = cpu_count if cpu_count is not None else os.cpu_count() or 1
    mem, swap = _memory(memory, memory_swap)
    return Limits(
        memory=mem,
        memory_swap=swap,
        cpu_quota=_cpu_quota(cpu_quota, cpus, ncpu),
        cpu_period=CPU_PERIOD,
        cpu_shares=_cpu_shares(cpu_shares),
        cpuset_cpus=_cpuset(cpuset_cpus, online if online is not None else online_cpus()),
        pids=_pids(pids_limit),
    )
