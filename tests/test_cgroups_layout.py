"""The pure parsers of /proc/self/mountinfo and /proc/self/cgroup, fed other machines' text."""

from __future__ import annotations

from pathlib import Path

import pytest

from basin.errors import BasinError
from plugins.cgroups.layout import (
    group_dir,
    host_layout,
    layout_of,
    parse_mountinfo,
    parse_proc_cgroup,
    v1_mount_points,
    v2_mount_point,
)

# This machine's layout: v1 controllers each on their own mount, cgroup2 at unified.
HYBRID = """\
25 31 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""

PURE_V2 = """\
30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
"""

# A docker container without a cgroup namespace: the mounts show only its own subtree, and
# cpu,cpuacct are co-mounted (with an escaped space in an unrelated mount point).
CONTAINER_V1 = """\
600 590 0:70 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro,nosuid - cgroup cgroup rw,xattr,cpu,cpuacct
601 590 0:71 /docker/abc /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory
602 590 0:72 /docker/abc /sys/fs/cgroup/systemd ro - cgroup cgroup rw,name=systemd,release_agent=/x
603 590 0:73 / /mnt/my\\040dir rw - ext4 /dev/sda1 rw
"""

ONLY_NAMED_V1 = """\
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw
"""

PROC_CGROUP = """\
9:name=systemd:/
8:pids:/
4:memory:/process_api/d1fb
2:cpu,cpuacct:/docker/abc
0::/user.slice/x.scope
"""


def test_layouts() -> None:
    assert layout_of(parse_mountinfo(HYBRID)) == "hybrid"
    assert layout_of(parse_mountinfo(PURE_V2)) == "v2"
    assert layout_of(parse_mountinfo(CONTAINER_V1)) == "v1"
    assert layout_of(parse_mountinfo(ONLY_NAMED_V1)) == "v2"
    with pytest.raises(BasinError, match="no cgroup"):
        layout_of(parse_mountinfo("25 31 0:23 / /sys rw - sysfs sysfs rw\n"))


def test_this_host_parses() -> None:
    assert host_layout() in ("v1", "v2", "hybrid")


def test_v1_mount_points() -> None:
    points = v1_mount_points(parse_mountinfo(HYBRID))
    assert points["memory"].mount_point == Path("/sys/fs/cgroup/memory")
    assert points["cpuacct"].mount_point == Path("/sys/fs/cgroup/cpuacct")
    assert points["name=systemd"].controllers == {"name=systemd"}
    assert "rw" not in points
    assert v2_mount_point(parse_mountinfo(HYBRID)) is not None
    assert v2_mount_point(parse_mountinfo(CONTAINER_V1)) is None

    co = v1_mount_points(parse_mountinfo(CONTAINER_V1))
    assert co["cpu"] is co["cpuacct"]
    assert co["cpu"].controllers == {"cpu", "cpuacct"}
    assert co["name=systemd"].controllers == {"name=systemd"}  # release_agent= is no controller
    assert co["memory"].root == "/docker/abc"


def test_escaped_mount_point() -> None:
    line = "7 1 0:5 / /mnt/a\\040b rw - cgroup2 cgroup2 rw\n"
    assert parse_mountinfo(line)[0].mount_point == Path("/mnt/a b")


def test_parse_proc_cgroup() -> None:
    own = parse_proc_cgroup(PROC_CGROUP)
    assert own["memory"] == "/process_api/d1fb"
    assert own["cpu"] == own["cpuacct"] == "/docker/abc"
    assert own["name=systemd"] == "/"
    assert own[""] == "/user.slice/x.scope"


def test_group_dir() -> None:
    hybrid = v1_mount_points(parse_mountinfo(HYBRID))
    assert group_dir(hybrid["memory"], "/process_api/d1fb") == Path(
        "/sys/fs/cgroup/memory/process_api/d1fb"
    )
    assert group_dir(hybrid["pids"], "/") == Path("/sys/fs/cgroup/pids")
    inside = v1_mount_points(parse_mountinfo(CONTAINER_V1))
    assert group_dir(inside["cpu"], "/docker/abc") == Path("/sys/fs/cgroup/cpu,cpuacct")
    assert group_dir(inside["cpu"], "/docker/abc/sub") == Path("/sys/fs/cgroup/cpu,cpuacct/sub")
    with pytest.raises(BasinError, match="outside the mount"):
        group_dir(inside["cpu"], "/docker/abcdef")
