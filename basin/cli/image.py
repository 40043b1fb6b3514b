"""`basin image import|ls|rm` and `basin images`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

from basin import image
from basin.errors import EXIT_BASIN, BasinError, Conflict
from basin.paths import Paths


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exits 125, like docker."""

    def error(self, message: str) -> NoReturn:
        print(f"basin: {message} (see '{self.prog} --help')", file=sys.stderr)
        self.exit(EXIT_BASIN)


def _fail(e: BasinError) -> int:
    print(f"basin: {e}", file=sys.stderr)
    return e.code


def _run(parser: ArgumentParser, argv: Sequence[str]) -> int:
    """Parse and dispatch; argparse's exits (--help, usage errors) become return codes."""
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else EXIT_BASIN
    try:
        code: int = args.func(args)
    except BasinError as e:
        return _fail(e)
    return code


# --- listing -------------------------------------------------------------------------------


def human_size(size: int) -> str:
    """docker's sizes: decimal units, three significant digits (1.24MB, 72.8MB, 512B)."""
    units = ("B", "kB", "MB", "GB", "TB", "PB")
    value = float(size)
    i = 0
    while value >= 999.5 and i < len(units) - 1:  # 999.5 would print as "1e+03"
        value /= 1000
        i += 1
    return f"{value:.3g}{units[i]}"


def human_age(created: str, now: datetime | None = None) -> str:
    """`5 minutes ago`, `About an hour ago`, `3 weeks ago`, as `docker images` shows them."""
    try:
        then = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return created
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    seconds = ((now or datetime.now(UTC)) - then).total_seconds()
    return _duration(seconds) + " ago"


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "Less than a second"
    if seconds < 2:
        return "1 second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    minutes = int(seconds // 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 14:
        return f"{hours // 24} days"
    if hours < 24 * 60:
        return f"{hours // (24 * 7)} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // (24 * 30)} months"
    return f"{hours // (24 * 365)} years"


def _table(rows: list[list[str]]) -> str:
    """Left-aligned columns separated by at least three spaces, as docker's tabwriter does."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=False)] + [row[-1]]
        lines.append("   ".join(cells))
    return "\n".join(lines)


def _list(args: argparse.Namespace) -> int:
    images = image.list_images(Paths.from_env())
    if args.quiet:
        for img in images:
            print(img.name)
    elif args.format == "json":
        for img in images:
            print(json.dumps(img.to_json(), sort_keys=True))
    else:
        rows = [["NAME", "SIZE", "CREATED"]]
        rows += [[i.name, human_size(i.size), human_age(i.created)] for i in images]
        print(_table(rows))
    return 0


def _add_list_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="only show image names")
    parser.add_argument(
        "--format", choices=["table", "json"], default="table", help="output format"
    )
    parser.set_defaults(func=_list)


# --- import / rm ---------------------------------------------------------------------------


def _import(args: argparse.Namespace) -> int:
    paths = Paths.from_env()
    paths.ensure()
    img = image.import_tar(paths, args.file, args.name)
    print(img.name)
    return 0


def _rm(args: argparse.Namespace) -> int:
    """Remove each name in turn; report every failure, fail if any did (docker rmi)."""
    paths = Paths.from_env()
    code = 0
    from basin import records

    users = records.load_all(paths, warn=False)
    for name in args.names:
        try:
            using = [c.name for c in users if c.config.get("image") == name]
            if using:
                # its tree is the lower layer of their overlays: removing it would break them
                raise Conflict(
                    f"image {name} is used by container(s) {', '.join(using)}: remove them first"
                )
            image.remove(paths, name)
        except BasinError as e:
            code = _fail(e)
            continue
        print(name)
    return code


# --- entry points --------------------------------------------------------------------------


def _image_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="basin image", description="Manage images.")
    sub = parser.add_subparsers(
        title="commands", metavar="COMMAND", required=True, parser_class=ArgumentParser
    )
    p = sub.add_parser("import", help="import a rootfs tarball (as `docker export` writes)")
    p.add_argument("file", type=Path, metavar="FILE.tar")
    p.add_argument("name", nargs="?", metavar="NAME", help="default: the file name without .tar")
    p.set_defaults(func=_import)
    p = sub.add_parser("ls", help="list images")
    _add_list_args(p)
    p = sub.add_parser("rm", help="remove images")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.set_defaults(func=_rm)
    return parser


def image_main(argv: list[str]) -> int:
    """`basin image import FILE.tar [NAME]`, `basin image ls`, `basin image rm NAME...`."""
    return _run(_image_parser(), argv)


def images_main(argv: list[str]) -> int:
    """`basin images [-q] [--format json]`."""
    parser = ArgumentParser(prog="basin images", description="List images.")
    _add_list_args(parser)
    return _run(parser, argv)
