"""basin network create|ps|ls|rm|inspect

create and rm change kernel state (bridges, iptables), which the supervisor owns: they are
requests to it. ps and inspect only read the records on disk, so they need no supervisor and
import nothing heavy."""

from __future__ import annotations

import json
import sys
from typing import Any

from basin import client, records
from basin.cli.options import Opt, UsageError, parse, usage
from basin.cli.output import table
from basin.network import check_network_name, list_networks, read_network
from basin.paths import Paths

PROG = "basin network"
SUMMARY = """Manage networks.

Commands:
  create     Create a network: basin network create [-d bridge] --subnet CIDR [--gateway IP] NAME
  ps, ls     List networks
  rm         Remove networks (refused while containers are attached)
  inspect    Show networks as JSON: subnet, gateway, bridge, containers and their addresses"""

HELP = [Opt(("-h", "--help"), "help", help="show this help")]
CREATE_OPTS = [
    Opt(("-d", "--driver"), "driver", True, help="network driver (default bridge)", metavar="NAME"),
    Opt(("--subnet",), "subnet", True, help="IPv4 subnet, e.g. 10.234.1.0/24", metavar="CIDR"),
    Opt(("--gateway",), "gateway", True, help="bridge address (default: first host)", metavar="IP"),
    *HELP,
]
PS_OPTS = [
    Opt(("-q", "--quiet"), "quiet", help="print names only"),
    Opt(("--format",), "format", True, help="json: one JSON object per network", metavar="FMT"),
    *HELP,
]


def create_main(argv: list[str]) -> int:
    prog = f"{PROG} create"
    p = parse(prog, CREATE_OPTS, argv)
    if p.get("help"):
        print(usage(prog, "Create a network.", CREATE_OPTS, "NAME"))
        return 0
    if len(p.args) != 1:
        raise UsageError(f"{prog}: requires exactly one network NAME")
    if not p.get("subnet"):
        raise UsageError(f"{prog}: --subnet CIDR is required")
    name = check_network_name(p.args[0])
    msg: dict[str, Any] = {
        "op": "network.create",
        "name": name,
        "driver": p.get("driver") or "bridge",
        "subnet": p.get("subnet"),
        "gateway": p.get("gateway"),
    }
    client.call(Paths.from_env(), msg)
    print(name)
    return 0


def _summary(rec: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": rec.get("name", ""),
        "driver": rec.get("driver", ""),
        "subnet": rec.get("subnet", ""),
        "gateway": rec.get("gateway", ""),
        "bridge": rec.get("bridge", ""),
        "containers": len(rec.get("allocations", {})),
        "created": rec.get("created", ""),
    }


def ps_main(argv: list[str]) -> int:
    prog = f"{PROG} ps"
    p = parse(prog, PS_OPTS, argv)
    if p.get("help"):
        print(usage(prog, "List networks.", PS_OPTS))
        return 0
    if p.args:
        raise UsageError(f"{prog}: takes no arguments")
    fmt = p.get("format")
    if fmt not in (None, "json", "table"):
        raise UsageError(f"{prog}: unknown format {fmt!r} (json or table)")
    nets = [_summary(r) for r in list_networks(Paths.from_env())]
    if p.get("quiet"):
        for n in nets:
            print(n["name"])
    elif fmt == "json":
        for n in nets:
            print(json.dumps(n))
    else:
        rows = [[n["name"], n["subnet"], n["driver"], str(n["containers"])] for n in nets]
        # the original basin's columns, plus how many containers each network holds
        print(table(["NAME", "IpRange", "Driver", "CONTAINERS"], rows))
    return 0


def rm_main(argv: list[str]) -> int:
    prog = f"{PROG} rm"
    p = parse(prog, HELP, argv)
    if p.get("help"):
        print(usage(prog, "Remove networks: bridge, rules, record.", HELP, "NAME..."))
        return 0
    if not p.args:
        raise UsageError(f"{prog}: requires at least one network")
    for name in p.args:
        check_network_name(name)
    reply = client.call(Paths.from_env(), {"op": "network.rm", "refs": p.args})
    from basin.cli.lifecycle import report

    return report(reply["results"])


def inspect_main(argv: list[str]) -> int:
    prog = f"{PROG} inspect"
    p = parse(prog, HELP, argv)
    if p.get("help"):
        print(usage(prog, "Show networks as a JSON array.", HELP, "NAME..."))
        return 0
    if not p.args:
        raise UsageError(f"{prog}: requires at least one network")
    paths = Paths.from_env()
    recs = [read_network(paths, name) for name in p.args]  # NotFound before any output
    ctrs = {c.id: c for c in records.load_all(paths, warn=False)}
    out = []
    for rec in recs:
        attached = []
        prefixlen = int(str(rec.get("subnet", "/0")).rpartition("/")[2] or 0)
        for cid, ip in sorted(rec.get("allocations", {}).items(), key=lambda kv: kv[1]):
            ctr = ctrs.get(cid)
            att = ctr.state.network if ctr is not None else {}
            attached.append(
                {
                    "id": cid,
                    "name": ctr.name if ctr is not None else "",
                    "ip": ip,
                    "prefixlen": prefixlen,
                    "host_veth": att.get("host_veth", ""),
                    "ports": att.get("ports", []),
                }
            )
        out.append({**_summary(rec), "containers": attached})
    print(json.dumps(out, indent=2))
    return 0


SUBCOMMANDS = {
    "create": create_main,
    "ps": ps_main,
    "ls": ps_main,
    "list": ps_main,
    "rm": rm_main,
    "remove": rm_main,
    "inspect": inspect_main,
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage(PROG, SUMMARY, HELP, "COMMAND"), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 125
    sub = SUBCOMMANDS.get(argv[0])
    if sub is None:
        raise UsageError(f"{PROG}: unknown command {argv[0]!r} (create, ps, ls, rm, inspect)")
    return sub(argv[1:])
