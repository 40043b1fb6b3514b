"""What measuring the peers changes on the host, and putting it back.

- crun 1.8.1 (podman's default OCI runtime here too) refuses a hybrid layout whose cgroup2 at
  /sys/fs/cgroup/unified still holds a controller ("cgroups in hybrid mode not supported"). Here
  that controller is hugetlb; mounting hugetlb as its own v1 hierarchy empties the cgroup2 side.
  The mount is undone afterwards, and since a v1 root whose last child was still dying at umount
  keeps the controller, the undo remounts and unmounts until hugetlb is back on cgroup2.
- podman (netavark) adds NETAVARK iptables chains and rules, and leaves `libpod_parent` cgroups
  in every hierarchy; both are removed when they were not there before.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")
UNIFIED = CGROUP / "unified"
HUGETLB_V1 = CGROUP / "hugetlb"
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def _hugetlb_hierarchy() -> int | None:
    for line in Path("/proc/cgroups").read_text().splitlines():
        fields = line.split()
        if fields and fields[0] == "hugetlb":
            return int(fields[1])
    return None


def hybrid_blocks_crun() -> bool:
    """True on the layout crun refuses: cgroup2 at unified/ with a controller enabled in it."""
    controllers = UNIFIED / "cgroup.controllers"
    return controllers.exists() and bool(controllers.read_text().split())


def _umount_hugetlb() -> None:
    for d in sorted((p for p in HUGETLB_V1.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            d.rmdir()
    subprocess.run(["umount", str(HUGETLB_V1)], check=False, capture_output=True)
    with contextlib.suppress(OSError):
        HUGETLB_V1.rmdir()


@contextlib.contextmanager
def hugetlb_on_v1(notes: list[str]) -> Iterator[None]:
    """Mount hugetlb as a v1 hierarchy for the duration, if crun needs it; restore exactly."""
    if not hybrid_blocks_crun() or _hugetlb_hierarchy() != 0 or HUGETLB_V1.exists():
        yield
        return
    HUGETLB_V1.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "cgroup", "-o", "hugetlb", "cgroup", str(HUGETLB_V1)],
        check=False,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        HUGETLB_V1.rmdir()
        notes.append(f"could not mount a v1 hugetlb hierarchy for crun: {proc.stderr.strip()}")
        yield
        return
    try:
        yield
    finally:
        for _ in range(5):
            _umount_hugetlb()
            if _back_on_cgroup2(timeout=3.0):
                break
            # A child still dying at umount keeps the v1 root alive: mounting again reuses
            # that root, and unmounting it once it is empty releases hugetlb.
            HUGETLB_V1.mkdir(exist_ok=True)
            subprocess.run(
                ["mount", "-t", "cgroup", "-o", "hugetlb", "cgroup", str(HUGETLB_V1)],
                check=False,
                capture_output=True,
            )
        if _hugetlb_hierarchy() != 0:
            notes.append("WARNING: hugetlb did not return to cgroup2 after the crun window")


def _back_on_cgroup2(timeout: float) -> bool:
    """The kernel frees an unmounted v1 root asynchronously (~40 ms here): wait for it."""
    deadline = time.monotonic() + timeout
    while _hugetlb_hierarchy() != 0:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _iptables_lines(table: str) -> list[str]:
    proc = subprocess.run(
        ["iptables-save", "-t", table], check=False, capture_output=True, text=True
    )
    return proc.stdout.splitlines() if proc.returncode == 0 else []


def _netavark_chains(lines: list[str]) -> set[str]:
    return {line[1:].split()[0] for line in lines if line.startswith(":NETAVARK")}


def _libpod_cgroups() -> set[Path]:
    return {p for p in CGROUP.glob("*/libpod_parent") if p.is_dir()}


def _remove_new_netavark(before: dict[str, list[str]]) -> None:
    for table, old in before.items():
        lines = _iptables_lines(table)
        new_chains = _netavark_chains(lines) - _netavark_chains(old)
        if not new_chains:
            continue
        for line in lines:
            if not line.startswith("-A "):
                continue
            args = shlex.split(line)
            if args[1] in new_chains:
                continue
            if any(args[i] == "-j" and args[i + 1] in new_chains for i in range(len(args) - 1)):
                subprocess.run(
                    ["iptables", "-t", table, "-D", *args[1:]], check=False, capture_output=True
                )
        for chain in new_chains:
            subprocess.run(["iptables", "-t", table, "-F", chain], check=False, capture_output=True)
        for chain in new_chains:
            subprocess.run(["iptables", "-t", table, "-X", chain], check=False, capture_output=True)


def _remove_cgroup_tree(top: Path) -> None:
    """rmdir depth first; a conmon still exiting keeps its group busy for a moment: retry."""
    for _ in range(30):
        for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                d.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()
        if not top.exists():
            return
        time.sleep(0.1)


# libpod_parent groups that were there before this process first ran podman: never removed.
_libpod_baseline: set[Path] | None = None


@contextlib.contextmanager
def podman_traces() -> Iterator[None]:
    """Undo what podman leaves behind: NETAVARK iptables chains, libpod_parent cgroups and the
    ip_forward switch netavark turns on."""
    global _libpod_baseline
    before = {table: _iptables_lines(table) for table in ("filter", "nat")}
    if _libpod_baseline is None:
        _libpod_baseline = _libpod_cgroups()
    cgroups = _libpod_baseline
    forward = IP_FORWARD.read_text() if IP_FORWARD.exists() else None
    try:
        yield
    finally:
        _remove_new_netavark(before)
        for top in _libpod_cgroups() - cgroups:
            _remove_cgroup_tree(top)
        if forward is not None and IP_FORWARD.read_text() != forward:
            with contextlib.suppress(OSError):
                IP_FORWARD.write_text(forward)


@contextlib.contextmanager
def peer_window(notes: list[str]) -> Iterator[None]:
    """Both guards, for a scenario that runs crun or podman."""
    if os.geteuid() != 0:
        yield
        return
    with podman_traces(), hugetlb_on_v1(notes):
        yield
