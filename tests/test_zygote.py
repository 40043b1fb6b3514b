"""The zygote's spawn, run in a process of its own (single-threaded, as the zygote is): one
clone(2) into the namespaces where the architecture allows, fork + unshare + fork elsewhere."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Basin

# Spawns one container the way the zygote does and reports what happened. argv: the state
# directory to use, the image's rootfs, "clone" or "fork" (the path to take).
SPAWN = r"""
import json, os, sys
from basin import syscalls as sc, zygote

d, lower, how = sys.argv[1:]
sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)  # the fork path leaves PID 1 to us, as to the zygote
if how == "fork":
    sc.can_clone = lambda: False
forks = []
real_fork = os.fork
def counting_fork():
    forks.append(1)  # only the calls made in this process are seen here
    return real_fork()
os.fork = counting_fork
for sub in ("upper", "work", "merged"):
    os.mkdir(os.path.join(d, sub))
files = {}
for name in ("hostname", "hosts", "resolv.conf"):
    open(os.path.join(d, name), "w").close()
    files["/etc/" + name] = os.path.join(d, name)
stdin = os.open("/dev/null", os.O_RDONLY)
out_r, out_w = os.pipe()
go_r, go_w = os.pipe()
st_r, st_w = os.pipe()
spec = {
    "id": "t", "fds": ["stdin", "stdout", "stderr", "go", "status"],
    "rootfs": {"lower": lower, "upper": d + "/upper", "work": d + "/work",
               "merged": d + "/merged", "overlay": True},
    "volumes": [], "hostname": "spawned", "files": files, "netns": True, "tty": False,
    "argv": ["sh", "-c", "echo $$ $(hostname) $(cat /proc/net/dev | grep -c :)"],
    "env": {"PATH": "/bin"}, "workdir": "/",
}
reply, keep = zygote._spawn(spec, [stdin, out_w, os.dup(out_w), go_r, st_w])  # closes ours
os.write(go_w, b"g")
os.close(go_w)
def read_all(fd):
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    return b"".join(chunks).decode()
status, out = read_all(st_r), read_all(out_r)
_, wstatus = os.waitpid(reply["pid"], 0)
print(json.dumps({"forks": len(forks), "status": status, "out": out,
                  "code": os.waitstatus_to_exitcode(wstatus)}))
"""


@pytest.mark.parametrize("how", ["clone", "fork"])
def test_spawn_runs_pid_1_in_new_namespaces(basin: Basin, tmp_path: Path, how: str) -> None:
    d = tmp_path / "ctr"
    d.mkdir()
    lower = basin.root / "images" / "busybox" / "rootfs"
    res = subprocess.run(
        [sys.executable, "-c", SPAWN, str(d), str(lower), how],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    # one clone and no fork, or the fork of the intermediate (its own fork is its own)
    assert got["forks"] == (0 if how == "clone" else 1)
    assert got["status"] == ""  # EOF without a message: the command was exec'd
    # PID 1, its own hostname, and a network namespace with nothing but lo
    assert got["out"] == "1 spawned 1\n"
    assert got["code"] == 0
