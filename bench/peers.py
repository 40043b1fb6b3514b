"""The peers basin is measured against: how to call them here, and whether they can run at all."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import commands

PODMAN_IMAGE = "localhost/basin-bench-busybox:latest"
# podman 4.3 on this host: without these, crun's setrlimit(RLIMIT_NOFILE) fails with EPERM.
PODMAN_ULIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"]
PODMAN_NETWORK = "basinbenchpod"
PODMAN_SUBNET = "10.234.251.0/24"

_ids = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


def version(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        return "not installed"
    outcome = commands.run([path, "--version"], timeout=20)
    if not outcome.ok:
        return outcome.error
    lines = outcome.stdout.decode(errors="replace").strip().splitlines()
    return lines[0] if lines else "?"


@dataclass
class OciRuntime:
    """runc or crun running the shared bundle: `X run -b BUNDLE ID`."""

    name: str
    bundle: Path
    problem: str = ""
    created: list[str] = field(default_factory=list)

    def run_cmd(self) -> list[str]:
        cid = unique(f"basin-bench-{self.name}")
        self.created.append(cid)
        return [self.name, "run", "-b", str(self.bundle), cid]

    def cleanup(self) -> None:
        """Delete whatever a failed or interrupted run left in the runtime's state dir."""
        for cid in self.created:
            commands.quiet([self.name, "delete", "-f", cid], timeout=20)
        self.created.clear()


@dataclass
class Podman:
    problem: str = ""
    names: list[str] = field(default_factory=list)
    network: str = ""

    def cmd(self, *args: str) -> list[str]:
        return ["podman", *args]

    def run_cmd(
        self, *args: str, flags: Sequence[str] = ("--rm",), network: str = "none"
    ) -> list[str]:
        """`podman run FLAGS --network NET ULIMITS IMAGE ARGS`."""
        return ["podman", "run", *flags, "--network", network, *PODMAN_ULIMITS, PODMAN_IMAGE, *args]

    def detached(self, name: str, *args: str) -> list[str]:
        return self.run_cmd(*args, flags=("-d", "--name", name))

    def new_name(self) -> str:
        name = unique("basin-bench-podman")
        self.names.append(name)
        return name

    def remove(self, names: Sequence[str]) -> None:
        if names:
            commands.quiet(["podman", "rm", "-f", "-t", "0", *names], timeout=120)
            for n in names:
                if n in self.names:
                    self.names.remove(n)

    def ensure_network(self) -> str:
        """A podman bridge network on a subnet of our own (podman's default is 10.88.0.0/16)."""
        if not self.network:
            outcome = commands.run(
                ["podman", "network", "create", "--subnet", PODMAN_SUBNET, PODMAN_NETWORK]
            )
            if not outcome.ok and "already exists" not in outcome.error:
                raise RuntimeError(outcome.error)
            self.network = PODMAN_NETWORK
        return self.network

    def cleanup(self) -> None:
        self.remove(list(self.names))
        if self.network:
            commands.quiet(["podman", "network", "rm", "-f", self.network])
            self.network = ""


def probe(cmd: Sequence[str]) -> str:
    """'' when a smoke run of the peer works, else why not (missing binary or its error text)."""
    if shutil.which(cmd[0]) is None:
        return f"not installed ({cmd[0]} not on PATH)"
    outcome = commands.run(cmd, timeout=60)
    return "" if outcome.ok else outcome.error


def import_podman_image(tar: Path) -> str:
    """'' when `podman import` of the shared rootfs tarball worked, else its error."""
    if shutil.which("podman") is None:
        return "not installed (podman not on PATH)"
    outcome = commands.run(["podman", "import", str(tar), PODMAN_IMAGE], timeout=120)
    return "" if outcome.ok else outcome.error


def remove_podman_image() -> None:
    if shutil.which("podman") is not None:
        commands.quiet(["podman", "rmi", "-f", PODMAN_IMAGE])


def start_podman_sleepers(podman: Podman, count: int) -> list[str]:
    """Start `count` detached podman `sleep` containers; their names. Raises on error."""
    names = []
    for _ in range(count):
        name = podman.new_name()
        outcome = commands.run(podman.detached(name, "sleep", "100000"))
        if not outcome.ok:
            raise RuntimeError(f"`podman run -d` {outcome.error}")
        names.append(name)
    return names
