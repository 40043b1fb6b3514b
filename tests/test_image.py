"""Image import, listing, removal and resolution, including hostile tarballs."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import stat
import tarfile
import threading
from collections.abc import Iterable
from pathlib import Path

import pytest

from basin import image
from basin.errors import BasinError, Conflict, NotFound
from basin.paths import Paths

Member = tuple[tarfile.TarInfo, bytes | None]


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    p = Paths(root=tmp_path / "root", run=tmp_path / "run")
    p.ensure()
    return p


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A directory outside BASIN_ROOT that hostile archives aim at."""
    d = tmp_path / "victim"
    d.mkdir()
    return d


def entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **kw: object) -> Member:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.mtime = 1_700_000_000
    for key, value in kw.items():
        setattr(info, key, value)
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        return info, data
    return info, None


def make_tar(path: Path, members: Iterable[Member], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tf:  # type: ignore[call-overload]
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def simple_members() -> list[Member]:
    return [
        entry("./", tarfile.DIRTYPE),
        entry("./bin", tarfile.DIRTYPE),
        entry("./bin/tool", data=b"#!/bin/sh\necho tool\n", mode=0o755),
        entry("./bin/alias", tarfile.LNKTYPE, linkname="bin/tool"),
        entry("./etc/passwd", data=b"root:x:0:0::/root:/bin/sh\n"),  # no dir entry for etc
        entry("./etc/mtab", tarfile.SYMTYPE, linkname="/proc/mounts"),
        entry("./home/user/notes", data=b"hello", uid=1000, gid=1000),
        entry("./tmp", tarfile.DIRTYPE, mode=0o1777),
    ]


def left_in_images(paths: Paths) -> list[str]:
    return sorted(n for n in os.listdir(paths.images) if n != ".lock")


def assert_refused(paths: Paths, tar: Path, match: str) -> None:
    with pytest.raises(BasinError, match=match) as info:
        image.import_tar(paths, tar, "hostile")
    assert info.value.code == 125
    assert "\n" not in str(info.value)
    assert left_in_images(paths) == [], "a refused import must leave nothing behind"


# --- a good import -------------------------------------------------------------------------


def test_import_extracts_tree(paths: Paths, tmp_path: Path) -> None:
    tar = make_tar(tmp_path / "simple.tar", simple_members())
    img = image.import_tar(paths, tar)

    assert img.name == "simple"
    assert img.rootfs == paths.images / "simple" / "rootfs"
    root = img.rootfs
    assert (root / "bin/tool").read_bytes() == b"#!/bin/sh\necho tool\n"
    assert stat.S_IMODE((root / "bin/tool").stat().st_mode) == 0o755
    assert (root / "bin/alias").stat().st_ino == (root / "bin/tool").stat().st_ino
    assert os.readlink(root / "etc/mtab") == "/proc/mounts"
    assert stat.S_IMODE((root / "etc").stat().st_mode) == 0o755  # implicit parent
    assert stat.S_IMODE((root / "tmp").stat().st_mode) == 0o1777
    notes = (root / "home/user/notes").stat()
    assert (notes.st_uid, notes.st_gid) == (1000, 1000)
    assert int(notes.st_mtime) == 1_700_000_000
    # hard links count once: tool + passwd + notes + the symlink's target length
    assert img.size == 20 + 26 + 5 + len("/proc/mounts")
    assert img.created.endswith("Z") and "T" in img.created

    record = json.loads((paths.images / "simple" / "image.json").read_text())
    assert record["size"] == img.size and record["created"] == img.created
    assert image.list_images(paths) == [img]
    assert img.to_json() == {
        "name": "simple",
        "size": img.size,
        "created": img.created,
        "rootfs": str(root),
    }


def test_import_compressed_and_named(paths: Paths, tmp_path: Path) -> None:
    tar = make_tar(tmp_path / "alpine.tar.gz", simple_members(), mode="w:gz")
    assert image.default_name(tar) == "alpine"
    img = image.import_tar(paths, tar, "mine")
    assert img.name == "mine"
    assert (img.rootfs / "bin/tool").is_file()


def test_later_member_replaces_earlier(paths: Paths, tmp_path: Path) -> None:
    tar = make_tar(
        tmp_path / "dup.tar",
        [entry("a", data=b"one"), entry("a", data=b"two"), entry("d/x"), entry("d", data=b"f")],
    )
    root = image.import_tar(paths, tar).rootfs
    assert (root / "a").read_bytes() == b"two"
    assert (root / "d").read_bytes() == b"f"


def test_readonly_directories_are_removable(paths: Paths, tmp_path: Path) -> None:
    tar = make_tar(
        tmp_path / "ro.tar",
        [
            entry("ro", tarfile.DIRTYPE, mode=0o555),
            entry("ro/file", data=b"x", mode=0o444),
            entry("ro/closed", tarfile.DIRTYPE, mode=0o000),
            entry("ro/closed/inner", data=b"y", mode=0o000),
        ],
    )
    img = image.import_tar(paths, tar)
    assert stat.S_IMODE((img.rootfs / "ro").stat().st_mode) == 0o555
    assert (img.rootfs / "ro/closed/inner").read_bytes() == b"y"
    image.remove(paths, "ro")
    assert left_in_images(paths) == []


# --- hostile archives ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("/abs", "absolute path"),
        ("../x", "'..'"),
        ("a/../../x", "'..'"),
        ("ok/../../../../../../tmp/basin-escape", "'..'"),
    ],
)
def test_escaping_paths_refused(paths: Paths, tmp_path: Path, name: str, match: str) -> None:
    tar = make_tar(tmp_path / "bad.tar", [entry("fine", data=b"x"), entry(name, data=b"evil")])
    assert_refused(paths, tar, match)
    assert not Path("/abs").exists() and not Path("/tmp/basin-escape").exists()


def test_write_through_absolute_symlink_refused(paths: Paths, tmp_path: Path, victim: Path) -> None:
    members = [entry("etc", tarfile.SYMTYPE, linkname=str(victim)), entry("etc/passwd", data=b"x")]
    assert_refused(paths, make_tar(tmp_path / "bad.tar", members), "not a directory")
    assert os.listdir(victim) == []


def test_write_through_relative_symlink_refused(paths: Paths, tmp_path: Path, victim: Path) -> None:
    # From images/.tmp-X/rootfs/up, ../../../../victim is tmp_path/victim.
    members = [
        entry("up", tarfile.SYMTYPE, linkname="../../../../victim"),
        entry("up/planted", data=b"x"),
    ]
    assert_refused(paths, make_tar(tmp_path / "bad.tar", members), "not a directory")
    assert os.listdir(victim) == []


def test_write_through_nested_symlink_dir_refused(
    paths: Paths, tmp_path: Path, victim: Path
) -> None:
    members = [
        entry("a/b", tarfile.SYMTYPE, linkname=str(victim)),
        entry("a/b/c/d", tarfile.DIRTYPE),
    ]
    assert_refused(paths, make_tar(tmp_path / "bad.tar", members), "'a/b'")
    assert os.listdir(victim) == []


def test_file_over_symlink_replaces_link(paths: Paths, tmp_path: Path, victim: Path) -> None:
    members = [
        entry("x", tarfile.SYMTYPE, linkname=str(victim / "target")),
        entry("x", data=b"inside"),
    ]
    root = image.import_tar(paths, make_tar(tmp_path / "t.tar", members)).rootfs
    assert not (root / "x").is_symlink()
    assert (root / "x").read_bytes() == b"inside"
    assert os.listdir(victim) == []


@pytest.mark.parametrize(
    ("linkname", "match"),
    [
        ("/etc/passwd", "absolute path"),
        ("../../../../../../etc/passwd", "'..'"),
        ("etc/passwd", "not a directory"),  # through the `etc -> /etc` symlink below
        ("missing", "not in the archive"),
        ("dir", "not a file"),
        ("sym", "not a file"),
    ],
)
def test_hardlinks_must_stay_inside(
    paths: Paths, tmp_path: Path, linkname: str, match: str
) -> None:
    before = os.stat("/etc/passwd").st_nlink
    members = [
        entry("etc", tarfile.SYMTYPE, linkname="/etc"),
        entry("dir", tarfile.DIRTYPE),
        entry("sym", tarfile.SYMTYPE, linkname="/etc/passwd"),
        entry("stolen", tarfile.LNKTYPE, linkname=linkname),
    ]
    assert_refused(paths, make_tar(tmp_path / "bad.tar", members), match)
    assert os.stat("/etc/passwd").st_nlink == before


def test_devices_and_fifos_dropped(paths: Paths, tmp_path: Path) -> None:
    members = [
        entry("dev", tarfile.DIRTYPE),
        entry("dev/sda", tarfile.BLKTYPE, devmajor=8, devminor=0),
        entry("dev/mem", tarfile.CHRTYPE, devmajor=1, devminor=1),
        entry("dev/pipe", tarfile.FIFOTYPE),
        entry("keep", data=b"k"),
    ]
    root = image.import_tar(paths, make_tar(tmp_path / "dev.tar", members)).rootfs
    assert os.listdir(root / "dev") == []
    assert (root / "keep").read_bytes() == b"k"


def test_setuid_and_setgid_stripped(paths: Paths, tmp_path: Path) -> None:
    members = [
        entry("suid", data=b"x", mode=0o4755),
        entry("sgid", data=b"x", mode=0o2755),
        entry("shared", tarfile.DIRTYPE, mode=0o2775),
        entry("sticky", tarfile.DIRTYPE, mode=0o1777),
    ]
    root = image.import_tar(paths, make_tar(tmp_path / "s.tar", members)).rootfs
    assert stat.S_IMODE((root / "suid").stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "sgid").stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "shared").stat().st_mode) == 0o775
    assert stat.S_IMODE((root / "sticky").stat().st_mode) == 0o1777


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "-x", ".hidden", "a/b", "a b", "x" * 129, "é", "_a"])
def test_bad_names(paths: Paths, tmp_path: Path, name: str) -> None:
    tar = make_tar(tmp_path / "ok.tar", simple_members())
    with pytest.raises(BasinError, match="invalid image name") as info:
        image.import_tar(paths, tar, name)
    assert info.value.code == 125
    assert left_in_images(paths) == []
    with pytest.raises(BasinError, match="invalid image name"):
        image.resolve(paths, name)


def test_longest_name_accepted(paths: Paths, tmp_path: Path) -> None:
    tar = make_tar(tmp_path / "ok.tar", simple_members())
    assert image.import_tar(paths, tar, "a" * 128).name == "a" * 128


def test_missing_file(paths: Paths, tmp_path: Path) -> None:
    with pytest.raises(BasinError, match="no such file"):
        image.import_tar(paths, tmp_path / "nope.tar")
    with pytest.raises(BasinError, match="not a regular file"):
        image.import_tar(paths, tmp_path, "dir")
    assert left_in_images(paths) == []


def test_unusable_default_name(paths: Paths, tmp_path: Path) -> None:
    tar = make_tar(tmp_path / "my image.tar", simple_members())
    with pytest.raises(BasinError, match="give a NAME"):
        image.import_tar(paths, tar)
    assert image.import_tar(paths, tar, "mine").name == "mine"


@pytest.mark.parametrize("content", [b"", b"not a tarball\n", os.urandom(4096)])
def test_not_a_tar(paths: Paths, tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "junk.tar"
    bad.write_bytes(content)
    with pytest.raises(BasinError, match="cannot import") as info:
        image.import_tar(paths, bad)
    assert "\n" not in str(info.value)
    assert left_in_images(paths) == []


def test_truncated_tar(paths: Paths, tmp_path: Path) -> None:
    tar = make_tar(tmp_path / "full.tar", [entry("big", data=b"z" * 100_000)])
    cut = tmp_path / "cut.tar"
    cut.write_bytes(tar.read_bytes()[:50_000])
    with pytest.raises(BasinError, match="cannot import"):
        image.import_tar(paths, cut)
    assert left_in_images(paths) == []


def test_duplicate_import(paths: Paths, tmp_path: Path) -> None:
    tar = make_tar(tmp_path / "dup.tar", simple_members())
    first = image.import_tar(paths, tar)
    with pytest.raises(Conflict, match="already exists") as info:
        image.import_tar(paths, tar)
    assert info.value.code == 125
    assert (first.rootfs / "bin/tool").is_file()
    assert left_in_images(paths) == ["dup"]


def test_stale_temp_dirs_swept(paths: Paths, tmp_path: Path) -> None:
    stale = paths.images / ".tmp-crashed"
    (stale / "rootfs/etc").mkdir(parents=True)
    image.import_tar(paths, make_tar(tmp_path / "a.tar", simple_members()))
    assert left_in_images(paths) == ["a"]


# --- list / rm / resolve -------------------------------------------------------------------


def test_list_skips_corrupt_records(paths: Paths, tmp_path: Path) -> None:
    tar = make_tar(tmp_path / "good.tar", simple_members())
    good = image.import_tar(paths, tar)
    for name, record in [("torn", '{"size": 1'), ("odd", '["x"]'), ("typed", '{"size": "1"}')]:
        image.import_tar(paths, tar, name)
        (paths.images / name / "image.json").write_text(record)
    (paths.images / "norecord").mkdir()
    assert image.list_images(paths) == [good]
    with pytest.raises(BasinError, match="corrupt"):
        image.resolve(paths, "torn")
    image.remove(paths, "torn")  # a corrupt image can still be removed


def test_list_without_images_dir(tmp_path: Path) -> None:
    assert image.list_images(Paths(root=tmp_path / "none", run=tmp_path / "run")) == []


def test_remove(paths: Paths, tmp_path: Path) -> None:
    img = image.import_tar(paths, make_tar(tmp_path / "gone.tar", simple_members()))
    image.remove(paths, "gone")
    assert not img.rootfs.exists()
    assert left_in_images(paths) == []
    with pytest.raises(NotFound, match="no such image: gone") as info:
        image.remove(paths, "gone")
    assert info.value.code == 125


def test_resolve_imported(paths: Paths, tmp_path: Path) -> None:
    img = image.import_tar(paths, make_tar(tmp_path / "here.tar", simple_members()))
    assert image.resolve(paths, "here") == img


def test_resolve_from_image_path(
    paths: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    make_tar(first / "web.tar", [entry("which", data=b"first")])
    make_tar(second / "web.tar", [entry("which", data=b"second")])
    make_tar(second / "db.tar", [entry("which", data=b"db")])
    monkeypatch.setenv("BASIN_IMAGE_PATH", f"{first}::{second}")
    monkeypatch.setattr(image, "DEFAULT_IMAGE_DIRS", ())

    web = image.resolve(paths, "web")
    assert (web.rootfs / "which").read_bytes() == b"first"
    assert (image.resolve(paths, "db").rootfs / "which").read_bytes() == b"db"
    assert image.resolve(paths, "web") == web  # imported once, then found by name
    assert [i.name for i in image.list_images(paths)] == ["db", "web"]
    with pytest.raises(NotFound, match=r"^no such image: nothing$"):
        image.resolve(paths, "nothing")


def test_resolve_falls_back_to_default_dirs(
    paths: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    make_tar(home / "base.tar", simple_members())
    monkeypatch.delenv("BASIN_IMAGE_PATH", raising=False)
    monkeypatch.setattr(image, "DEFAULT_IMAGE_DIRS", (home,))
    assert image.resolve(paths, "base").name == "base"


# --- concurrency ---------------------------------------------------------------------------


def test_parallel_import_threads(paths: Paths, tmp_path: Path) -> None:
    tar = make_tar(tmp_path / "race.tar", [*simple_members(), entry("big", data=b"b" * 10**6)])
    start = threading.Barrier(4)
    results: list[str] = []

    def worker() -> None:
        start.wait()
        try:
            image.import_tar(paths, tar)
            results.append("ok")
        except Conflict:
            results.append("conflict")

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["conflict"] * 3 + ["ok"]
    assert left_in_images(paths) == ["race"]


def _resolve_in_child(root: str, run: str, start: object, out: object) -> None:
    start.wait()  # type: ignore[attr-defined]
    img = image.resolve(Paths(root=Path(root), run=Path(run)), "race")
    out.put((img.created, str(img.rootfs)))  # type: ignore[attr-defined]


def test_parallel_resolve_processes(
    paths: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    make_tar(store / "race.tar", [*simple_members(), entry("big", data=b"b" * 10**6)])
    monkeypatch.setenv("BASIN_IMAGE_PATH", str(store))
    ctx = multiprocessing.get_context("fork")
    start, out = ctx.Barrier(4), ctx.Queue()
    args = (str(paths.root), str(paths.run), start, out)
    procs = [ctx.Process(target=_resolve_in_child, args=args) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0] * 4
    seen = {out.get(timeout=5) for _ in procs}
    assert len(seen) == 1, "every process must get the one image"
    assert left_in_images(paths) == ["race"]
