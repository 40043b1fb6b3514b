"""The "cli" request: a whole command line from the compiled client (client/basin.c), run here
with the Python CLI's own parsers and output, so that `basin run/ps/stop/rm` cost the user a
C program's start-up instead of an interpreter's.

The client sends {"op": "cli", "argv": [...], "cwd": ..., "pid": ...}; the answer is frames
(basin.supervisor.frames): its stdout and stderr, then its exit code. A command line that needs
the Python client after all (a terminal, attached stdin) gets the fallback frame and the client
execs `python -m basin` with the same argv."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import structlog
import trio

from basin.cli import lifecycle, ps, run
from basin.errors import BasinError
from basin.supervisor.control import Reply
from basin.supervisor.frames import ClientOutput

if TYPE_CHECKING:
    from basin.supervisor.main import Supervisor

log = structlog.get_logger()

FALLBACK = -1  # not an exit code: "let the Python client do this one"


def client_environ(pid: object) -> dict[str, str]:
    """The client's environment, for `run -e KEY` (docker takes KEY's value from the client).
    Empty if it cannot be read: KEY is then dropped, as docker drops an unset one."""
    if not isinstance(pid, int) or pid <= 0:
        return {}
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return {}
    env: dict[str, str] = {}
    for item in raw.split(b"\0"):
        key, eq, value = item.partition(b"=")
        if eq and key:
            env[os.fsdecode(key)] = os.fsdecode(value)
    return env


class OneShot:
    def __init__(self, supervisor: Supervisor) -> None:
        self.sup = supervisor

    async def handle(self, req: dict[str, Any], reply: Reply) -> None:
        out = ClientOutput(reply)
        async with trio.open_nursery() as n:
            n.start_soon(out.run)
            try:
                code = await self._dispatch(req, out)
            except BasinError as e:
                out.put(b"e", f"basin: {e.message}\n".encode())
                code = e.code
            except Exception as e:
                log.exception("request.failed", request="cli", error=str(e))
                out.put(b"e", f"basin: internal error: {e}\n".encode())
                code = 125
            if code == FALLBACK:
                out.put(b"F", b"")
            else:
                out.put(b"x", str(code).encode())
            out.close()

    async def _dispatch(self, req: dict[str, Any], out: ClientOutput) -> int:
        argv = req.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise BasinError("malformed command line")
        verb, rest = argv[0], argv[1:]
        if verb == "ps":
            return self._ps(rest, out)
        if verb in ("stop", "rm"):
            return await self._lifecycle(verb, rest, out)
        if verb == "run":
            return await self._run(req, rest, out)
        return FALLBACK  # a verb the client forwards (client/basin.c VERBS) but we do not take

    def _ps(self, argv: list[str], out: ClientOutput) -> int:
        p = ps.options(argv)
        if p.get("help"):
            out.put(b"o", (ps.help_text() + "\n").encode())
            return 0
        # the order of records.load_all: oldest first, ties by ID
        ctrs = sorted(self.sup.rt.containers.values(), key=lambda c: c.id)
        ctrs.sort(key=lambda c: c.config.get("created", ""))
        out.put(b"o", ps.render(p, ctrs).encode())
        return 0

    async def _lifecycle(self, verb: str, argv: list[str], out: ClientOutput) -> int:
        msg = lifecycle.stop_request(argv) if verb == "stop" else lifecycle.rm_request(argv)
        if isinstance(msg, str):
            out.put(b"o", (msg + "\n").encode())
            return 0
        if verb == "stop":
            results = await self.sup.stop_each(msg)
        else:
            results = await self.sup.rm_each(msg)
        stdout, stderr, code = lifecycle.report_text(results)
        out.put(b"o", stdout.encode())
        out.put(b"e", stderr.encode())
        return code

    async def _run(self, req: dict[str, Any], argv: list[str], out: ClientOutput) -> int:
        if run.wants_help(argv):
            out.put(b"o", (run.help_text() + "\n").encode())
            return 0
        cwd = req.get("cwd")
        cwd = cwd if isinstance(cwd, str) and cwd.startswith("/") else "/"
        pid = req.get("pid")

        def parse() -> dict[str, Any]:
            # reads files (--env-file, the client's environment, network records) and stats
            # volume paths: off the trio loop
            r = run.build_request(argv, self.sup.paths, client_environ(pid), cwd)
            run.detach_keys(argv)
            return r

        r = await trio.to_thread.run_sync(parse)
        if r["wait"] and (r["tty"] or r["interactive"]):
            return FALLBACK  # a terminal or stdin to relay: the Python client's session does it
        if not r["wait"]:
            ctr, _ = await self.sup.launch(r, client_removes=False)
            out.put(b"o", f"{ctr.id}\n".encode())
            return 0
        # the client takes the output as it comes, so --rm needs no wait for it: the container
        # is removed before the exit code goes out, and its name is free once the client exits
        ctr, live = await self.sup.launch(r, client_removes=True, output=out)
        await live.done.wait()
        if ctr.config.get("auto_remove"):
            await self.sup.rt.remove(ctr, force=False)
        code = ctr.state.exit_code
        return 125 if code is None else code
