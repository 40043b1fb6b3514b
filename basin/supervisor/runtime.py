"""Container lifecycle inside the supervisor: create, start, watch, stop, remove."""

from __future__ import annotations

import array
import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
import trio

from basin import logfile, records, spec, storage
from basin.cgroups import CgroupBackend, Limits
from basin.errors import BasinError, Conflict
from basin.paths import Paths
from basin.records import EXITED, RUNNING, STOPPED, Container
from basin.supervisor.console import Console
from basin.supervisor.events import Events
from basin.supervisor.frames import ClientOutput
from basin.supervisor.logwriter import JsonLogWriter
from basin.supervisor.networking import Networks
from basin.supervisor.zygote_client import Zygote
from basin.zygote import exit_code_of

if TYPE_CHECKING:
    from basin.image import Image

log = structlog.get_logger()

# a partial line (a prompt) is written to the log once the container is quiet this long
PARTIAL_FLUSH_S = 0.05
# after an OOM event, when to read the kill counter again (seconds after the previous look)
OOM_RECHECK_S = (0, 0.01, 0.05, 0.2, 1.0)


def now_iso() -> str:
    return logfile.timestamp()


@dataclass
class Live:
    """What the supervisor holds for a running container besides its record."""

    pidfd: int
    exited: trio.Event = field(default_factory=trio.Event)
    stop_requested: str = ""
    done: trio.Event = field(default_factory=trio.Event)  # output drained, record final
    # a foreground `run --rm` client removes the container itself once it has read the log
    client_removes: bool = False
    term_signal: int = 0  # the signal that ended it, 0 if it exited
    console: Console | None = None  # its PTY (-t) or stdin pipe (-i), for attached clients
    output: ClientOutput | None = None  # the compiled client of a foreground run


class Runtime:
    def __init__(self, paths: Paths, zygote: Zygote, cgroups: CgroupBackend | None) -> None:
        self.paths = paths
        self.zygote = zygote
        self.cgroups = cgroups
        self.cgroups_error = ""  # why self.cgroups is None, for the error a limit then gets
        self.containers: dict[str, Container] = {}
        self.live: dict[str, Live] = {}
        self.nursery: trio.Nursery | None = None
        self.events = Events()
        self.networks = Networks(paths, self.events)
        self._sync_limiter: trio.CapacityLimiter | None = None
        self._oom_fds: dict[str, int] = {}  # opened by start() for _watch_oom to take

    # ---- lookup -----------------------------------------------------------------------
    def load(self) -> None:
        for ctr in records.load_all(self.paths, warn=False):
            held = ctr.id in self.zygote.held  # readopt() takes it back, exited or not
            if ctr.state.status == RUNNING and not held and not records.alive(ctr.state):
                # its supervisor died and so did it, and no zygote kept its status (or the
                # zygote wrote it to the record before it went too)
                ctr.state.status = EXITED
                ctr.state.exit_code = (
                    ctr.state.exit_code if ctr.state.exit_code is not None else 255
                )
                ctr.state.error = "exited while no supervisor was running"
                records.save_state(self.paths, ctr)
            self.containers[ctr.id] = ctr

    def find(self, ref: str) -> Container:
        return records.resolve(list(self.containers.values()), ref)

    def name_taken(self, name: str) -> bool:
        return any(c.name == name for c in self.containers.values())

    # ---- create -----------------------------------------------------------------------
    async def create(self, req: dict[str, Any]) -> Container:
        from basin import image as images

        argv = req.get("argv") or ["/bin/sh"]
        if not all(isinstance(a, str) for a in argv) or not argv[0]:
            raise BasinError("the command must not be empty")
        name = spec.validate_name(req["name"]) if req.get("name") else spec.random_name()
        if self.name_taken(name):
            raise Conflict(f"the container name {name!r} is already in use")
        cid = spec.new_id()
        tty = bool(req.get("tty"))

        def check() -> tuple[
            Image, list[dict[str, Any]], str, dict[str, str], Limits, str, list[dict[str, Any]]
        ]:
            # The image and network records are on disk (and an image tarball is imported on
            # first use): one thread hop for every check, made in the order errors are told.
            img = images.resolve(self.paths, str(req.get("image", "")))
            volumes = [spec.parse_volume(v) for v in req.get("volumes", [])]
            hostname = spec.validate_hostname(req["hostname"]) if req.get("hostname") else cid[:12]
            env = spec.container_env(spec.parse_env(req.get("env", [])), hostname, tty)
            limits = Limits.from_json(req.get("limits"))
            self._check_limits(limits)
            network, ports = self.networks.check_request(req)
            return img, volumes, hostname, env, limits, network, ports

        img, volumes, hostname, env, limits, network, ports = await trio.to_thread.run_sync(check)
        if self.name_taken(name):  # taken by another run meanwhile
            raise Conflict(f"the container name {name!r} is already in use")
        config = {
            "id": cid,
            "name": name,
            "image": img.name,
            "rootfs": str(img.rootfs),
            "argv": argv,
            "env": env,
            "workdir": req.get("workdir") or "/",
            "hostname": hostname,
            "volumes": volumes,
            "tty": tty,
            "interactive": bool(req.get("interactive")),
            "auto_remove": bool(req.get("auto_remove")),
            "stop_timeout": spec.validate_stop_timeout(req.get("stop_timeout", 10)),
            "limits": limits.to_json(),
            "log_opts": logfile.checked_log_opts(req.get("log_opts")),
            "network": network,
            "ports": ports,
            "created": now_iso(),
        }
        ctr = Container(id=cid, name=name, config=config)
        d = self.paths.container(cid)
        d.mkdir(parents=True)
        for sub in ("upper", "work", "merged"):
            (d / sub).mkdir()
        # no fsync on the loop: a worker thread makes both durable meanwhile
        records.save_config(self.paths, ctr, durable=False)
        records.save_state(self.paths, ctr)
        assert self.nursery is not None
        self.nursery.start_soon(self._sync_new, ctr)
        self.containers[cid] = ctr
        self.events.emit("container.created", container=cid[:12], name=name, image=img.name)
        return ctr

    async def _sync_new(self, ctr: Container) -> None:
        if self._sync_limiter is None:
            # its own few threads: a burst of fsyncs must not hold up the work of other threads
            self._sync_limiter = trio.CapacityLimiter(2)
        try:
            await trio.to_thread.run_sync(
                records.sync_new, self.paths, ctr.id, limiter=self._sync_limiter
            )
        except OSError as e:
            log.warning("container.sync_failed", container=ctr.short_id, error=str(e))

    # ---- start ------------------------------------------------------------------------
    async def start(
        self,
        ctr: Container,
        client_removes: bool = False,
        winsize: tuple[int, int] | None = None,
        output: ClientOutput | None = None,
    ) -> Live:
        """Spawn, configure, release; return once the command has exec'd (or raise)."""
        assert self.nursery is not None
        c = ctr.config
        d = self.paths.container(ctr.id)
        # before any fd exists: a failure here leaves only the record, which run removes
        storage_mode = storage.mode_for(self.paths.containers)
        lower = c["rootfs"]
        if storage_mode == "copy":
            lower = str(d / "rootfs")
            if not os.path.isdir(lower):  # a restart of the same container keeps its copy
                try:
                    await trio.to_thread.run_sync(storage.copy_tree, Path(c["rootfs"]), Path(lower))
                except OSError as e:
                    raise BasinError(f"cannot copy the image for {ctr.name}: {e}") from None
        go_r, go_w = os.pipe2(os.O_CLOEXEC)
        st_r, st_w = os.pipe2(os.O_CLOEXEC)
        max_size, max_files = logfile.rotation(ctr.config.get("log_opts"))
        writer = JsonLogWriter(self.paths.container_log(ctr.id), max_size, max_files)
        stdio = _Stdio(bool(c.get("tty")), bool(c.get("interactive")))
        child_fds = [*stdio.child_fds, go_r, st_w]
        zspec = {
            "id": ctr.id,
            # keep.*: our ends of its pipes, which the zygote keeps a copy of so that they
            # stay open if we die (see readopt)
            "fds": [*stdio.names, "go", "status", *stdio.keep_names],
            "state": str(d / "state.json"),
            "rootfs": {
                "lower": lower,
                "upper": str(d / "upper"),
                "work": str(d / "work"),
                "merged": str(d / "merged"),
                "overlay": storage_mode == "overlay",
            },
            "volumes": c["volumes"],
            "hostname": c["hostname"],
            "argv": c["argv"],
            "env": c["env"],
            "workdir": c["workdir"],
            "tty": stdio.tty,
            "winsize": list(winsize or (24, 80)),
            "netns": c["network"] != "host",
            "files": self.networks.etc_files(ctr),
        }
        pid = 0
        pidfd = -1

        async def spawn() -> None:
            nonlocal pid
            try:
                pid = await self.zygote.spawn(zspec, [*child_fds, *stdio.keep_fds])
            finally:
                for fd in child_fds:
                    os.close(fd)

        try:
            # PID 1 mounts its root as soon as it exists, before the network setup below
            # fills these in: they must exist by then
            _touch_all(zspec["files"].values())
            # The groups and the spawn need nothing of each other, so they overlap; PID 1
            # joins the groups below, before it is let go.
            try:
                async with trio.open_nursery() as n:
                    if self.cgroups is not None:
                        n.start_soon(self._create_cgroups, ctr)
                    n.start_soon(spawn)
            except BaseExceptionGroup as group:
                raise _first_leaf(group) from None  # callers expect the BasinError itself
            pidfd = os.pidfd_open(pid)
            ctr.state.pid = pid
            ctr.state.start_ticks = records.start_ticks(pid)
            # Both need only the pid, so they overlap; the first cgroup.procs write can wait
            # ~10 ms for an RCU grace period (v1 here), which must not block the trio loop.
            try:
                async with trio.open_nursery() as n:
                    if self.cgroups is not None:
                        n.start_soon(trio.to_thread.run_sync, self.cgroups.add, ctr.id, pid)
                    n.start_soon(self._setup_network, ctr, pid)
            except BaseExceptionGroup as group:
                raise _first_leaf(group) from None  # callers expect the BasinError itself
            os.write(go_w, b"g")
            await stdio.receive_master()
            if stdio.master >= 0:
                self.zygote.hold(ctr.id, {"master": stdio.master})
        except BaseException:
            os.close(go_w)  # the child reads EOF and gives up
            if pid:
                # the zygote is its parent: it reaps it and tells us, then forgets it
                with contextlib.suppress(ProcessLookupError):
                    if pidfd >= 0:
                        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                    else:
                        os.kill(pid, signal.SIGKILL)
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    await self.zygote.exit_status(ctr.id, pid)
                self.zygote.release(ctr.id)
            for fd in (*stdio.parent_fds(), st_r, pidfd, self._oom_fds.pop(ctr.id, -1)):
                if fd >= 0:
                    os.close(fd)
            writer.close()
            await self._release(ctr)
            raise
        os.close(go_w)
        live = Live(pidfd, client_removes=client_removes, console=stdio.console(), output=output)
        self._on_stdin_eof(ctr, live)
        self.live[ctr.id] = live
        status = await _read_all(st_r)
        os.close(st_r)
        ctr.state.started_at = now_iso()
        ctr.state.status = RUNNING
        failure: dict[str, Any] | None = json.loads(status) if status else None
        if failure:
            ctr.state.error = failure["error"]
        records.save_state(self.paths, ctr)
        self.nursery.start_soon(self._watch, ctr, live, stdio.out_r, stdio.err_r, writer)
        if failure:
            self.events.emit(
                "container.start_failed",
                "warning",
                container=ctr.short_id,
                name=ctr.name,
                error=failure["error"],
            )
            await live.done.wait()
            raise BasinError(failure["error"], int(failure["code"]))
        self.events.emit("container.started", container=ctr.short_id, name=ctr.name, pid=pid)
        return live

    async def _create_cgroups(self, ctr: Container) -> None:
        """Make the container's groups, read back what the kernel holds and open the OOM
        watch's fd (for _watch_oom): one thread hop."""
        backend = self.cgroups
        assert backend is not None

        def create() -> tuple[Limits, int | None]:
            backend.create(ctr.id, Limits.from_json(ctr.config["limits"]))
            enforced = backend.enforced(ctr.id)
            try:
                return enforced, backend.oom_fd(ctr.id)
            except (BasinError, OSError):
                return enforced, None  # _watch_oom tries again, and says why it failed

        enforced, oom_fd = await trio.to_thread.run_sync(create)
        ctr.state.limits_enforced = enforced.to_json()
        if oom_fd is not None:
            self._oom_fds[ctr.id] = oom_fd

    async def _watch(
        self, ctr: Container, live: Live, out_r: int, err_r: int, writer: JsonLogWriter
    ) -> None:
        try:
            async with trio.open_nursery() as n:
                console = live.console
                tap = console.broadcast if console is not None and console.tty else None
                for fd, stream in ((out_r, "stdout"), (err_r, "stderr")):
                    if fd >= 0:  # a PTY's output is all "stdout", as in docker
                        n.start_soon(_relay, fd, stream, writer, tap, live.output)
                n.start_soon(self._watch_oom, ctr, live)
                if live.pidfd >= 0:  # -1: re-adopted after it had ended
                    await trio.lowlevel.wait_readable(live.pidfd)
                # pidfd works for a process that is not our child; the zygote, its parent,
                # reaps it and sends the status
                status = await self.zygote.exit_status(ctr.id, ctr.state.pid)
                if status is None:
                    ctr.state.error = "exit status unknown: the zygote that reaped it is gone"
                    status = 255 << 8
                live.term_signal = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
                live.exited.set()
                if live.output is not None:
                    live.output.unbound()
        finally:
            writer.close()
            if live.pidfd >= 0:
                os.close(live.pidfd)
            if live.console is not None:
                live.console.close()
        await self._finish(ctr, live, exit_code_of(status))
        # recorded: only now may the zygote forget its status and fds
        self.zygote.release(ctr.id)

    async def _finish(self, ctr: Container, live: Live, code: int) -> None:
        s = ctr.state
        s.exit_code = code
        s.finished_at = now_iso()
        s.status = STOPPED if live.stop_requested else EXITED
        s.stopped_by = live.stop_requested
        await self._teardown_network(ctr)
        # The kernel counts the kill before the process dies: an OOM the watcher had no time
        # to see is caught here. A cgroup file is answered from kernel memory, as /proc is:
        # no thread needed to read one.
        if self.cgroups is not None and _oom_killed(self.cgroups, ctr.id):
            await self._note_oom(ctr, "exit")
        records.save_state(self.paths, ctr)
        self.live.pop(ctr.id, None)
        self.events.emit(
            "container.exited",
            container=ctr.short_id,
            name=ctr.name,
            exit_code=code,
            signal=_signal_name(live.term_signal),
            oom_killed=s.oom_killed,
            stopped_by=s.stopped_by or None,
        )
        if s.stopped_by:
            self.events.emit(
                "container.stopped",
                container=ctr.short_id,
                name=ctr.name,
                stopped_by=s.stopped_by,
                exit_code=code,
            )
        if ctr.config.get("auto_remove") and not live.client_removes:
            await self.remove(ctr, force=False)  # its groups with it
        elif self.cgroups is not None:
            # nothing that reports the exit waits for the groups to go; remove() removes
            # them too (idempotent), should it come first
            assert self.nursery is not None
            self.nursery.start_soon(self._remove_groups, ctr)
        live.done.set()

    async def _remove_groups(self, ctr: Container) -> None:
        assert self.cgroups is not None
        with trio.CancelScope(shield=True):  # a supervisor that is stopping removes them too
            try:
                await trio.to_thread.run_sync(self.cgroups.remove, ctr.id)
            except BasinError as e:
                log.warning("container.cgroups_remove_failed", container=ctr.short_id, error=str(e))

    async def _release(self, ctr: Container) -> None:
        """Give back the kernel objects a container holds while it runs."""
        await self._teardown_network(ctr)
        if self.cgroups is not None:
            await trio.to_thread.run_sync(self.cgroups.remove, ctr.id)

    # ---- re-adoption ------------------------------------------------------------------
    def readopt(self) -> int:
        """Take back what an earlier supervisor left: every container whose record says
        running, with the fds and exit status the zygote kept. One that ended meanwhile is
        drained and finished with its real exit code. Returns how many were taken back."""
        assert self.nursery is not None
        held, self.zygote.held = self.zygote.held, {}
        for cid, h in held.items():
            ctr = self.containers.get(cid)
            if ctr is None or ctr.state.status != RUNNING or ctr.state.pid != h.pid:
                for fd in h.fds.values():  # finished (or removed) before its release
                    os.close(fd)
                self.zygote.release(cid)
                continue
            self._adopt(ctr, h.fds)
        for ctr in list(self.containers.values()):
            if ctr.state.status == RUNNING and ctr.id not in self.live:
                # no zygote kept it (it died too): its output is lost, but stop and rm work
                self._adopt(ctr, {})
            elif ctr.state.status in (EXITED, STOPPED) and ctr.config.get("auto_remove"):
                # --rm, but its supervisor died before removing it (a foreground run's removal
                # waits for its client to let go of the log): remove it now, as docker does
                self.nursery.start_soon(self.remove, ctr, False)
        return len(self.live)

    def _adopt(self, ctr: Container, fds: dict[str, int]) -> None:
        assert self.nursery is not None
        c = ctr.config
        pidfd = -1
        with contextlib.suppress(ProcessLookupError):
            pidfd = os.pidfd_open(ctr.state.pid)
        if pidfd >= 0 and not records.alive(ctr.state):
            os.close(pidfd)  # a re-used pid: ours is gone
            pidfd = -1
        out_r, err_r = fds.pop("stdout", -1), fds.pop("stderr", -1)
        console: Console | None = None
        if c.get("tty"):
            master = fds.pop("master", None)
            if master is not None:
                out_r = os.dup(master)  # the relay's own copy, as in start()
            console = Console(master, tty=True, interactive=bool(c.get("interactive")))
        elif c.get("interactive"):
            console = Console(fds.pop("stdin", None), tty=False)
        for fd in fds.values():
            os.close(fd)
        max_size, max_files = logfile.rotation(c.get("log_opts"))
        writer = JsonLogWriter(self.paths.container_log(ctr.id), max_size, max_files)
        live = Live(pidfd=pidfd, console=console)
        self._on_stdin_eof(ctr, live)
        self.live[ctr.id] = live
        self.nursery.start_soon(self._watch, ctr, live, out_r, err_r, writer)
        self.events.emit(
            "container.readopted",
            container=ctr.short_id,
            name=ctr.name,
            pid=ctr.state.pid,
            running=pidfd >= 0,
            output=out_r >= 0,
        )

    def _on_stdin_eof(self, ctr: Container, live: Live) -> None:
        """-i: when a client's stdin ends, the zygote closes its copy of the container's stdin
        too, or the container would never read EOF."""
        if live.console is not None and not live.console.tty:
            live.console.on_input_eof = lambda: self.zygote.drop(ctr.id, ["stdin"])

    # ---- network ----------------------------------------------------------------------
    async def _setup_network(self, ctr: Container, pid: int) -> None:
        """Connect the container (still waiting on its go pipe) to its network."""
        await self.networks.setup(ctr, pid)

    async def _teardown_network(self, ctr: Container) -> None:
        """Give back the address, veth and port rules. Idempotent."""
        await self.networks.teardown(ctr)

    # ---- limits -----------------------------------------------------------------------
    def _check_limits(self, limits: Limits) -> None:
        """Refuse limits this host cannot enforce before anything of the container exists.
        Blocking (reads the cgroup tree): call in a worker thread."""
        if limits == Limits():
            return
        if self.cgroups is None:
            given = limits.to_json()
            asked = ", ".join(k for k, v in given.items() if v is not None and k != "cpu_period")
            raise BasinError(
                f"cannot enforce the resource limits ({asked}): the supervisor runs without "
                f"cgroups ({self.cgroups_error or 'no cgroup backend'})"
            )
        self.cgroups.check(limits)

    # ---- out of memory ----------------------------------------------------------------
    async def _watch_oom(self, ctr: Container, live: Live) -> None:
        """Notice an OOM kill by event while the container runs. The kernel kills a process
        of the group (not necessarily PID 1), so a container can be OOM-killed and run on."""
        if self.cgroups is None:
            return
        backend = self.cgroups

        def open_watch() -> tuple[int | None, bool]:
            # A kill before the fd was registered shows in the counter: look once first, in
            # the same thread hop.
            fd = backend.oom_fd(ctr.id)
            return fd, fd is not None and _oom_killed(backend, ctr.id)

        # start() opened it before PID 1 joined the groups: no kill can predate it
        fd, killed = self._oom_fds.pop(ctr.id, None), False
        if fd is None:  # a re-adopted container, or start() could not open it
            try:
                fd, killed = await trio.to_thread.run_sync(open_watch)
            except (BasinError, OSError) as e:
                log.warning("container.oom_watch_failed", container=ctr.short_id, error=str(e))
                return
        if fd is None:
            return
        try:
            async with trio.open_nursery() as n:
                n.start_soon(_cancel_when, live.exited, n.cancel_scope)
                # Each wake-up may be another memory event (v2), or the group going away
                # (v1), so the counter decides.
                while not killed:
                    await trio.lowlevel.wait_readable(fd)
                    with contextlib.suppress(BlockingIOError):
                        os.read(fd, 4096)  # drain: eventfd counter, or inotify events
                    # v1 signals the OOM before its killer has chosen and counted a victim
                    # (seen here as a miss under CPU load): look again for a moment; an OOM
                    # that ends without a kill (memory freed meanwhile) leaves the counter be
                    for delay in OOM_RECHECK_S:
                        await trio.sleep(delay)
                        killed = await trio.to_thread.run_sync(_oom_killed, backend, ctr.id)
                        if killed:
                            break
                await self._note_oom(ctr, "event")
                n.cancel_scope.cancel()
        finally:
            trio.lowlevel.notify_closing(fd)
            os.close(fd)

    async def _note_oom(self, ctr: Container, noticed: str) -> None:
        """Record an OOM kill once; ``noticed`` says how: by "event" or at "exit"."""
        if ctr.state.oom_killed:
            return
        ctr.state.oom_killed = True
        await trio.to_thread.run_sync(records.save_state, self.paths, ctr)
        self.events.emit(
            "container.oom", "warning", container=ctr.short_id, name=ctr.name, noticed=noticed
        )

    # ---- stop / remove ----------------------------------------------------------------
    async def stop(self, ctr: Container, timeout: int | None, by: str = "stop") -> None:
        live = self.live.get(ctr.id)
        if live is None:
            return
        live.stop_requested = live.stop_requested or by
        grace = ctr.config.get("stop_timeout", 10) if timeout is None else timeout
        self.events.emit(
            "container.stopping", container=ctr.short_id, name=ctr.name, by=by, timeout=grace
        )
        if grace > 0:
            _signal(live, signal.SIGTERM)
            with trio.move_on_after(grace):
                await live.exited.wait()
        if not live.exited.is_set():
            _signal(live, signal.SIGKILL)
        await live.done.wait()

    async def remove(self, ctr: Container, force: bool) -> None:
        if ctr.id in self.live:
            if not force:
                raise Conflict(
                    f"cannot remove running container {ctr.name}: stop it first or use rm -f"
                )
            await self.stop(ctr, 0, by="rm -f")
        if ctr.id not in self.containers:
            return  # removed meanwhile (an --rm container that a stop just ended)
        del self.containers[ctr.id]
        await self._teardown_network(ctr)
        backend = self.cgroups

        def remove_all() -> None:
            if backend is not None:
                backend.remove(ctr.id)  # a no-op unless releasing them failed at its exit
            _remove_tree(self.paths.container(ctr.id))

        await trio.to_thread.run_sync(remove_all)  # one thread hop for both
        self.events.emit("container.removed", container=ctr.short_id, name=ctr.name)


def _signal(live: Live, sig: int) -> None:
    if live.exited.is_set() or live.pidfd < 0:
        return  # reaped already (its pidfd may be closed), or re-adopted after it ended
    with contextlib.suppress(ProcessLookupError):
        signal.pidfd_send_signal(live.pidfd, sig)


def _signal_name(sig: int) -> str | None:
    if not sig:
        return None
    try:
        return signal.Signals(sig).name
    except ValueError:
        return str(sig)


async def _cancel_when(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


def _oom_killed(backend: CgroupBackend, cid: str) -> bool:
    try:
        return backend.oom_killed(cid)
    except (BasinError, OSError):
        return False  # the group is gone: the container is on its way out


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _touch_all(paths: Iterable[str]) -> None:
    for path in paths:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))


def _remove_tree(path: os.PathLike[str]) -> None:
    for attempt in range(50):
        try:
            shutil.rmtree(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY or attempt == 49:
                raise
            time.sleep(0.02)


async def _read_all(fd: int) -> bytes:
    os.set_blocking(fd, False)
    chunks: list[bytes] = []
    while True:
        await trio.lowlevel.wait_readable(fd)
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            continue
        if not data:
            return b"".join(chunks)
        chunks.append(data)


async def _relay(
    fd: int,
    stream: str,
    writer: JsonLogWriter,
    tap: Callable[[bytes], None] | None = None,
    output: ClientOutput | None = None,
) -> None:
    """Copy a container's output to its log (and to `tap`: attached clients; to `output`: the
    compiled client of a foreground run) until EOF."""
    os.set_blocking(fd, False)
    try:
        while True:
            if writer.pending(stream):
                with trio.move_on_after(PARTIAL_FLUSH_S) as scope:
                    await trio.lowlevel.wait_readable(fd)
                if scope.cancelled_caught:
                    writer.flush(stream)
                    continue
            else:
                await trio.lowlevel.wait_readable(fd)
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue
            except OSError as e:
                if e.errno == errno.EIO:
                    return  # a PTY master once no process holds the slave: its EOF
                raise
            if not data:
                return
            writer.feed(stream, data)
            if tap is not None:
                tap(data)
            if output is not None and output.push(stream, data):
                await output.wait_room()
    finally:
        os.close(fd)


class _Stdio:
    """A container's standard streams as the supervisor sets them up.

    -t: the container opens a PTY from its own devpts (so `tty` says /dev/pts/0) and sends
    us the master over a "console" socket. Otherwise stdout and stderr are pipes, and stdin is
    a pipe we keep the write end of (-i) or /dev/null."""

    def __init__(self, tty: bool, interactive: bool) -> None:
        self.tty = tty
        self.interactive = interactive
        self.out_r = self.err_r = -1
        self.stdin_w = -1
        self.master = -1
        self._sock: socket.socket | None = None
        if tty:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            self._sock = ours
            self.names = ["console"]
            self.child_fds = [theirs.detach()]
            self.keep_names: list[str] = []  # the master comes later: Runtime.start holds it
            self.keep_fds: list[int] = []
            return
        self.out_r, out_w = os.pipe2(os.O_CLOEXEC)
        self.err_r, err_w = os.pipe2(os.O_CLOEXEC)
        if interactive:
            stdin_r, self.stdin_w = os.pipe2(os.O_CLOEXEC)
        else:
            stdin_r = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        self.names = ["stdin", "stdout", "stderr"]
        self.child_fds = [stdin_r, out_w, err_w]
        self.keep_names = ["keep.stdout", "keep.stderr"]
        self.keep_fds = [self.out_r, self.err_r]
        if interactive:
            self.keep_names.append("keep.stdin")
            self.keep_fds.append(self.stdin_w)

    async def receive_master(self) -> None:
        """Take the PTY master the container sends once its root is ready. A container whose
        setup failed sends nothing: the socket's EOF, and its status pipe says why."""
        if self._sock is None:
            return
        sock = trio.socket.from_stdlib_socket(self._sock)
        self._sock = None
        with sock:
            _msg, ancdata, _flags, _addr = await sock.recvmsg(
                1, socket.CMSG_SPACE(4), socket.MSG_CMSG_CLOEXEC
            )
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS and len(data) >= 4:
                self.master = array.array("i", data[:4])[0]
        if self.master >= 0:
            # the relay reads its own copy: the console may close the other under a writer
            self.out_r = os.dup(self.master)

    def parent_fds(self) -> list[int]:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        return [fd for fd in (self.out_r, self.err_r, self.stdin_w, self.master) if fd >= 0]

    def console(self) -> Console | None:
        if self.tty:
            master = self.master if self.master >= 0 else None
            return Console(master, tty=True, interactive=self.interactive)
        if self.interactive:
            return Console(self.stdin_w, tty=False)
        return None
