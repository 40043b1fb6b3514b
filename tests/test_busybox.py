"""The busybox rootfs builder, and its tarball through the image importer into a chroot."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from basin import busybox, image
from basin.errors import BasinError
from basin.paths import Paths

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    not busybox.BUSYBOX.exists(), reason="needs busybox-static at /bin/busybox"
)


@pytest.fixture
def tar(tmp_path: Path) -> Path:
    out = tmp_path / "busybox.tar"
    busybox.build(out)
    return out


def test_tarball_shape(tar: Path) -> None:
    with tarfile.open(tar) as tf:
        members = {m.name: m for m in tf.getmembers()}
        passwd = tf.extractfile("etc/passwd")
        assert passwd is not None and passwd.read().startswith(b"root:x:0:0:")
    bb = members["bin/busybox"]
    assert bb.isreg() and bb.mode == 0o755 and bb.size == busybox.BUSYBOX.stat().st_size
    assert members["tmp"].isdir() and members["tmp"].mode == 0o1777
    assert members["root"].mode == 0o700
    for d in ("dev", "proc", "sys", "home", "etc", "var", "usr/bin", "usr/sbin"):
        assert members[d].isdir(), d
    for f in ("etc/hosts", "etc/resolv.conf", "etc/hostname"):
        assert members[f].isreg() and members[f].size == 0, f
    for name in busybox.applets(busybox.BUSYBOX):
        m = members[name]
        assert m.islnk() and m.linkname == "bin/busybox", name
    assert "bin/sh" in members
    assert "linuxrc" not in members, "applets without a directory go to bin/"
    names = list(members)
    assert names.index("bin/busybox") < names.index("bin/sh"), "link before its target"
    assert all(m.uid == 0 and m.gid == 0 and m.mtime == busybox.MTIME for m in members.values())


def test_deterministic(tar: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.tar"
    busybox.build(again)
    assert again.read_bytes() == tar.read_bytes()


@pytest.mark.parametrize("binary", ["/bin/ls", "/nonexistent/busybox", "/etc/passwd"])
def test_refuses_non_static_or_missing(tmp_path: Path, binary: str) -> None:
    out = tmp_path / "out.tar"
    with pytest.raises(BasinError, match="apt-get install busybox-static") as info:
        busybox.build(out, Path(binary))
    assert info.value.code == 125
    assert not out.exists() and os.listdir(tmp_path) == []


def test_module_cli(tmp_path: Path) -> None:
    out = tmp_path / "cli.tar"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = [sys.executable, "-m", "basin.busybox"]
    ok = subprocess.run([*run, str(out)], env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert tarfile.is_tarfile(out)
    bad = subprocess.run(
        [*run, str(tmp_path / "x.tar"), "--busybox", "/bin/ls"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 125
    assert bad.stderr.startswith("basin: ") and bad.stderr.count("\n") == 1


def test_import_and_run_in_chroot(tar: Path, tmp_path: Path) -> None:
    paths = Paths(root=tmp_path / "root", run=tmp_path / "run")
    img = image.import_tar(paths, tar)
    assert img.name == "busybox"
    root = img.rootfs
    assert (root / "bin/sh").stat().st_ino == (root / "bin/busybox").stat().st_ino
    assert stat.S_IMODE((root / "tmp").stat().st_mode) == 0o1777
    # counted once although ~400 names link to it
    assert busybox.BUSYBOX.stat().st_size <= img.size < busybox.BUSYBOX.stat().st_size + 4096
    done = subprocess.run(
        ["chroot", str(root), "/bin/sh", "-c", "echo hi; cat /etc/group | wc -l"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["hi", "2"]
    image.remove(paths, "busybox")
    assert not root.exists()
