"""Symlinks in an image never lead the runtime out of the container's root.

The root is built before pivot_root, while "/" is still the host's: every path basin creates
or mounts onto inside it (volumes, /etc/hosts and friends, /proc, /dev, /sys) must resolve
as it would inside the container. The images here point those paths at the host (under the
test's tmp_path); the containers must start, see what basin gave them there, and leave the
host untouched. basin.safepath, the resolver, is tested on its own at the end."""

from __future__ import annotations

import errno
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from basin import safepath
from basin import syscalls as sc
from tests.conftest import Basin

ETC_FILES = ("etc/hosts", "etc/hostname", "etc/resolv.conf")


def _image(
    basin: Basin, busybox_tar: Path, tmp_path: Path, name: str, symlinks: dict[str, str]
) -> None:
    """Import busybox with SYMLINKS (tar member name -> target) in place of those members."""
    tar = tmp_path / f"{name}.tar"
    with tarfile.open(busybox_tar) as src, tarfile.open(tar, "w") as out:
        for m in src.getmembers():
            if m.name in symlinks:
                continue
            out.addfile(m, src.extractfile(m) if m.isfile() else None)
        for member, target in symlinks.items():
            link = tarfile.TarInfo(member)
            link.type, link.linkname, link.mode = tarfile.SYMTYPE, target, 0o777
            out.addfile(link)
    basin.ok("image", "import", str(tar), name)


def _host_tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_etc_files_symlinked_to_the_host_stay_inside(
    basin: Basin, busybox_tar: Path, tmp_path: Path
) -> None:
    # absolute links into a host directory that exists: a plain join-and-open before
    # pivot_root would create the files there, on the host, and bind-mount over them
    host = tmp_path / "host"
    host.mkdir()
    _image(
        basin, busybox_tar, tmp_path, "etclinks", {f: f"{host}/{Path(f).name}" for f in ETC_FILES}
    )
    out = basin.ok(
        "run",
        "--rm",
        "--network",
        "none",
        "--hostname",
        "symhost",
        "etclinks",
        "sh",
        "-c",
        "cat /etc/hostname; grep -c symhost /etc/hosts; test -f /etc/resolv.conf && echo r; "
        "readlink -f /etc/hosts; hostname",
    )
    assert out.splitlines() == ["symhost", "1", "r", f"{host}/hosts", "symhost"]
    assert _host_tree(host) == []


def test_etc_files_dangling_into_missing_dirs(
    basin: Basin, busybox_tar: Path, tmp_path: Path
) -> None:
    # the directories the links lead through exist nowhere: made inside the root, as the
    # container resolves the links
    gone = tmp_path / "gone"
    _image(basin, busybox_tar, tmp_path, "dangling", {f: f"{gone}/a/b/{f}" for f in ETC_FILES})
    out = basin.ok(
        "run",
        "--rm",
        "--hostname",
        "dangly",
        "dangling",
        "sh",
        "-c",
        f"cat /etc/hostname; ls {gone}/a/b/etc",
    )
    assert out.split() == ["dangly", "hostname", "hosts", "resolv.conf"]
    assert not gone.exists()


def test_volume_through_a_symlinked_directory(
    basin: Basin, busybox_tar: Path, tmp_path: Path
) -> None:
    # /data -> a host directory: the volume at /data/sub goes to that path inside the root,
    # not into the host's directory
    hostdir = tmp_path / "hostdir"
    hostdir.mkdir()
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "marker").write_text("from the volume\n")
    _image(basin, busybox_tar, tmp_path, "datalink", {"data": str(hostdir)})
    out = basin.ok(
        "run",
        "--rm",
        "-v",
        f"{vol}:/data/sub",
        "datalink",
        "sh",
        "-c",
        "cat /data/sub/marker; readlink -f /data/sub; echo back > /data/sub/out",
    )
    assert out.splitlines() == ["from the volume", f"{hostdir}/sub"]
    assert (vol / "out").read_text() == "back\n"
    assert _host_tree(hostdir) == []


def test_read_only_volume_through_a_symlink_leaves_the_root_writable(
    basin: Basin, busybox_tar: Path, tmp_path: Path
) -> None:
    # the read-only remount must reach the new bind mount (a fresh lookup), not the
    # directory under it, which is the container's writable root
    vol = tmp_path / "vol"
    vol.mkdir()
    gone = tmp_path / "nowhere" / "dir"
    _image(basin, busybox_tar, tmp_path, "rolink", {"data": str(gone)})
    res = basin(
        "run",
        "--rm",
        "-v",
        f"{vol}:/data/sub:ro",
        "rolink",
        "sh",
        "-c",
        "touch /root-ok && echo root-rw; touch /data/sub/x",
    )
    assert res.stdout == "root-rw\n"
    assert "Read-only file system" in res.stderr
    assert res.returncode != 0
    assert _host_tree(vol) == []
    assert not (tmp_path / "nowhere").exists()


def test_proc_dev_sys_symlinked_out_are_mounted_inside(
    basin: Basin, busybox_tar: Path, tmp_path: Path
) -> None:
    host = tmp_path / "host"
    host.mkdir()
    links = {d: f"{host}/{d}" for d in ("proc", "dev", "sys")}
    _image(basin, busybox_tar, tmp_path, "pdslinks", links)
    out = basin.ok(
        "run",
        "--rm",
        "pdslinks",
        "sh",
        "-c",
        "echo $$; cat /proc/self/stat | cut -d' ' -f1 >/dev/null && echo proc; "
        "echo x > /dev/null && test -c /dev/null && echo dev; test -d /sys/kernel && echo sys",
    )
    assert out.split() == ["1", "proc", "dev", "sys"]
    assert _host_tree(host) == []


def test_workdir_through_a_symlink_is_made_inside(
    basin: Basin, busybox_tar: Path, tmp_path: Path
) -> None:
    host = tmp_path / "hostw"
    host.mkdir()
    _image(basin, busybox_tar, tmp_path, "wlink", {"w": str(host)})
    out = basin.ok("run", "--rm", "-w", "/w/sub", "wlink", "sh", "-c", "pwd -P")
    assert out.strip() == f"{host}/sub"
    assert _host_tree(host) == []


def test_a_link_through_proc_is_refused(basin: Basin, busybox_tar: Path, tmp_path: Path) -> None:
    # /proc is mounted by the time /etc/hosts is bound, and /proc/1/root is PID 1's root:
    # before pivot_root, the host's. Such a link cannot be resolved inside the root, so the
    # start fails (125, one line) rather than follow it.
    host = tmp_path / "host"
    host.mkdir()
    _image(basin, busybox_tar, tmp_path, "proclink", {"etc/hosts": f"/proc/1/root{host}/hosts"})
    res = basin("run", "--rm", "proclink", "true")
    assert res.returncode == 125, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("basin: ") and "/etc/hosts" in lines[0]
    assert _host_tree(host) == []
    assert basin.ok("ps", "-aq") == ""  # --rm: nothing left of it


def test_a_file_in_the_way_of_a_volume_fails_cleanly(basin: Basin, tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    vol.mkdir()
    res = basin("run", "--rm", "-v", f"{vol}:/etc/passwd/x", "busybox", "true")
    assert res.returncode == 125
    assert res.stderr.strip() == ("basin: container setup failed: /etc/passwd/x: Not a directory")


# --- the resolver on its own -----------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """tmp_path/root, a container root whose links all try to climb out of it, and an fd of
    it; tmp_path/outside, what they would reach on the host."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "a" / "b").mkdir(parents=True)
    (outside / "dir").mkdir(parents=True)
    (root / "a" / "up").symlink_to("../../../../outside")  # climbs past "/"
    (root / "a" / "b" / "file").symlink_to("../../../../outside/f")  # dangling
    (root / "climb").symlink_to("a/b/../../../../../newdir")  # dangling, through '..'
    (root / "abs").symlink_to(f"{outside}/dir")  # absolute: inside, a missing path
    (root / "chain").symlink_to("a/up/chained")  # a link through a link
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    yield root, fd
    os.close(fd)


def _where(fd: int) -> str:
    try:
        return os.readlink(safepath.fd_path(fd))
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("path", "directory", "expect"),
    [
        ("/a/up/x", True, "outside/x"),
        ("/a/b/file", False, "outside/f"),
        ("/climb/k", True, "newdir/k"),
        ("/abs/q", False, "ROOT/outside/dir/q"),
        ("/chain/deep/er", True, "outside/chained/deep/er"),
        ("/a/b", True, "a/b"),
        ("/", True, ""),
    ],
)
def test_resolves_inside_the_root(
    tree: tuple[Path, int], path: str, directory: bool, expect: str
) -> None:
    root, fd = tree
    outside = root.parent / "outside"
    before = _host_tree(outside)
    got = _where(safepath.open_in_root(fd, path, directory=directory))
    want = root / expect.replace("ROOT", str(root.parent).lstrip("/"))
    assert got == str(want).rstrip("/")
    assert os.path.isdir(got) == directory
    assert _host_tree(outside) == before  # nothing made or followed outside the root
    # a second call finds what the first made
    assert _where(safepath.open_in_root(fd, path, directory=directory)) == got


def test_dotdot_in_the_path_itself_is_refused(tree: tuple[Path, int]) -> None:
    _root, fd = tree
    with pytest.raises(OSError, match=r"must not contain '\.\.'") as e:
        safepath.open_in_root(fd, "/a/../a", directory=True)
    assert e.value.errno == errno.EINVAL


def test_a_magic_link_is_refused(tmp_path: Path) -> None:
    # the host's own root as the "container" root: its /proc is real, and /proc/self/root is
    # a magic link, which would jump wherever the process's root is
    path = f"/proc/self/root{tmp_path}/x"
    fd = os.open("/", os.O_PATH | os.O_DIRECTORY)
    try:
        with pytest.raises(OSError) as e:
            safepath.open_in_root(fd, path, directory=True)
    finally:
        os.close(fd)
    assert e.value.errno == errno.ELOOP
    assert str(e.value.strerror).startswith(f"{path}: ")
    assert not (tmp_path / "x").exists()


def test_a_file_in_the_way(tree: tuple[Path, int]) -> None:
    root, fd = tree
    (root / "plain").write_text("")
    with pytest.raises(NotADirectoryError, match="/plain/x: Not a directory"):
        safepath.open_in_root(fd, "/plain/x", directory=False)


def test_without_openat2_the_start_fails_clearly(
    tree: tuple[Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # an unallocated system call number gets the same ENOSYS a kernel before 5.6 gives
    _root, fd = tree
    monkeypatch.setattr(sc, "_SYS_OPENAT2", 1023)
    with pytest.raises(OSError, match=r"openat2 is not available.*Linux 5\.6") as e:
        safepath.open_in_root(fd, "/a", directory=True)
    assert e.value.errno == errno.ENOSYS
