"""One benchmark run: set up the shared rootfs and every tool, run the chosen scenarios, write
RESULTS.md and the chart, and put the host back as it was."""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from bench import chart, peers, rootfs
from bench.basin_env import BasinEnv, basin_command, make_rootfs_tar
from bench.context import Context
from bench.host_state import peer_window
from bench.peers import OciRuntime, Podman
from bench.results import Report, Row
from bench.scenarios import Scenario


@dataclass(frozen=True)
class Options:
    count: int
    quick: bool
    scenarios: list[Scenario]
    out: Path


def _bundle(workdir: Path) -> tuple[Path, str]:
    """The OCI bundle for runc and crun; '' or why it could not be made."""
    spec_tool = shutil.which("runc") or shutil.which("crun")
    bundle = workdir / "bundle"
    if spec_tool is None:
        return bundle, "not installed (neither runc nor crun to write config.json)"
    try:
        rootfs.write_bundle(bundle, spec_tool)
    except Exception as exc:
        return bundle, f"bundle: {exc!r}"[:240]
    return bundle, ""


def _setup(opts: Options, workdir: Path) -> Context:
    tar = make_rootfs_tar(workdir)
    bundle, bundle_problem = _bundle(workdir)
    basin = BasinEnv(workdir / "basin")
    basin.prepare(tar)
    ctx = Context(
        count=opts.count,
        quick=opts.quick,
        basin=basin,
        podman=Podman(),
        crun=OciRuntime("crun", bundle),
        runc=OciRuntime("runc", bundle),
    )
    ctx.podman.problem = peers.import_podman_image(tar)
    with peer_window(ctx.notes):
        for rt in (ctx.crun, ctx.runc):
            rt.problem = bundle_problem or peers.probe(rt.run_cmd())
            rt.cleanup()
        if not ctx.podman.problem:
            ctx.podman.problem = peers.probe(ctx.podman.run_cmd("true"))
    ctx.unshare_problem = peers.probe(["unshare", "-fmuinp", "true"])
    return ctx


def _teardown(ctx: Context | None) -> None:
    if ctx is None:
        return
    with contextlib.suppress(Exception):
        ctx.basin.teardown()
    with contextlib.suppress(Exception), peer_window(ctx.notes):
        ctx.podman.cleanup()
        ctx.crun.cleanup()
        ctx.runc.cleanup()
    peers.remove_podman_image()


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.machine()


def _memory_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


def _preamble(opts: Options, ctx: Context | None, elapsed: float) -> list[str]:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Run {now} on {platform.node()}: Linux {platform.release()}, {os.cpu_count()} CPUs "
        f"({_cpu_model()}), {_memory_gb():.0f} GB RAM; "
        f"python {platform.python_version()}; load average at the end "
        f"{os.getloadavg()[0]:.2f} (other jobs share this machine).",
        f"Iterations: {opts.count} per timed row (bursts and log floods: "
        f"{ctx.few if ctx else '?'}){', quick mode' if opts.quick else ''}; "
        f"tools take turns every iteration, in rotating order. Whole run: {elapsed:.0f} s.",
        "",
        f"Tools: basin (this tree, `{' '.join(basin_command())}`, own BASIN_ROOT/BASIN_RUN), "
        + ", ".join(f"{t}: {peers.version(t)}" for t in ("runc", "crun", "podman", "conmon"))
        + ".",
        "All run the same busybox rootfs (/bin/busybox + applet links): runc and crun as an OCI "
        "bundle from `runc spec` (no terminal, args `true`), podman after `podman import` of the "
        "same tarball, basin after `basin image import` of it. Ratios are basin's median over "
        "the peer's: below 1 means basin is faster.",
        "",
    ]
    return lines


def run(opts: Options) -> int:
    start = time.perf_counter()
    report = Report()
    workdir = Path(tempfile.mkdtemp(prefix="basin-bench-"))
    ctx: Context | None = None
    broken = False
    try:
        ctx = _setup(opts, workdir)
        for sc in opts.scenarios:
            print(f"== scenario {sc.number}: {sc.key}", flush=True)
            window = peer_window(ctx.notes) if sc.uses_peers else contextlib.nullcontext()
            try:
                with window:
                    rows = sc.run(ctx)
            except Exception as exc:
                traceback.print_exc()
                broken = True
                rows = [Row(f"{sc.number} {sc.key}", "harness", error=f"crashed: {exc!r}")]
            for row in rows:
                shown = f"{row.median:.2f} {row.unit}" if row.median is not None else row.error
                print(f"   {row.scenario} | {row.tool} | n={len(row.samples)} | {shown}")
            report.add(*rows)
    finally:
        _teardown(ctx)
        shutil.rmtree(workdir, ignore_errors=True)
        elapsed = time.perf_counter() - start
        if ctx is not None:
            report.notes += ctx.notes
            report.sections += ctx.sections
        report.notes += [
            "crun 1.8.1 refuses this hybrid cgroup layout (cgroup2 at /sys/fs/cgroup/unified "
            "holding hugetlb); for the scenarios with peers, hugetlb is mounted as its own v1 "
            "hierarchy and put back on cgroup2 afterwards. podman uses crun here, so it needs "
            "the same.",
            "podman 4.3 runs with `--ulimit nofile=20000:20000 --ulimit nproc=32768:32768` "
            "(without them crun's setrlimit(RLIMIT_NOFILE) fails with EPERM).",
            "podman's bridge is a podman network on 10.234.251.0/24 (its default, 10.88.0.0/16, "
            "is outside the subnets this machine allows); basin's is `benchnet`, 10.234.250.0/24.",
        ]
        png = opts.out / "results.png"
        problem = chart.draw(report.rows, png)
        if problem:
            report.notes.append(problem)
        results = opts.out / "RESULTS.md"
        report.write(
            results,
            "basin benchmarks, side by side with runc, crun and podman",
            _preamble(opts, ctx, elapsed),
            None if problem else png.name,
        )
        print(f"wrote {results} in {elapsed:.0f} s", file=sys.stderr)
    return 1 if broken else 0
