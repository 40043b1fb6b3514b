"""A thin wrapper over the iptables commands, and the layout of basin's own chains.

Every rule basin adds lives in one of its own chains and carries a comment marker, so it can
be found and removed exactly, whatever else the host's firewall holds:

    nat    PREROUTING  -m addrtype --dst-type LOCAL -j BASIN-NAT      published ports (DNAT)
    nat    OUTPUT      -m addrtype --dst-type LOCAL -j BASIN-NAT      ... also from the host
    nat    POSTROUTING -j BASIN-POSTROUTING                           masquerade
    filter FORWARD     -j BASIN-FWD                                   accept container traffic

Markers are ``basin:net=NAME`` for a network's rules and ``basin:net=NAME:ctr=CID`` for a
container's port rules, so removing a network's marker also sweeps any container rules left
behind. The chains and jumps exist only while some rule needs them (``prune``).

iptables state is host-wide, not per BASIN_ROOT, so changes are serialised with a host-wide
flock rather than the network store's lock. Rule sets go through ``iptables-restore
--noflush``: one process per change instead of one per rule, and all-or-nothing.
"""

from __future__ import annotations

import fcntl
import os
import re
import shlex
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from basin.errors import BasinError

LOCK_PATH = "/run/lock/basin-iptables.lock"
JUMP_MARKER = "basin"


@dataclass(frozen=True)
class Chain:
    table: str
    name: str
    hooks: tuple[str, ...]  # built-in chains that jump here
    match: tuple[str, ...] = ()  # condition on the jump


NAT = Chain("nat", "BASIN-NAT", ("PREROUTING", "OUTPUT"), ("-m", "addrtype", "--dst-type", "LOCAL"))
POSTROUTING = Chain("nat", "BASIN-POSTROUTING", ("POSTROUTING",))
FWD = Chain("filter", "BASIN-FWD", ("FORWARD",))
CHAINS = (NAT, POSTROUTING, FWD)
TABLES = ("nat", "filter")

# flock excludes other processes; threads of this process queue on the mutex first, because
# flock on one shared fd would not exclude them (and per-thread fds would, but cost opens).
_thread_lock = threading.Lock()


@contextmanager
def host_lock() -> Iterator[None]:
    with _thread_lock:
        os.makedirs(os.path.dirname(LOCK_PATH), exist_ok=True)
        fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


_PLAIN = re.compile(r"[A-Za-z0-9_.:/,=!+-]+")


def join(args: Sequence[str]) -> str:
    """One iptables-restore line. Its parser knows double quotes only, not shell quoting
    (shlex.join's '!' is a "Bad argument")."""
    out = []
    for a in args:
        if _PLAIN.fullmatch(a):
            out.append(a)
        elif not any(c in a for c in '"\\\n'):
            out.append(f'"{a}"')
        else:
            raise BasinError(f"cannot pass {a!r} to iptables-restore")
    return " ".join(out)


def _run(argv: Sequence[str], stdin: str | None = None) -> str:
    try:
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        raise BasinError(f"{argv[0]}: {e}") from None
    if proc.returncode != 0:
        detail = proc.stderr.strip() or f"exit status {proc.returncode}"
        raise BasinError(f"{' '.join(argv[:4])}...: {detail}")
    return proc.stdout


@dataclass
class Table:
    chains: set[str]
    rules: list[list[str]]  # e.g. ['-A', 'BASIN-NAT', '-p', 'tcp', ...]


def state() -> dict[str, Table]:
    """All tables at once: one iptables-save costs what one ``iptables -S`` does."""
    tables: dict[str, Table] = {t: Table(set(), []) for t in TABLES}
    current: Table | None = None
    for line in _run(["iptables-save"]).splitlines():
        if line.startswith("*"):
            current = tables.setdefault(line[1:], Table(set(), []))
        elif current is None:
            continue
        elif line.startswith(":"):
            current.chains.add(line[1:].split()[0])
        elif line.startswith("-A "):
            current.rules.append(shlex.split(line))
    return tables


def rules(table: str) -> list[list[str]]:
    return state()[table].rules


def comment(rule: Sequence[str]) -> str | None:
    for i, arg in enumerate(rule[:-1]):
        if arg == "--comment":
            return rule[i + 1]
    return None


def matches(marker: str, rule: Sequence[str]) -> bool:
    c = comment(rule)
    return c is not None and (c == marker or c.startswith(marker + ":"))


def restore(lines: dict[str, list[str]]) -> None:
    """Apply ``-N``/``-A``/``-I``/``-D``/``-X`` lines, per table, in one iptables-restore."""
    text = "".join(f"*{t}\n" + "\n".join(ls) + "\nCOMMIT\n" for t, ls in lines.items() if ls)
    if text:
        _run(["iptables-restore", "-w", "--noflush"], text)


def _base(tables: dict[str, Table]) -> dict[str, list[str]]:
    """Lines creating basin's chains and the jumps into them where missing."""
    out: dict[str, list[str]] = {t: [] for t in TABLES}
    for ch in CHAINS:
        tab = tables[ch.table]
        if ch.name not in tab.chains:
            out[ch.table].append(f"-N {ch.name}")
        for hook in ch.hooks:
            if not any(r[1] == hook and r[-2:] == ["-j", ch.name] for r in tab.rules):
                # -I: ahead of whatever DROP rules the host has
                jump = [*ch.match, "-m", "comment", "--comment", JUMP_MARKER, "-j", ch.name]
                out[ch.table].append(join(["-I", hook, "1", *jump]))
    return out


def rule_line(chain: Chain, spec: Sequence[str], marker: str) -> str:
    return join(["-A", chain.name, *spec, "-m", "comment", "--comment", marker])


def add(rule_lines: dict[str, list[str]], tables: dict[str, Table] | None = None) -> None:
    """Add rules (lines from rule_line) per table, with chains and jumps where missing, in
    one transaction. Hold host_lock; pass the state() read under it if there is one."""
    lines = _base(tables or state())
    for table, ls in rule_lines.items():
        lines[table] += ls
    restore(lines)


def cleanup_rules(marker: str) -> int:
    """Delete every rule whose comment is marker or starts with marker + ':'.
    Returns how many went. Takes host_lock."""
    with host_lock():
        return cleanup_rules_locked(marker)


def cleanup_rules_locked(marker: str) -> int:
    doomed = {t: [r for r in tab.rules if matches(marker, r)] for t, tab in state().items()}
    restore({t: [join(["-D", *r[1:]]) for r in rs] for t, rs in doomed.items()})
    return sum(map(len, doomed.values()))


def prune() -> bool:
    """Remove basin's jumps and chains once all its chains are empty. Hold host_lock.
    Returns whether they are gone."""
    tables = state()
    names = {c.name for c in CHAINS}
    if any(r[1] in names for t in TABLES for r in tables[t].rules):
        return False
    lines: dict[str, list[str]] = {t: [] for t in TABLES}
    for t in TABLES:
        lines[t] = [
            join(["-D", *r[1:]]) for r in tables[t].rules if r[-2:-1] == ["-j"] and r[-1] in names
        ]
    for ch in CHAINS:
        if ch.name in tables[ch.table].chains:
            lines[ch.table].append(f"-X {ch.name}")
    restore(lines)
    return True
