"""Container records on disk: config.json (what was asked, written once) and state.json (what
is, rewritten atomically on every change). Shared by the supervisor and the thin client."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from basin.errors import BasinError, NotFound
from basin.paths import Paths
from basin.store import CorruptRecord, read_json, sync_files, write_json

TYPE_CHECKING = False  # typing itself costs the thin client ~3 ms to import
if TYPE_CHECKING:
    from dataclasses import asdict, dataclass, field
    from typing import Any
else:  # the same classes without dataclasses' import cost (see basin.plainclass)
    from basin.plainclass import asdict, dataclass, field

CREATED, RUNNING, STOPPED, EXITED = "created", "running", "stopped", "exited"


@dataclass
class State:
    status: str = CREATED
    pid: int = 0
    start_ticks: int = 0  # field 22 of /proc/PID/stat: tells a re-used pid from ours
    exit_code: int | None = None
    started_at: str = ""
    finished_at: str = ""
    oom_killed: bool = False
    # the resource limits the kernel holds (basin.cgroups.Limits as JSON; None = no limit):
    # they differ from config["limits"] where the host rounds or fills in (pages, cpuset)
    limits_enforced: dict[str, Any] = field(default_factory=dict)
    stopped_by: str = ""
    error: str = ""
    # the container's attachment while it runs (basin.network.Attachment.to_json, plus
    # "driver"); {} with no network of a driver, and again once it has exited
    network: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> State:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class Container:
    id: str
    name: str
    config: dict[str, Any]
    state: State = field(default_factory=State)

    @property
    def short_id(self) -> str:
        return self.id[:12]

    def status_text(self) -> str:
        s = self.state
        if s.status == RUNNING:
            return RUNNING
        if s.status == STOPPED:
            return f"stopped ({s.exit_code})"
        if s.status == EXITED:
            return f"exited ({s.exit_code})"
        return s.status

    def summary(self) -> dict[str, Any]:
        c = self.config
        return {
            "id": self.id,
            "name": self.name,
            "pid": self.state.pid if self.state.status == RUNNING else 0,
            "status": self.state.status,
            "exit_code": self.state.exit_code,
            "oom_killed": self.state.oom_killed,
            "image": c.get("image", ""),
            "command": c.get("argv", []),
            "created": c.get("created", ""),
            "started_at": self.state.started_at,
            "finished_at": self.state.finished_at,
        }


def start_ticks(pid: int) -> int:
    """The process's start time in clock ticks since boot, or 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return 0
    # the command name may hold spaces and parens: fields are counted after its last ')'
    return int(stat[stat.rindex(b")") + 2 :].split()[19])


def alive(state: State) -> bool:
    return state.pid > 0 and start_ticks(state.pid) == state.start_ticks


def save_config(paths: Paths, ctr: Container, durable: bool = True) -> None:
    write_json(paths.container(ctr.id) / "config.json", ctr.config, durable)


def save_state(paths: Paths, ctr: Container) -> None:
    """Rewrite state.json atomically, without fsync: the supervisor writes it several times in
    each container's life, on its event loop. A power loss can cost the last change, not the
    record: ext4 (with its default auto_da_alloc) and btrfs write a file's data out before a
    rename over another file commits, so the old or the new state.json is there, whole. And
    the next supervisor re-derives what matters: a record that says running without its
    process becomes exited. The first state.json is made durable with the config by
    sync_new()."""
    write_json(paths.container(ctr.id) / "state.json", asdict(ctr.state), durable=False)


def sync_new(paths: Paths, cid: str) -> None:
    """fsync a new container's config.json and first state.json (written with durable=False,
    so that a worker thread does this meanwhile): from here on the container survives a power
    loss, and every later state.json replaces a durable one."""
    d = paths.container(cid)
    sync_files([d / "config.json", d / "state.json"])


def load(paths: Paths, cid: str) -> Container:
    d = paths.container(cid)
    config = read_json(d / "config.json")
    try:
        state = State.from_json(read_json(d / "state.json"))
    except FileNotFoundError:
        state = State()
    return Container(id=cid, name=config["name"], config=config, state=state)


def load_all(paths: Paths, warn: bool = True) -> list[Container]:
    """Every readable record; a corrupt or half-written one is reported and skipped."""
    out: list[Container] = []
    try:
        ids = sorted(os.listdir(paths.containers))
    except FileNotFoundError:
        return out
    for cid in ids:
        if cid.startswith("."):
            continue
        try:
            out.append(load(paths, cid))
        except FileNotFoundError:
            continue  # being created or removed right now
        except (CorruptRecord, KeyError, TypeError) as e:
            if warn:
                print(
                    f"basin: skipping unreadable container record {cid[:12]}: {e}", file=sys.stderr
                )
    out.sort(key=lambda c: c.config.get("created", ""))
    return out


def resolve(containers: list[Container], ref: str) -> Container:
    """A name, a full ID, or a unique ID prefix."""
    if not ref:
        raise BasinError("container name or ID must not be empty")
    for c in containers:
        if c.name == ref or c.id == ref:
            return c
    matches = [c for c in containers if c.id.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise BasinError(f"ambiguous ID prefix {ref!r}: matches {len(matches)} containers")
    raise NotFound(f"no such container: {ref}")


def log_path(paths: Paths, cid: str) -> Path:
    return paths.container_log(cid)
