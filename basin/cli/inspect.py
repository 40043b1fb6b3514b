"""basin inspect: a container's record in docker's shape, read from disk (no supervisor)."""

from __future__ import annotations

import json
import sys
from typing import Any

from basin import records
from basin.cli import template
from basin.cli.options import Opt, UsageError, parse, usage
from basin.errors import BasinError
from basin.paths import Paths
from basin.records import RUNNING, Container

PROG = "basin inspect"
OPTS = [
    Opt(
        ("-f", "--format"),
        "format",
        True,
        help="print this template per container, e.g. '{{.State.Pid}}'",
        metavar="TMPL",
    ),
    Opt(("-h", "--help"), "help", help="show this help"),
]
SUMMARY = "Print containers' configuration and state as a JSON array (docker's field names)."

ZERO_TIME = "0001-01-01T00:00:00Z"  # docker's "never" for StartedAt/FinishedAt


def _time(value: str) -> str:
    return value or ZERO_TIME


def _state(ctr: Container) -> dict[str, Any]:
    s = ctr.state
    # a record says running but its process is gone: its supervisor died with it (as ps)
    running = s.status == RUNNING and records.alive(s)
    if running:
        status = "running"
    elif s.status == "created":
        status = "created"
    else:
        status = "exited"  # basin's "stopped" is docker's "exited" too; StoppedBy tells
    code = s.exit_code if s.exit_code is not None else (255 if s.status == RUNNING else 0)
    return {
        "Status": status,
        "Running": running,
        "Paused": False,
        "Restarting": False,
        "OOMKilled": s.oom_killed,
        "Dead": False,
        "Pid": s.pid if running else 0,
        "ExitCode": 0 if running else code,
        "Error": s.error,
        "StartedAt": _time(s.started_at),
        "FinishedAt": _time(s.finished_at) if not running else ZERO_TIME,
        "StoppedBy": s.stopped_by,
    }


def _port_key(port: Any, proto: Any) -> str:
    return f"{port}/{proto or 'tcp'}"


def _ports(mappings: Any) -> dict[str, list[dict[str, str]]]:
    """docker's {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]} from the network helper's port
    list (dicts, or HOST:CTR[/proto] strings as given to -p)."""
    out: dict[str, list[dict[str, str]]] = {}
    for m in mappings or []:
        if isinstance(m, dict):
            ctr_port = m.get("container_port", m.get("container"))
            host_port = m.get("host_port", m.get("host"))
            proto = m.get("proto", m.get("protocol"))
            host_ip = m.get("host_ip", "")
        elif isinstance(m, str):
            spec, _, proto = m.partition("/")
            parts = spec.split(":")
            ctr_port = parts[-1]
            host_port = parts[-2] if len(parts) >= 2 else ""
            host_ip = parts[-3] if len(parts) >= 3 else ""
        else:
            continue
        if ctr_port is None:
            continue
        out.setdefault(_port_key(ctr_port, proto), []).append(
            {"HostIp": str(host_ip or ""), "HostPort": str(host_port or "")}
        )
    return out


def _network(ctr: Container) -> dict[str, Any]:
    net: dict[str, Any] = getattr(ctr.state, "network", None) or {}
    mode = ctr.config.get("network") or "none"
    running = ctr.state.status == RUNNING and records.alive(ctr.state)
    ip = net.get("ip", "") if running else ""
    prefix = net.get("prefixlen", 0) if running else 0
    gateway = net.get("gateway", "") if running else ""
    networks: dict[str, Any] = {}
    if mode != "none" or net:
        networks[net.get("network") or mode] = {
            "IPAddress": ip,
            "IPPrefixLen": prefix,
            "Gateway": gateway,
            "HostVeth": net.get("host_veth", "") if running else "",
        }
    return {
        "IPAddress": ip,
        "IPPrefixLen": prefix,
        "Gateway": gateway,
        "Ports": _ports(net.get("ports")) if running else {},
        "Networks": networks,
    }


def _host_config(ctr: Container) -> dict[str, Any]:
    c = ctr.config
    lim: dict[str, Any] = c.get("limits") or {}
    quota = lim.get("cpu_quota")
    period = lim.get("cpu_period") or 100_000
    restart = c.get("restart") or "no"
    if isinstance(restart, dict):
        policy = {
            "Name": str(restart.get("name", "no")),
            "MaximumRetryCount": int(restart.get("max_retries", 0) or 0),
        }
    else:
        name, _, count = str(restart).partition(":")
        policy = {"Name": name, "MaximumRetryCount": int(count) if count.isdigit() else 0}
    return {
        "Binds": [
            f"{v['host']}:{v['container']}{':ro' if v.get('ro') else ''}"
            for v in c.get("volumes", [])
        ],
        "NetworkMode": c.get("network") or "none",
        "PortBindings": _ports(c.get("publish")),
        "AutoRemove": bool(c.get("auto_remove")),
        "RestartPolicy": policy,
        "LogConfig": {"Type": "json-file", "Config": dict(c.get("log_opts") or {})},
        "Memory": lim.get("memory") or 0,
        "MemorySwap": lim.get("memory_swap") or 0,
        "NanoCpus": quota * 1_000_000_000 // period if quota else 0,
        "CpuQuota": quota or 0,
        "CpuPeriod": period if quota else 0,
        "CpuShares": lim.get("cpu_shares") or 0,
        "CpusetCpus": lim.get("cpuset_cpus") or "",
        "PidsLimit": lim.get("pids"),
    }


def _env(env: Any) -> list[str]:
    # the record keeps a map; docker shows KEY=VALUE strings
    if isinstance(env, dict):
        return [f"{k}={v}" for k, v in env.items()]
    return [str(e) for e in env or []]


def to_docker(paths: Paths, ctr: Container) -> dict[str, Any]:
    c = ctr.config
    argv: list[str] = list(c.get("argv") or [])
    return {
        "Id": ctr.id,
        "Name": "/" + ctr.name,  # docker's leading slash
        "Created": c.get("created", ""),
        "Path": argv[0] if argv else "",
        "Args": argv[1:],
        "State": _state(ctr),
        "Image": c.get("image", ""),
        "LogPath": str(paths.container_log(ctr.id)),
        "Driver": "overlay",
        "Mounts": [
            {
                "Type": "bind",
                "Source": v["host"],
                "Destination": v["container"],
                "RW": not v.get("ro"),
            }
            for v in c.get("volumes", [])
        ],
        "Config": {
            "Hostname": c.get("hostname", ""),
            "Env": _env(c.get("env")),
            "Cmd": argv,
            "Image": c.get("image", ""),
            "WorkingDir": c.get("workdir", "/"),
            "Tty": bool(c.get("tty")),
            "OpenStdin": bool(c.get("interactive")),
            "StopTimeout": c.get("stop_timeout", 10),
        },
        "HostConfig": _host_config(ctr),
        "NetworkSettings": _network(ctr),
    }


def main(argv: list[str]) -> int:
    p = parse(PROG, OPTS, argv)
    if p.get("help"):
        print(usage(PROG, SUMMARY, OPTS, "NAME..."))
        return 0
    if not p.args:
        raise UsageError(f"{PROG}: requires at least one container")
    fmt = p.get("format")
    if fmt is not None:
        template.check(fmt)
    paths = Paths.from_env()
    all_ctrs = records.load_all(paths)
    found: list[dict[str, Any]] = []
    failed = 0
    for ref in p.args:
        try:
            found.append(to_docker(paths, records.resolve(all_ctrs, ref)))
        except BasinError as e:
            failed += 1
            print(f"basin: {e.message}", file=sys.stderr)
    if fmt is None:
        print(json.dumps(found, indent=4))
    else:
        for obj in found:
            print(template.render(fmt, obj))
    return 1 if failed else 0
