"""A small option parser with docker's habits: `--name x`, `--name=x`, the seed's single-dash
`-name x`, bundled short flags (`-it`), repeatable options, and options ending at the first
positional argument when a verb says so (`run IMAGE CMD -flags-of-CMD`).

argparse gets the last two wrong (it reads flags after IMAGE as its own), hence this."""

from __future__ import annotations

from basin.errors import BasinError

TYPE_CHECKING = False  # typing itself costs the thin client ~3 ms to import
if TYPE_CHECKING:
    from dataclasses import dataclass, field
    from typing import Any
else:  # the same classes without dataclasses' import cost (see basin.plainclass)
    from basin.plainclass import dataclass, field


@dataclass(frozen=True)
class Opt:
    names: tuple[str, ...]
    dest: str
    value: bool = False  # takes a value
    repeat: bool = False
    help: str = ""
    metavar: str = "VALUE"


@dataclass
class Parsed:
    values: dict[str, Any] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)

    def get(self, dest: str, default: Any = None) -> Any:
        return self.values.get(dest, default)


class UsageError(BasinError):
    pass


def parse(prog: str, opts: list[Opt], argv: list[str], stop_at_positional: bool = False) -> Parsed:
    table: dict[str, Opt] = {}
    for o in opts:
        for n in o.names:
            table[n] = o
    out = Parsed()
    for o in opts:
        if o.repeat:
            out.values[o.dest] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        i += 1
        if tok == "--":
            out.args.extend(argv[i:])
            break
        if not tok.startswith("-") or tok == "-":
            out.args.append(tok)
            if stop_at_positional:
                out.args.extend(argv[i:])
                break
            continue
        name, eq, inline = tok.partition("=")
        opt = table.get(name)
        if opt is None and not tok.startswith("--") and len(tok) > 2:
            # bundled short flags (-it) or a short option with its value glued on (-eK=V)
            first = table.get(tok[:2])
            if first is not None and first.value:
                opt, eq, inline = first, "=", tok[2:]
            elif all(table.get(f"-{c}") is not None and not table[f"-{c}"].value for c in tok[1:]):
                for c in tok[1:]:
                    out.values[table[f"-{c}"].dest] = True
                continue
        if opt is None:
            raise UsageError(f"{prog}: unknown flag: {name}")
        if opt.value:
            if eq:
                val = inline
            elif i < len(argv):
                val = argv[i]
                i += 1
            else:
                raise UsageError(f"{prog}: flag needs an argument: {name}")
            if opt.repeat:
                out.values[opt.dest].append(val)
            else:
                out.values[opt.dest] = val
        else:
            if eq:
                if inline.lower() not in ("true", "false"):
                    raise UsageError(f"{prog}: flag {name} takes no value")
                out.values[opt.dest] = inline.lower() == "true"
            else:
                out.values[opt.dest] = True
    return out


def usage(prog: str, summary: str, opts: list[Opt], args: str = "") -> str:
    lines = [f"Usage: {prog} [OPTIONS]{' ' + args if args else ''}", "", summary, "", "Options:"]
    for o in opts:
        names = ", ".join(o.names) + (f" {o.metavar}" if o.value else "")
        lines.append(f"  {names:<34} {o.help}")
    return "\n".join(lines)


def help_requested(argv: list[str], stop_at_positional: bool = False) -> bool:
    for tok in argv:
        if tok in ("-h", "--help"):
            return True
        if stop_at_positional and not tok.startswith("-"):
            return False
    return False


def parse_int(prog: str, name: str, value: str, minimum: int | None = None) -> int:
    try:
        n = int(value)
    except ValueError:
        raise UsageError(f"{prog}: {name} must be a whole number, not {value!r}") from None
    if minimum is not None and n < minimum:
        raise UsageError(f"{prog}: {name} must be at least {minimum}")
    return n
