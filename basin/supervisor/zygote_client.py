"""The supervisor's side of the zygote socket."""

from __future__ import annotations

import array
import json
import os
import socket
import subprocess
import sys
from typing import Any

import trio

from basin.errors import BasinError


class Zygote:
    def __init__(self) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # started before any trio thread exists would not matter: it is a fresh exec
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "basin.zygote", str(child.fileno())],
            pass_fds=[child.fileno()],
            stdin=subprocess.DEVNULL,
        )
        child.close()
        self._sock = trio.socket.from_stdlib_socket(parent)
        self._lock = trio.Lock()

    async def spawn(self, spec: dict[str, Any], fds: list[int]) -> int:
        async with self._lock:  # one request at a time: replies carry no id
            await self._sock.sendmsg(
                [json.dumps(spec).encode()],
                [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))],
            )
            raw = await self._sock.recv(65536)
        if not raw:
            raise BasinError("the zygote is gone: restart the supervisor")
        reply = json.loads(raw)
        if "pid" not in reply:
            raise BasinError(str(reply.get("error", "spawn failed")))
        return int(reply["pid"])

    def close(self) -> None:
        # called after trio.run has returned: trio's close() needs a running loop, so close
        # the plain fd (EOF tells the zygote to exit)
        os.close(self._sock.detach())
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
