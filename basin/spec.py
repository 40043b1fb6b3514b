"""Validation of what a user asks `run` for. Pure functions: the client calls them to fail
fast, the supervisor calls them again because the control FIFO is an interface of its own."""

from __future__ import annotations

import os
import re

from basin.errors import BasinError

TYPE_CHECKING = False  # typing costs the thin client ~3 ms to import
if TYPE_CHECKING:
    from typing import Any

NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*\Z")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOSTNAME_RE = re.compile(r"[a-zA-Z0-9]([a-zA-Z0-9.-]{0,62})\Z")

_ADJECTIVES = [
    "brave",
    "calm",
    "eager",
    "fancy",
    "gentle",
    "happy",
    "jolly",
    "keen",
    "lucid",
    "merry",
    "nimble",
    "proud",
    "quiet",
    "swift",
    "tidy",
    "witty",
]
_NOUNS = [
    "otter",
    "heron",
    "lynx",
    "marten",
    "osprey",
    "puffin",
    "raven",
    "stoat",
    "tern",
    "vole",
    "wren",
    "badger",
    "bison",
    "crane",
    "finch",
    "gecko",
]


def validate_name(name: str) -> str:
    if not NAME_RE.match(name) or len(name) > 128:
        raise BasinError(
            f"invalid container name {name!r}: use letters, digits, '_', '.', '-',"
            " starting with a letter or digit"
        )
    return name


def random_name() -> str:
    import secrets  # here, not at the top: the client only validates (secrets costs 4 ms)

    return f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_NOUNS)}_{secrets.token_hex(2)}"


def new_id() -> str:
    import secrets

    return secrets.token_hex(32)


def parse_env(items: list[str], lookup: dict[str, str] | None = None) -> list[str]:
    """KEY=VAL as given; a bare KEY takes the client's value, as docker does (or is dropped)."""
    out: list[str] = []
    for item in items:
        key, eq, _ = item.partition("=")
        if not key or "\0" in item or (not eq and "=" in key):
            raise BasinError(f"invalid environment variable {item!r}: expected KEY=VALUE")
        if eq:
            out.append(item)
        elif lookup is not None and key in lookup:
            out.append(f"{key}={lookup[key]}")
    return out


def read_env_file(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise BasinError(f"env file {path}: {e.strerror}") from None
    return [ln for ln in (line.strip() for line in lines) if ln and not ln.startswith("#")]


def parse_volume(spec: str) -> dict[str, Any]:
    """HOST:CONTAINER[:ro|rw]; HOST must exist, both absolute."""
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise BasinError(f"invalid volume {spec!r}: expected HOST:CONTAINER[:ro]")
    host, container = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else "rw"
    if mode not in ("ro", "rw"):
        raise BasinError(f"invalid volume {spec!r}: mode must be ro or rw, not {mode!r}")
    if not host.startswith("/") or not container.startswith("/"):
        raise BasinError(f"invalid volume {spec!r}: both paths must be absolute")
    if ".." in container.split("/"):
        raise BasinError(f"invalid volume {spec!r}: container path must not contain '..'")
    if container.rstrip("/") == "":
        raise BasinError(f"invalid volume {spec!r}: cannot mount over the container's root")
    if not os.path.exists(host):
        raise BasinError(f"invalid volume {spec!r}: host path {host} does not exist")
    return {
        "host": os.path.realpath(host),
        "container": os.path.normpath(container),
        "ro": mode == "ro",
    }


def validate_hostname(name: str) -> str:
    if not HOSTNAME_RE.match(name):
        raise BasinError(f"invalid hostname {name!r}")
    return name


def container_env(env: list[str], hostname: str, tty: bool) -> dict[str, str]:
    out = {"PATH": DEFAULT_PATH, "HOSTNAME": hostname, "HOME": "/root"}
    if tty:
        out["TERM"] = "xterm"
    for item in env:
        key, _, val = item.partition("=")
        out[key] = val
    return out


def validate_stop_timeout(value: Any) -> int:
    try:
        t = int(value)
    except (TypeError, ValueError):
        raise BasinError(f"invalid stop timeout {value!r}: expected whole seconds") from None
    if t < 0:
        raise BasinError(f"invalid stop timeout {value!r}: must not be negative")
    return t
