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
from basin.supervisor import attach, logconfig
from basin.supervisor.control import ControlServer, Handler, Reply
from basin.supervisor.runtime import Runtime
from basin.supervisor.zygote_client import Zygote

log = structlog.get_logger()


def _cgroup_backend() -> CgroupBackend | None:
    try:
        from basin.cgroups import detect

        return detect()
    except (ImportError, OSError) as e:
        log.warning("cgroups.unavailable", error=str(e))
        return None


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
            "shutdown": self.shutdown,
            "attach": self.attach,
            "resize": self.resize,
        }

    async def ping(self, req: dict[str, Any], reply: Reply) -> None:
        await reply.send({"type": "result", "pid": os.getpid(), "version": __version__})

    async def run(self, req: dict[str, Any], reply: Reply) -> None:
        if req.get("attach") is not None:
            await self._run_attached(req, reply)
            return
        ctr = await self.rt.create(req)
        try:
            live = await self.rt.start(ctr)
        except BasinError as e:
            if e.code == 125 and ctr.id in self.rt.containers:
                await self.rt.remove(ctr, force=True)  # never leave a half-made container
            raise
        await reply.send({"type": "started", "id": ctr.id, "name": ctr.name})
        if req.get("wait"):
            await live.done.wait()
            await reply.send({"type": "result", "id": ctr.id, "exit_code": ctr.state.exit_code})
        else:
            await reply.send({"type": "result", "id": ctr.id})

    async def _run_attached(self, req: dict[str, Any], reply: Reply) -> None:
        """run -i/-t in the foreground: the client's FIFOs are opened before anything is made
        and get the container's output from its first byte."""
        size = attach.winsize(req)
        client = attach.open_client(self.paths, req)
        try:
            ctr = await self.rt.create(req)
            try:
                live = await self.rt.start(ctr, size)
            except BasinError as e:
                if e.code == 125 and ctr.id in self.rt.containers:
                    await self.rt.remove(ctr, force=True)
                raise
        except BaseException:
            attach.close_client(client)
            raise
        if live.console is not None:
            live.console.add(client)
        await reply.send({"type": "started", "id": ctr.id, "name": ctr.name})
        await attach.serve(ctr, live, client, reply)

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
        t = req.get("timeout")
        timeout = None if t is None else int(t)
        results = await self._each(list(req.get("refs", [])), lambda c: self.rt.stop(c, timeout))
        await reply.send({"type": "result", "results": results})

    async def rm(self, req: dict[str, Any], reply: Reply) -> None:
        force = bool(req.get("force"))
        results = await self._each(list(req.get("refs", [])), lambda c: self.rt.remove(c, force))
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
        log.info("supervisor.stopping")
        assert self.cancel is not None
        self.cancel.cancel()

    async def main(self) -> None:
        server = ControlServer(self.paths, self.handlers())
        server.create_fifo()
        with trio.CancelScope() as self.cancel:
            async with trio.open_nursery() as nursery:
                self.rt.nursery = nursery
                with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as sigs:
                    nursery.start_soon(server.serve, nursery)
                    log.info(
                        "supervisor.started",
                        version=__version__,
                        pid=os.getpid(),
                        cgroups=getattr(self.rt.cgroups, "name", None),
                        containers=len(self.rt.containers),
                    )
                    async for _ in sigs:
                        log.info("supervisor.stopping", reason="signal")
                        self.cancel.cancel()


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
    logconfig.configure(paths.supervisor_log, foreground)
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
    zygote = Zygote()
    try:
        paths.pidfile.write_text(f"{os.getpid()}\n")
        runtime = Runtime(paths, zygote, _cgroup_backend())
        runtime.load()
        trio.run(Supervisor(paths, runtime).main)
    finally:
        _cleanup_run_dir(paths)
        zygote.close()
        log.info("supervisor.stopped")
        os.unlink(paths.lock)
        os.close(lock)
    return 0
