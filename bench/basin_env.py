"""basin under test: its own BASIN_ROOT/BASIN_RUN in a temp dir, the busybox image, and a
cleanup that leaves no container, network, mount or supervisor behind."""

from __future__ import annotations

import contextlib
import importlib
import os
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import commands, rootfs

REPO = Path(__file__).resolve().parent.parent
IMAGE = "busybox"
NETWORK = "benchnet"
SUBNET = "10.234.250.0/24"


def basin_command() -> list[str]:
    """What a user runs: the compiled client scripts/setup installs as `basin` (nox's bench
    session builds it into its venv as basin-client), else the venv's `basin` console script,
    else `python -m basin` from this tree. BENCH_BASIN (e.g. "/opt/venv/bin/basin") names
    another command. Never a pyenv shim: it is a bash script that costs ~20 ms a call."""
    override = os.environ.get("BENCH_BASIN", "").strip()
    if override:
        return shlex.split(override)
    bindir = Path(sys.executable).parent
    for name in ("basin-client", "basin"):
        if sys.prefix != sys.base_prefix and (bindir / name).exists():
            return [str(bindir / name)]
    return [sys.executable, "-m", "basin"]


@dataclass
class BasinEnv:
    state: Path
    problem: str = ""
    names: list[str] = field(default_factory=list)
    network: str = ""

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "BASIN_ROOT": str(self.state / "root"),
            "BASIN_RUN": str(self.state / "run"),
        }

    def cmd(self, *args: str) -> list[str]:
        return [*basin_command(), *args]

    def run(self, *args: str, timeout: float = commands.DEFAULT_TIMEOUT) -> commands.Outcome:
        return commands.run(self.cmd(*args), env=self.env, cwd=REPO, timeout=timeout)

    def new_name(self) -> str:
        name = f"bench{len(self.names)}x{os.getpid()}"
        self.names.append(name)
        return name

    def detached(self, name: str, *args: str) -> commands.Outcome:
        """`basin run -d --name NAME --network none busybox ARGS`."""
        return self.run("run", "-d", "--name", name, "--network", "none", IMAGE, *args)

    def start_sleepers(self, count: int) -> list[float]:
        """Start `count` detached `sleep` containers; their run -d times in ms. Raises on error."""
        times = []
        for _ in range(count):
            outcome = self.detached(self.new_name(), "sleep", "100000")
            if not outcome.ok:
                raise RuntimeError(f"`basin run -d` {outcome.error}")
            times.append(outcome.seconds * 1000)
        return times

    # --- image --------------------------------------------------------------
    def prepare(self, tar: Path) -> None:
        """Import the busybox image; remember basin's error instead of raising."""
        (self.state / "root").mkdir(parents=True, exist_ok=True)
        (self.state / "run").mkdir(parents=True, exist_ok=True)
        image_tar = self.state / "basin-busybox.tar"
        builder = _busybox_builder()
        if builder is not None:
            try:
                builder(image_tar)
            except Exception as exc:
                self.problem = f"basin.busybox.build failed: {exc!r}"[:240]
                return
        else:
            shutil.copy2(tar, image_tar)
        outcome = self.run("image", "import", str(image_tar), IMAGE)
        if not outcome.ok:
            self.problem = f"`basin image import` {outcome.error}"
            return
        # basin's normal state once anything ran: a supervisor up (`ps` is then answered by
        # it; without one, the compiled client hands `ps` to the Python CLI, which reads disk)
        outcome = self.run("supervisor", "start")
        if not outcome.ok:
            self.problem = f"`basin supervisor start` {outcome.error}"

    def ensure_network(self) -> str:
        if not self.network:
            outcome = self.run("network", "create", "--subnet", SUBNET, NETWORK)
            if not outcome.ok:
                raise RuntimeError(f"`basin network create` {outcome.error}")
            self.network = NETWORK
        return self.network

    # --- supervisor ---------------------------------------------------------
    def supervisor_pid(self) -> int | None:
        try:
            pid = int((self.state / "run" / "supervisor.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if Path(f"/proc/{pid}").exists() else None

    def remove(self, names: Sequence[str]) -> None:
        for name in names:
            self.run("rm", "-f", name, timeout=60)
            if name in self.names:
                self.names.remove(name)

    def cleanup(self) -> None:
        self.remove(list(self.names))
        if self.network:
            self.run("network", "rm", self.network, timeout=60)
            self.network = ""

    def teardown(self) -> None:
        """Stop the supervisor this run started (by its pid), undo its mounts, delete state."""
        self.cleanup()
        pid = self.supervisor_pid()
        if pid is not None and b"basin" in _cmdline(pid):
            _terminate(pid)
        for mount in _mounts_under(self.state):
            commands.quiet(["umount", "-l", mount])
        shutil.rmtree(self.state, ignore_errors=True)


def _busybox_builder() -> Callable[[Path], object] | None:
    """basin.busybox.build(out_tar), once the image helper has written it."""
    sys.path.insert(0, str(REPO))
    try:
        module = importlib.import_module("basin.busybox")
    except Exception:
        return None
    finally:
        sys.path.remove(str(REPO))
    build = getattr(module, "build", None)
    return build if callable(build) else None


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _terminate(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    for _ in range(50):
        if not Path(f"/proc/{pid}").exists():
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _mounts_under(top: Path) -> list[str]:
    prefix = str(top.resolve())
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(point)
    return sorted(found, key=len, reverse=True)


def make_rootfs_tar(workdir: Path) -> Path:
    """The tarball podman imports, and basin too until basin.busybox exists."""
    root = rootfs.build_rootfs(workdir / "rootfs")
    return rootfs.write_tar(root, workdir / "busybox-rootfs.tar")
