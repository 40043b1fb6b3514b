"""Build a busybox rootfs tarball shaped like `docker export` of the busybox image, from the
host's static busybox, so tests and first users need no registry.

    python3 -m basin.busybox OUT.tar [--busybox /bin/busybox]

The output is deterministic (fixed mtimes and owners, sorted members): the same busybox gives
the same bytes, so the tar can be cached and compared.
"""

from __future__ import annotations

import argparse
import io
import os
import struct
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from basin.errors import EXIT_BASIN, BasinError

BUSYBOX = Path("/bin/busybox")
INSTALL_HINT = "apt-get install busybox-static"
MTIME = 0  # fixed, for byte-identical output

# Directory skeleton of the docker busybox image; tmp is world-writable with the sticky bit.
DIRS: dict[str, int] = {
    "bin": 0o755,
    "dev": 0o755,
    "etc": 0o755,
    "home": 0o755,
    "proc": 0o755,
    "root": 0o700,
    "sbin": 0o755,
    "sys": 0o755,
    "tmp": 0o1777,
    "usr": 0o755,
    "usr/bin": 0o755,
    "usr/sbin": 0o755,
    "var": 0o755,
    "var/log": 0o755,
    "var/spool": 0o755,
    "var/spool/mail": 0o755,
    "var/www": 0o755,
}

# hosts, hostname and resolv.conf stay empty: the runtime bind-mounts its own over them.
FILES: dict[str, tuple[int, bytes]] = {
    "etc/passwd": (
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
    ),
    "etc/group": (0o644, b"root:x:0:\nnobody:x:65534:\n"),
    "etc/shadow": (0o600, b"root:*:0:0:99999:7:::\nnobody:*:0:0:99999:7:::\n"),
    "etc/hosts": (0o644, b""),
    "etc/hostname": (0o644, b""),
    "etc/resolv.conf": (0o644, b""),
}

SYMLINKS: dict[str, str] = {"etc/mtab": "/proc/mounts"}

_PT_INTERP = 3


# --- the host binary -----------------------------------------------------------------------


def check_static(busybox: Path) -> None:
    """Refuse a missing or dynamically linked busybox: the container has no libc to load."""
    try:
        with open(busybox, "rb") as f:
            if not _elf_is_static(f):
                raise BasinError(f"{busybox} is not a statically linked binary; {INSTALL_HINT}")
    except OSError as e:
        raise BasinError(f"cannot read {busybox}: {e.strerror}; {INSTALL_HINT}") from None


def _elf_is_static(f: io.BufferedReader) -> bool:
    """True for an ELF executable without a PT_INTERP program header (no dynamic loader;
    static-pie binaries qualify too)."""
    ident = f.read(64)
    if len(ident) < 52 or ident[:4] != b"\x7fELF" or ident[4] not in (1, 2):
        return False
    endian = "<" if ident[5] == 1 else ">"
    if ident[4] == 2:  # ELFCLASS64
        (phoff,) = struct.unpack_from(endian + "Q", ident, 32)
        phentsize, phnum = struct.unpack_from(endian + "HH", ident, 54)
    else:
        (phoff,) = struct.unpack_from(endian + "I", ident, 28)
        phentsize, phnum = struct.unpack_from(endian + "HH", ident, 42)
    if phnum == 0 or phentsize < 4:
        return False
    f.seek(phoff)
    table = f.read(phentsize * phnum)
    if len(table) < phentsize * phnum:
        return False
    types = (struct.unpack_from(endian + "I", table, i * phentsize)[0] for i in range(phnum))
    return _PT_INTERP not in types


def applets(busybox: Path) -> list[str]:
    """Install paths of every applet (`bin/sh`, `usr/bin/wget`...), from the binary itself."""
    try:
        proc = subprocess.run(
            [str(busybox), "--list-full"], capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError) as e:
        raise BasinError(f"cannot list applets of {busybox}: {e}; {INSTALL_HINT}") from None
    out: set[str] = set()
    for line in proc.stdout.split():
        path = line.strip("/")
        if not path or ".." in path.split("/"):
            continue
        # A few applets (linuxrc) have no directory; docker's image keeps them all in bin.
        out.add(path if "/" in path else f"bin/{path}")
    out.discard("bin/busybox")
    if "bin/sh" not in out:
        raise BasinError(f"{busybox} has no 'sh' applet; {INSTALL_HINT}")
    return sorted(out)


# --- the tarball ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    info: tarfile.TarInfo
    data: bytes | None = None


def _info(name: str, kind: bytes, mode: int, size: int = 0, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.linkname = link
    info.mtime = MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _entries(busybox_size: int, links: list[str]) -> Iterator[_Entry]:
    """Directories first (parents before children), then files and symlinks, then the
    applet hard links, which must follow the bin/busybox they point at."""
    dirs = dict(DIRS)
    for path in links:  # every applet's directory exists even if DIRS forgot it
        parent = path.rpartition("/")[0]
        while parent:
            dirs.setdefault(parent, 0o755)
            parent = parent.rpartition("/")[0]
    for name in sorted(dirs):
        yield _Entry(_info(name, tarfile.DIRTYPE, dirs[name]))
    files = {
        name: _Entry(_info(name, tarfile.REGTYPE, m, len(d)), d) for name, (m, d) in FILES.items()
    }
    files["bin/busybox"] = _Entry(_info("bin/busybox", tarfile.REGTYPE, 0o755, busybox_size))
    for name, target in SYMLINKS.items():
        files[name] = _Entry(_info(name, tarfile.SYMTYPE, 0o777, link=target))
    for name in sorted(files):
        yield files[name]
    for name in links:
        yield _Entry(_info(name, tarfile.LNKTYPE, 0o755, link="bin/busybox"))


def build(out: Path, busybox: Path = BUSYBOX) -> None:
    """Write the busybox rootfs tarball to OUT (atomically: a failed build leaves no file)."""
    check_static(busybox)
    links = applets(busybox)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with open(busybox, "rb") as binary:
            size = os.fstat(binary.fileno()).st_size
            with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tf:
                for entry in _entries(size, links):
                    if entry.info.name == "bin/busybox":
                        tf.addfile(entry.info, binary)
                    elif entry.data is not None:
                        tf.addfile(entry.info, io.BytesIO(entry.data))
                    else:
                        tf.addfile(entry.info)
        os.replace(tmp, out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise BasinError(f"cannot write {out}: {e.strerror or e}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m basin.busybox",
        description="Build a busybox rootfs tarball like `docker export` writes.",
    )
    parser.add_argument("out", type=Path, metavar="OUT.tar")
    parser.add_argument("--busybox", type=Path, default=BUSYBOX, help="static busybox binary")
    args = parser.parse_args(argv)
    try:
        build(args.out, args.busybox)
    except BasinError as e:
        print(f"basin: {e}", file=sys.stderr)
        return EXIT_BASIN
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
