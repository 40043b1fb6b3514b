"""Snapshots of the kernel and disk objects a container run could leave behind, so every test
can assert it left none."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _mounts() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {f"mount {line.split()[4]}" for line in f}


def _links() -> set[str]:
    return {f"link {name}" for name in os.listdir("/sys/class/net")}


def _cgroups() -> set[str]:
    out: set[str] = set()
    for top, dirs, _ in os.walk(CGROUP_ROOT):
        if top.count("/") > 10:
            dirs[:] = []
        out.update(f"cgroup {top}/{d}" for d in dirs if "basin" in d)
    return out


def _rules() -> set[str]:
    out: set[str] = set()
    for tool in ("iptables-save", "ip6tables-save"):
        try:
            text = subprocess.run([tool], capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        out.update(f"{tool} {line}" for line in text.splitlines() if line.startswith(("-A", ":BASIN")))
    return out


def _processes() -> set[str]:
    out: set[str] = set()
    mine = os.readlink("/proc/self/ns/pid")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            ns = os.readlink(f"/proc/{pid}/ns/pid")
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] == "Z" and ns == mine:
            continue
        if ns != mine or "basin" in cmd and "pytest" not in cmd:
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
    return out


def snapshot(roots: Iterable[Path] = ()) -> set[str]:
    return _mounts() | _links() | _cgroups() | _rules() | _processes() | _paths(roots)
