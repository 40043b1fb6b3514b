"""Snapshots of the kernel and disk objects a container run could leave behind, so every test
can assert it left none.

Only objects that can be basin's are listed (a basin name or marker, a path under the test's
own state root, a process whose mounts or environment point there), so that other container
tools running on the same machine do not make a test fail."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
_OTHER_TOOLS = ("podman", "cni", "netavark", "docker")
_CGROUP_RE = re.compile(r"basin-(?!bench)")


def _mounts(markers: list[str]) -> set[str]:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return {f"mount {p}" for p in points if "basin" in p or any(m in p for m in markers)}


def _links() -> set[str]:
    out: set[str] = set()
    for name in os.listdir("/sys/class/net"):
        try:
            master = os.path.basename(os.readlink(f"/sys/class/net/{name}/master"))
        except OSError:
            master = ""
        if not any(t in name or t in master for t in _OTHER_TOOLS):
            out.add(f"link {name}")
    return out


def _cgroups() -> set[str]:
    out: set[str] = set()
    for top, dirs, _ in os.walk(CGROUP_ROOT):
        if top.count("/") > 10:
            dirs[:] = []
        out.update(f"cgroup {top}/{d}" for d in dirs if _CGROUP_RE.match(d))
    return out


def _rules() -> set[str]:
    out: set[str] = set()
    for tool in ("iptables-save", "ip6tables-save"):
        try:
            text = subprocess.run([tool], capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        for line in text.splitlines():
            if line.startswith(("-A", ":")) and "basin" in line.lower():
                out.add(f"{tool} {line.split(' [')[0]}")
    return out


def _processes(markers: list[str]) -> set[str]:
    out: set[str] = set()
    mine = os.readlink("/proc/self/ns/pid")
    me = str(os.getpid())
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if pid == me:
            continue
        try:
            ns = os.readlink(f"/proc/{pid}/ns/pid")
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            if ns != mine:
                # a container of this test mounts its overlay from under the test's root
                where = Path(f"/proc/{pid}/mountinfo").read_text()
            elif "basin" in cmd:
                where = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
                if "basin supervisor" in cmd and "BASIN_RUN=" not in where:
                    # started with the default roots: a test escaped its own state root
                    where += " ".join(markers)
            else:
                continue
        except OSError:
            continue
        if any(m in where for m in markers):
            out.add(f"process {pid} {cmd[:100]}")
    return out


def _paths(roots: Iterable[Path]) -> set[str]:
    out: set[str] = set()
    for root in roots:
        for sub in ("containers", "networks"):
            d = root / sub
            if d.is_dir():
                # the networks' flock file is not state: it stays like the directory
                out.update(f"path {p}" for p in d.iterdir() if p.name != ".lock")
        for fifo in ("control",):
            if (root / fifo).exists():
                out.add(f"path {root / fifo}")
    return out


def snapshot(roots: Iterable[Path] = ()) -> set[str]:
    roots = list(roots)
    markers = [str(r) for r in roots]
    return _mounts(markers) | _links() | _cgroups() | _rules() | _processes(markers) | _paths(roots)
