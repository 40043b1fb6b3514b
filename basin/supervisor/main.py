"""`basin supervisor`: one trio process per BASIN_RUN, the subreaper of every container."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
from typing import Any

import structlog
import trio

from basin import __version__
from basin import syscalls as sc
from basin.cgroups import CgroupBackend
from basin.errors import BasinError, Conflict
from basin.paths import Paths
from basin.records import Container
from basin.supervisor import attach, logconfig
from basin.supervisor.control import ControlServer, Handler, Reply
from basin.supervisor.events import Events
from basin.supervisor.frames import ClientOutput
from basin.supervisor.oneshot import OneShot
from basin.supervisor.runtime import Live, Runtime
from basin.supervisor.zygote_client import Zygote

log = structlog.get_logger()


def _cgroup_backend() -> tuple[CgroupBackend | None, str]:
    """The host's cgroup backend, or None and why not (containers then run unlimited, and a
    run that asks for a limit is refused)."""
    try:
        from basin.cgroups import detect

        return detect(), ""
    except (ImportError, OSError, BasinError) as e:
        log.warning("cgroups.unavailable", error=str(e))
        return None, str(e)


class Supervisor:
    def __init__(self, paths: Paths, runtime: Runtime) -> None:
        self.paths = paths
        self.rt = runtime
        self.cancel: trio.CancelScope | None = None

    def handlers(self) -> dict[str, Handler]:
        return {
            "ping": self.ping,
            "run": self.run,
            "stop": self.stop,
            "rm": self.rm,
            "stats": self.stats,
            "shutdown": self.shutdown,
            "network.create": self.network_create,
            "network.rm": self.network_rm,
            "attach": self.attach,
            "resize": self.resize,
            "cli": OneShot(self).handle,
        }

    async def ping(self, req: dict[str, Any], reply: Reply) -> None:
        await reply.send({"type": "result", "pid": os.getpid(), "version": __version__})

    async def run(self, req: dict[str, Any], reply: Reply) -> None:
        if req.get("attach") is not None:
            await self._run_attached(req, reply)
            return
        ctr, live = await self.launch(req, bool(req.get("wait") and req.get("auto_remove")))
        await reply.send({"type": "started", "id": ctr.id, "name": ctr.name})
        if req.get("wait"):
            await live.done.wait()
            await reply.send({"type": "result", "id": ctr.id, "exit_code": ctr.state.exit_code})
            if live.client_removes:
                # the client reads the log after the result: remove once it let go of the FIFO
                await reply.wait_closed(timeout=30)
                await self.rt.remove(ctr, force=False)
        else:
            await reply.send({"type": "result", "id": ctr.id})

    async def _run_attached(self, req: dict[str, Any], reply: Reply) -> None:
        """run -i/-t in the foreground: the client's FIFOs are opened before anything is made
        and get the container's output from its first byte."""
        size = attach.winsize(req)
        client = attach.open_client(self.paths, req)
        try:
            # without a PTY the client reads stdout/stderr from the log: --rm must wait
            client_removes = bool(req.get("auto_remove") and not req.get("tty"))
            ctr, live = await self.launch(req, client_removes, winsize=size)
        except BaseException:
            attach.close_client(client)
            raise
        if live.console is not None:
            live.console.add(client)
        await reply.send({"type": "started", "id": ctr.id, "name": ctr.name})
        await attach.serve(ctr, live, client, reply)
        if live.client_removes:
            await live.done.wait()  # a detached or vanished client: remove once it exits
            await reply.wait_closed(timeout=30)
            await self.rt.remove(ctr, force=False)

    async def launch(
        self,
        req: dict[str, Any],
        client_removes: bool,
        winsize: tuple[int, int] | None = None,
        output: ClientOutput | None = None,
    ) -> tuple[Container, Live]:
        """Create and start a container; one that fails to start is cleaned up: a container
        that never ran is half-made and removed; one whose exec failed (126, 127) stays to be
        inspected, as in docker, unless --rm asked otherwise."""
        ctr = await self.rt.create(req)
        try:
            live = await self.rt.start(ctr, client_removes, winsize, output)
        except BasinError as e:
            if ctr.id in self.rt.containers and (e.code == 125 or ctr.config.get("auto_remove")):
                await self.rt.remove(ctr, force=True)
            raise
        return ctr, live

    async def attach(self, req: dict[str, Any], reply: Reply) -> None:
        ctr = self.rt.find(str(req.get("ref", "")))
        live = self.rt.live.get(ctr.id)
        if live is None:
            raise BasinError(f"cannot attach to stopped container {ctr.name}: start it first")
        size = attach.winsize(req)
        client = attach.open_client(self.paths, req)
        if live.console is not None:
            live.console.add(client)
            if size is not None:
                live.console.resize(*size, seq=attach.seq(req))
        await reply.send(
            {"type": "attached", "id": ctr.id, "name": ctr.name, "tty": ctr.config.get("tty")}
        )
        await attach.serve(ctr, live, client, reply)

    async def resize(self, req: dict[str, Any], reply: Reply) -> None:
        ctr = self.rt.find(str(req.get("ref", "")))
        live = self.rt.live.get(ctr.id)
        size = attach.winsize(req)
        if live is not None and live.console is not None and size is not None:
            live.console.resize(*size, seq=attach.seq(req))
        await reply.send({"type": "result"})

    async def _each(self, refs: list[str], action: Any) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = [{"ref": r} for r in refs]

        async def one(res: dict[str, Any]) -> None:
            try:
                ctr = self.rt.find(res["ref"])
                await action(ctr)
                res["id"] = ctr.id
            except BasinError as e:
                res["error"] = e.message

        async with trio.open_nursery() as n:
            for res in results:
                n.start_soon(one, res)
        return results

    async def stop(self, req: dict[str, Any], reply: Reply) -> None:
        await reply.send({"type": "result", "results": await self.stop_each(req)})

    async def stop_each(self, req: dict[str, Any]) -> list[dict[str, Any]]:
        t = req.get("timeout")
        timeout = None if t is None else int(t)
        return await self._each(list(req.get("refs", [])), lambda c: self.rt.stop(c, timeout))

    async def rm(self, req: dict[str, Any], reply: Reply) -> None:
        await reply.send({"type": "result", "results": await self.rm_each(req)})

    async def rm_each(self, req: dict[str, Any]) -> list[dict[str, Any]]:
        force = bool(req.get("force"))
        return await self._each(list(req.get("refs", [])), lambda c: self.rt.remove(c, force))

    async def stats(self, req: dict[str, Any], reply: Reply) -> None:
        from basin.supervisor.stats import sample

        rows = await sample(self.rt, list(req.get("refs", [])), bool(req.get("all")))
        await reply.send({"type": "result", "stats": rows})

    async def network_create(self, req: dict[str, Any], reply: Reply) -> None:
        rec = await self.rt.networks.create(req)
        await reply.send({"type": "result", "network": rec})

    async def network_rm(self, req: dict[str, Any], reply: Reply) -> None:
        # one at a time: each holds the driver's lock for its whole removal anyway
        results: list[dict[str, Any]] = []
        for ref in list(req.get("refs", [])):
            try:
                await self.rt.networks.remove(str(ref), self.rt.containers)
                results.append({"ref": ref})
            except BasinError as e:
                results.append({"ref": ref, "error": e.message})
        await reply.send({"type": "result", "results": results})

    async def shutdown(self, req: dict[str, Any], reply: Reply) -> None:
        running = [c for c in self.rt.containers.values() if c.id in self.rt.live]
        if running and not req.get("force"):
            names = ", ".join(c.name for c in running)
            raise Conflict(
                f"{len(running)} container(s) running ({names}): stop them or use --force"
            )
        async with trio.open_nursery() as n:
            for c in running:
                n.start_soon(self.rt.stop, c, 0, "supervisor stop")
        await reply.send({"type": "result"})
        self.rt.events.emit("supervisor.stopping", reason="request", forced=bool(running))
        assert self.cancel is not None
        self.cancel.cancel()

    async def main(self) -> None:
        server = ControlServer(self.paths, self.handlers())
        server.create_fifo()
        with trio.CancelScope() as self.cancel:
            async with trio.open_nursery() as nursery:
                self.rt.nursery = nursery
                nursery.start_soon(self.rt.zygote.run)
                self.rt.readopt()
                with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as sigs:
                    nursery.start_soon(server.serve, nursery)
                    self.rt.events.emit(
                        "supervisor.started",
                        version=__version__,
                        pid=os.getpid(),
                        cgroups=getattr(self.rt.cgroups, "name", None),
                        cgroup_layout=_cgroup_layout(),
                        containers=len(self.rt.containers),
                        readopted=len(self.rt.live),
                    )
                    logconfig.startup_done()
                    async for sig in sigs:
                        self.rt.events.emit("supervisor.stopping", reason=signal.Signals(sig).name)
                        self.cancel.cancel()


def _cgroup_layout() -> str | None:
    """v1, v2 or hybrid: how this host mounts its cgroups (None if it cannot be read)."""
    try:
        from plugins.cgroups.layout import host_layout

        return str(host_layout())
    except (ImportError, OSError, BasinError):
        return None


def _cleanup_run_dir(paths: Paths) -> None:
    for p in (paths.control, paths.pidfile):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)
    shutil.rmtree(paths.replies, ignore_errors=True)


def run(paths: Paths, foreground: bool) -> int:
    paths.ensure()
    lock = os.open(paths.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock)
        if foreground:
            raise BasinError(f"a supervisor is already running for {paths.run}") from None
        return 0  # another client started one first: that one serves us all
    try:
        logconfig.configure(paths.supervisor_log, foreground, events_path=paths.events_log)
    except BasinError:
        os.unlink(paths.lock)
        os.close(lock)
        raise
    if not foreground:
        logconfig.detach_stdio()  # from here on, everything we say is a JSON line in the log
    code = 0
    zygote: Zygote | None = None
    runtime: Runtime | None = None
    try:
        # the zygote, not us, is the containers' parent (it outlives us); as subreaper we
        # still inherit them if the zygote we started dies, and can reap them then
        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
        zygote = Zygote(paths)  # the one that kept the containers of a supervisor that died
        paths.pidfile.write_text(f"{os.getpid()}\n")
        cgroups, cgroups_error = _cgroup_backend()
        runtime = Runtime(paths, zygote, cgroups)
        runtime.cgroups_error = cgroups_error
        runtime.load()
        runtime.networks.reconcile(runtime.containers)
        trio.run(Supervisor(paths, runtime).main)
    except Exception as e:
        log.critical("supervisor.failed", error=str(e), exc_info=True)
        logconfig.startup_failed(str(e))
        code = 125
    finally:
        _cleanup_run_dir(paths)
        if zygote is not None:
            # containers still running stay with the zygote for the next supervisor (a
            # SIGTERM, as from a service manager's restart, keeps them, like docker's
            # live-restore); with none left it has nothing to keep
            zygote.close(stop=not zygote.held and (runtime is None or not runtime.live))
        Events().emit("supervisor.stopped", pid=os.getpid())
        logconfig.shutdown()
        os.unlink(paths.lock)
        os.close(lock)
    return code
