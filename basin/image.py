"""Images: rootfs tarballs (as `docker export` writes them) extracted once into a read-only cache.

Layout under ``paths.images``::

    .lock                   flock held for every change, so parallel imports cannot race
    .tmp-XXXX/              an import or removal in progress (stale ones are swept under the lock)
    <name>/image.json       the record, written before the directory gets its final name
    <name>/rootfs/          the extracted tree, the lower layer of every container's overlay

An import extracts into a temp directory and renames it into place, so a crash never leaves a
half image under a real name.

Extraction is written here rather than left to ``tarfile.extractall``: every path is walked one
component at a time from a directory fd with O_NOFOLLOW, so a symlink from the archive (which
may point anywhere: it is resolved inside the container) is never followed on the host.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from basin.errors import BasinError, Conflict, NotFound
from basin.paths import Paths
from basin.store import CorruptRecord, read_json, write_json

NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
NAME_MAX = 128

# Searched, after BASIN_IMAGE_PATH, for `<name>.tar` when an image is not imported yet.
DEFAULT_IMAGE_DIRS: tuple[Path, ...] = (Path("/root"),)

_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tbz2")
_COPY_CHUNK = 1 << 20
_DIR_OPEN = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# Keep permission bits and the sticky bit (tmp 1777); setuid/setgid never survive an import.
_MODE_KEEP = 0o1777


@dataclass
class Image:
    name: str
    size: int  # bytes of the extracted tree (hard-linked files counted once)
    created: str  # ISO 8601 UTC
    rootfs: Path

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "size": self.size,
            "created": self.created,
            "rootfs": str(self.rootfs),
        }


# --- names ---------------------------------------------------------------------------------


def validate_name(name: str) -> str:
    if len(name) > NAME_MAX or not NAME_RE.fullmatch(name):
        raise BasinError(
            f"invalid image name {name!r}: use letters, digits, '_', '.', '-' "
            f"(starting with a letter or digit), at most {NAME_MAX} characters"
        )
    return name


def default_name(tar: Path) -> str:
    """busybox.tar -> busybox, alpine.tar.gz -> alpine."""
    base = tar.name
    for suffix in _TAR_SUFFIXES:
        if base.endswith(suffix) and len(base) > len(suffix):
            return base[: -len(suffix)]
    return tar.stem or base


# --- records -------------------------------------------------------------------------------


def _image_dir(paths: Paths, name: str) -> Path:
    return paths.images / name


def _load(paths: Paths, name: str) -> Image:
    """Read an image record; raise OSError (FileNotFoundError: no such image) or
    CorruptRecord."""
    d = _image_dir(paths, name)
    data = read_json(d / "image.json")
    try:
        size, created = data["size"], data["created"]
    except (KeyError, TypeError):
        raise CorruptRecord(f"{d / 'image.json'}: missing fields") from None
    if not isinstance(size, int) or not isinstance(created, str):
        raise CorruptRecord(f"{d / 'image.json'}: bad field types")
    return Image(name=name, size=size, created=created, rootfs=d / "rootfs")


def list_images(paths: Paths) -> list[Image]:
    """Every imported image, sorted by name; corrupt records are skipped, not fatal."""
    try:
        names = sorted(os.listdir(paths.images))
    except FileNotFoundError:
        return []
    out: list[Image] = []
    for name in names:
        if name.startswith("."):  # the lock and in-progress temp dirs
            continue
        with contextlib.suppress(OSError, CorruptRecord):
            out.append(_load(paths, name))
    return out


def get(paths: Paths, name: str) -> Image:
    """An imported image, or NotFound."""
    validate_name(name)
    try:
        return _load(paths, name)
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound(f"no such image: {name}") from None
    except (CorruptRecord, OSError):
        raise BasinError(
            f"image {name} has a corrupt record; remove it with 'basin image rm {name}'"
        ) from None


# --- locking and temp dirs -----------------------------------------------------------------


@contextlib.contextmanager
def _locked(paths: Paths) -> Iterator[None]:
    """Hold the images lock. Every change happens under it, so any temp dir found while
    holding it was left by a crashed process and can be swept."""
    paths.images.mkdir(parents=True, exist_ok=True)
    fd = os.open(paths.images / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _sweep_temp(paths)
        yield
    finally:
        os.close(fd)  # releases the flock


def _sweep_temp(paths: Paths) -> None:
    for entry in os.listdir(paths.images):
        if entry.startswith(".tmp-"):
            _rmtree(paths.images / entry)


def _rmtree(path: Path) -> None:
    """Remove a tree whatever modes the image gave its directories (0555, 0000...)."""
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        return
    except PermissionError:
        # Only reachable without CAP_DAC_OVERRIDE: open up the directories and retry.
        # The walk is top-down, so each directory is opened up before it is entered.
        os.chmod(path, 0o700)
        for top, dirs, _ in os.walk(path):
            for d in dirs:
                p = os.path.join(top, d)
                if not os.path.islink(p):
                    os.chmod(p, 0o700)
        shutil.rmtree(path)


# --- import / remove / resolve -------------------------------------------------------------


def import_tar(paths: Paths, tar: Path, name: str | None = None) -> Image:
    """Import a rootfs tarball as image NAME (default: the file name without .tar)."""
    return _import(paths, tar, name, exist_ok=False)


def _import(paths: Paths, tar: Path, name: str | None, *, exist_ok: bool) -> Image:
    if name is None:
        name = default_name(tar)
        if len(name) > NAME_MAX or not NAME_RE.fullmatch(name):
            raise BasinError(f"cannot name an image after {tar.name!r}; give a NAME")
    validate_name(name)
    if not tar.exists():
        raise BasinError(f"cannot import {tar}: no such file")
    if not tar.is_file():
        raise BasinError(f"cannot import {tar}: not a regular file")
    with _locked(paths):
        final = _image_dir(paths, name)
        if final.exists():
            if exist_ok:  # a parallel first use got here first
                return get(paths, name)
            raise Conflict(f"image {name} already exists; remove it first with 'basin image rm'")
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=paths.images))
        try:
            os.chmod(tmp, 0o755)
            rootfs = tmp / "rootfs"
            rootfs.mkdir(mode=0o755)
            _extract(tar, rootfs)
            image = Image(name=name, size=tree_size(rootfs), created=_now(), rootfs=rootfs)
            write_json(
                tmp / "image.json", {"name": name, "size": image.size, "created": image.created}
            )
            os.rename(tmp, final)
        except BaseException:
            _rmtree(tmp)
            raise
    image.rootfs = final / "rootfs"
    return image


def remove(paths: Paths, name: str) -> None:
    """Delete an image and its whole tree; NotFound if there is none."""
    validate_name(name)
    with _locked(paths):
        d = _image_dir(paths, name)
        if not d.is_dir():
            raise NotFound(f"no such image: {name}")
        # Rename first so the name disappears at once; a crash mid-delete leaves only a
        # temp dir for the next sweep.
        doomed = Path(tempfile.mkdtemp(prefix=".tmp-rm-", dir=paths.images))
        os.rename(d, doomed / name)
        _rmtree(doomed)


def image_path_dirs() -> list[Path]:
    """Where `<name>.tar` is looked for: BASIN_IMAGE_PATH first, then /root."""
    env = os.environ.get("BASIN_IMAGE_PATH", "")
    return [Path(p) for p in env.split(":") if p] + list(DEFAULT_IMAGE_DIRS)


def resolve(paths: Paths, name: str) -> Image:
    """An imported image by name, else `<dir>/<name>.tar` from the image path, imported on
    first use; else NotFound."""
    validate_name(name)
    with contextlib.suppress(NotFound):
        return get(paths, name)
    for d in image_path_dirs():
        tar = d / f"{name}.tar"
        if tar.is_file():
            return _import(paths, tar, name, exist_ok=True)
    raise NotFound(f"no such image: {name}")


def tree_size(root: Path) -> int:
    """Bytes of regular files and symlinks under root, each inode once, without following
    symlinks."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for top, dirs, files in os.walk(root):
        for entry in dirs + files:
            st = os.lstat(os.path.join(top, entry))
            if stat.S_ISDIR(st.st_mode) or (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- extraction ----------------------------------------------------------------------------


class _Refused(Exception):
    """A member that could reach outside the rootfs; the whole import is refused."""


def _extract(tar: Path, rootfs: Path) -> None:
    try:
        with tarfile.open(tar, "r:*") as tf:
            _Extractor(tf, rootfs).run()
    except _Refused as e:
        raise BasinError(f"cannot import {tar}: {e}") from None
    except (tarfile.TarError, EOFError, OSError) as e:
        raise BasinError(f"cannot import {tar}: {_one_line(e)}") from None


def _one_line(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return " ".join(text.split())


def _split(member_name: str, what: str) -> list[str]:
    """Archive path -> components. Absolute paths and '..' are refused, '.' and '' dropped
    (docker export and `tar -C dir .` write `./x`)."""
    if member_name.startswith("/"):
        raise _Refused(f"{what} {member_name!r} is an absolute path")
    parts = [p for p in member_name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _Refused(f"{what} {member_name!r} contains '..'")
    if any("\0" in p for p in parts):
        raise _Refused(f"{what} {member_name!r} contains a NUL byte")
    return parts


class _Extractor:
    def __init__(self, tf: tarfile.TarFile, rootfs: Path) -> None:
        self.tf = tf
        self.rootfs = rootfs
        self.as_root = os.geteuid() == 0
        # Directory metadata is applied last, deepest first: a read-only directory must not
        # block its own contents, and creating children would reset its mtime.
        self.dirs: list[tuple[list[str], tarfile.TarInfo]] = []

    def run(self) -> None:
        for member in self.tf:
            self._member(member)
        for parts, member in sorted(self.dirs, key=lambda d: -len(d[0])):
            self._finish_dir(parts, member)

    # Walking: open each parent from the rootfs fd with O_NOFOLLOW. A symlink (or a file)
    # where a directory should be fails with ELOOP/ENOTDIR: the member is refused rather
    # than written through the link.
    def _open_parent(self, parts: list[str], name: str, *, create: bool) -> int:
        fd = os.open(self.rootfs, _DIR_OPEN)
        for i, part in enumerate(parts[:-1]):
            try:
                child = self._step(fd, part, create=create)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    where = "/".join(parts[: i + 1])
                    raise _Refused(f"{name!r} goes through {where!r}, not a directory") from None
                raise
            finally:
                os.close(fd)
            fd = child
        return fd

    @staticmethod
    def _step(fd: int, part: str, *, create: bool) -> int:
        try:
            return os.open(part, _DIR_OPEN, dir_fd=fd)
        except FileNotFoundError:
            if not create:
                raise
        # Tars may omit directory entries; make the parent like docker would.
        os.mkdir(part, 0o755, dir_fd=fd)
        child = os.open(part, _DIR_OPEN, dir_fd=fd)
        os.fchmod(child, 0o755)  # independent of the umask
        return child

    def _member(self, m: tarfile.TarInfo) -> None:
        parts = _split(m.name, "member")
        if not parts:  # the root itself ("./")
            if m.isdir():
                self.dirs.append((parts, m))
            return
        if m.ischr() or m.isblk() or m.isfifo():
            return  # device nodes and fifos: the container gets its own /dev
        if not (m.isreg() or m.isdir() or m.issym() or m.islnk()):
            return  # anything else tarfile knows (contiguous files are isreg) is dropped
        fd = self._open_parent(parts, m.name, create=True)
        try:
            self._place(fd, parts, m)
        finally:
            os.close(fd)

    def _place(self, fd: int, parts: list[str], m: tarfile.TarInfo) -> None:
        leaf = parts[-1]
        if m.isdir():
            self._clear(fd, leaf, keep_dir=True)
            with contextlib.suppress(FileExistsError):
                os.mkdir(leaf, 0o700, dir_fd=fd)
            self.dirs.append((parts, m))
            return
        if m.islnk():
            self._hardlink(fd, parts, m)
            return
        self._clear(fd, leaf, keep_dir=False)
        if m.issym():
            os.symlink(m.linkname, leaf, dir_fd=fd)
            self._owner_and_time(fd, leaf, m)
        else:
            self._write_file(fd, leaf, m)

    def _clear(self, fd: int, leaf: str, *, keep_dir: bool) -> None:
        """Remove whatever an earlier member left at this name, without following it."""
        try:
            st = os.stat(leaf, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            if not keep_dir:
                shutil.rmtree(leaf, dir_fd=fd)
        else:
            os.unlink(leaf, dir_fd=fd)

    def _write_file(self, fd: int, leaf: str, m: tarfile.TarInfo) -> None:
        src = self.tf.extractfile(m)
        if src is None:
            return
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        out = os.open(leaf, flags, 0o600, dir_fd=fd)
        try:
            _copy(src, out)
            if self.as_root:
                os.fchown(out, m.uid, m.gid)
            os.fchmod(out, m.mode & _MODE_KEEP)
            os.utime(out, _times(m))
        finally:
            os.close(out)

    def _hardlink(self, fd: int, parts: list[str], m: tarfile.TarInfo) -> None:
        """A hard link may only point at a regular file this archive already put in the
        rootfs; walking to it with O_NOFOLLOW keeps it inside."""
        target = _split(m.linkname, "hard link target")
        if not target:
            raise _Refused(f"hard link {m.name!r} has an empty target")
        missing = _Refused(
            f"hard link {m.name!r} points at {m.linkname!r}, which is not in the archive"
        )
        try:
            tfd = self._open_parent(target, m.linkname, create=False)
        except FileNotFoundError:
            raise missing from None
        try:
            st = os.stat(target[-1], dir_fd=tfd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                raise _Refused(f"hard link {m.name!r} points at {m.linkname!r}, not a file")
            if target == parts:
                return  # a link to itself: already there
            # Cleared only after the target is known good, so a bad link removes nothing.
            self._clear(fd, parts[-1], keep_dir=False)
            os.link(target[-1], parts[-1], src_dir_fd=tfd, dst_dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            raise missing from None
        finally:
            os.close(tfd)

    def _owner_and_time(self, fd: int, leaf: str, m: tarfile.TarInfo) -> None:
        if self.as_root:
            os.chown(leaf, m.uid, m.gid, dir_fd=fd, follow_symlinks=False)
        os.utime(leaf, _times(m), dir_fd=fd, follow_symlinks=False)

    def _finish_dir(self, parts: list[str], m: tarfile.TarInfo) -> None:
        try:
            if parts:
                pfd = self._open_parent(parts, m.name, create=False)
                try:
                    dfd = os.open(parts[-1], _DIR_OPEN, dir_fd=pfd)
                finally:
                    os.close(pfd)
            else:
                dfd = os.open(self.rootfs, _DIR_OPEN)
        except (OSError, _Refused):
            return  # a later member replaced this directory; nothing to finish
        try:
            if self.as_root:
                os.fchown(dfd, m.uid, m.gid)
            os.fchmod(dfd, m.mode & _MODE_KEEP)
            os.utime(dfd, _times(m))
        finally:
            os.close(dfd)


def _times(m: tarfile.TarInfo) -> tuple[int, int]:
    # A hostile or broken header can carry any number; clamp it rather than fail the import.
    t = max(-(2**31), min(int(m.mtime), 2**34))
    return (t, t)


def _copy(src: IO[bytes], fd: int) -> None:
    while chunk := src.read(_COPY_CHUNK):
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view) :]
