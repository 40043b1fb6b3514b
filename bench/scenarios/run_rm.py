"""1. `run --rm busybox true` end to end from the shell, every tool taking turns."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bench import commands
from bench.alternation import Contender, alternate
from bench.context import Context
from bench.results import Row, compare

NAME = "1 run --rm true"


def _contender(
    tool: str, problem: str, cmd: Callable[[], Sequence[str]], env: dict[str, str] | None = None
) -> Contender:
    row = Row(NAME, tool, error=problem)
    return Contender(row, lambda _i: commands.run(cmd(), env=env))


def scenario(ctx: Context) -> list[Row]:
    b, podman = ctx.basin, ctx.podman
    bridge_problem = b.problem
    if not bridge_problem:
        try:
            b.ensure_network()
        except RuntimeError as exc:
            bridge_problem = str(exc)
    podman_bridge_problem = podman.problem
    if not podman_bridge_problem:
        try:
            podman.ensure_network()
        except RuntimeError as exc:
            podman_bridge_problem = f"`podman network create` {exc}"
    contenders = [
        _contender(
            "basin (network none)",
            b.problem,
            lambda: b.cmd("run", "--rm", "--network", "none", "busybox", "true"),
            b.env,
        ),
        _contender(
            f"basin (bridge {b.network or 'benchnet'})",
            bridge_problem,
            lambda: b.cmd("run", "--rm", "--network", b.network, "busybox", "true"),
            b.env,
        ),
        _contender(
            "podman (network none)",
            podman.problem,
            lambda: podman.run_cmd("true", network="none"),
        ),
        _contender(
            "podman (bridge)",
            podman_bridge_problem,
            lambda: podman.run_cmd("true", network=podman.network),
        ),
        _contender("crun run (bundle)", ctx.crun.problem, ctx.crun.run_cmd),
        _contender("runc run (bundle)", ctx.runc.problem, ctx.runc.run_cmd),
        _contender(
            "unshare -fmuinp true",
            ctx.unshare_problem,
            lambda: ["unshare", "-fmuinp", "true"],
        ),
    ]
    try:
        alternate(contenders, ctx.count)
    finally:
        ctx.crun.cleanup()
        ctx.runc.cleanup()
    none, bridge, p_none, p_bridge, crun, runc, bare = (c.row for c in contenders)
    p_bridge.note = "podman bridge network on 10.234.251.0/24 (netavark)"
    compare(none, p_none, "basin ≥ 5x faster than podman", 0.2)
    compare(bridge, p_bridge, "basin ≥ 5x faster than podman", 0.2)
    compare(none, crun, "basin within 3x of crun", 3.0)
    compare(none, runc)
    compare(none, bare)
    return [c.row for c in contenders]
