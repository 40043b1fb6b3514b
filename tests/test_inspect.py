"""basin inspect: docker's shape, --format templates, unknown containers."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from basin.cli import inspect as inspect_cli
from basin.cli import template
from basin.cli.options import UsageError
from basin.paths import Paths
from basin.records import Container
from tests.conftest import Basin


def test_inspect_a_running_container(basin: Basin, tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    vol.mkdir()
    cid = basin.ok(
        "run",
        "-d",
        "--name",
        "web",
        "-e",
        "GREETING=hi there",
        "-w",
        "/tmp",
        "-h",
        "box",
        "-v",
        f"{vol}:/data:ro",
        "-m",
        "64m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "50",
        "--log-opt",
        "max-size=1m",
        "--stop-timeout",
        "3",
        "busybox",
        "sleep",
        "60",
    ).strip()
    [obj] = json.loads(basin.ok("inspect", "web"))
    pid = json.loads(basin.ok("ps", "--format", "json"))["pid"]
    assert obj["Id"] == cid and obj["Name"] == "/web"
    assert obj["Path"] == "sleep" and obj["Args"] == ["60"]
    assert obj["Created"].endswith("Z") and obj["Image"] == "busybox"
    st = obj["State"]
    assert st["Status"] == "running" and st["Running"] is True and st["Pid"] == pid
    assert st["ExitCode"] == 0 and st["OOMKilled"] is False
    assert st["StartedAt"].endswith("Z") and st["FinishedAt"] == "0001-01-01T00:00:00Z"
    cfg = obj["Config"]
    assert cfg["Hostname"] == "box" and cfg["WorkingDir"] == "/tmp"
    assert "GREETING=hi there" in cfg["Env"] and cfg["Cmd"] == ["sleep", "60"]
    assert cfg["Tty"] is False and cfg["OpenStdin"] is False and cfg["StopTimeout"] == 3
    hc = obj["HostConfig"]
    assert hc["Memory"] == 64 * 1024 * 1024
    assert hc["NanoCpus"] == 500_000_000 and hc["CpuQuota"] == 50_000
    assert hc["CpuPeriod"] == 100_000 and hc["PidsLimit"] == 50
    assert hc["CpuShares"] == 0 and hc["CpusetCpus"] == ""
    assert hc["Binds"] == [f"{vol}:/data:ro"] and hc["AutoRemove"] is False
    assert hc["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    assert hc["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m"}}
    assert obj["Mounts"] == [
        {"Type": "bind", "Source": str(vol), "Destination": "/data", "RW": False}
    ]
    assert obj["LogPath"] == str(basin.root / "containers" / cid / f"{cid}-json.log")
    assert obj["NetworkSettings"]["IPAddress"] == ""  # --network none: no state.network
    assert basin.ok("inspect", "--format", "{{.State.Pid}}", "web").strip() == str(pid)
    out = basin.ok("inspect", "-f", "{{.Name}} {{.State.Status}} {{.HostConfig.Memory}}", cid[:6])
    assert out == f"/web running {64 * 1024 * 1024}\n"
    assert json.loads(basin.ok("inspect", "-f", "{{json .Config.Cmd}}", "web")) == ["sleep", "60"]


def test_inspect_after_stop_and_several_names(basin: Basin) -> None:
    basin.ok("run", "-d", "--name", "a", "busybox", "sleep", "60")
    basin("run", "--name", "b", "busybox", "sh", "-c", "exit 7")
    basin.ok("stop", "-t", "0", "a")
    objs = json.loads(basin.ok("inspect", "a", "b"))
    assert [o["Name"] for o in objs] == ["/a", "/b"]
    a, b = (o["State"] for o in objs)
    assert a["Status"] == "exited" and a["ExitCode"] == 137 and a["StoppedBy"] == "stop"
    assert a["Pid"] == 0 and a["Running"] is False and a["FinishedAt"].endswith("Z")
    assert b["ExitCode"] == 7 and b["StoppedBy"] == ""
    out = basin.ok("inspect", "--format", "{{.Name}}={{.State.ExitCode}}", "a", "b")
    assert out == "/a=137\n/b=7\n"


def test_inspect_unknown_containers(basin: Basin) -> None:
    basin("run", "--name", "real", "busybox", "true")
    res = basin("inspect", "ghost", "real", "phantom")
    assert res.returncode == 1
    assert [o["Name"] for o in json.loads(res.stdout)] == ["/real"]
    assert res.stderr.splitlines() == [
        "basin: no such container: ghost",
        "basin: no such container: phantom",
    ]
    res = basin("inspect", "ghost")
    assert res.returncode == 1 and json.loads(res.stdout) == []
    res = basin("inspect", "--format", "{{.State.Nope}}", "real")
    assert res.returncode == 125 and "Nope" in res.stderr
    res = basin("inspect", "--format", "{{range .Args}}", "real")
    assert res.returncode == 125 and res.stderr.startswith("basin: ")
    assert basin("inspect").returncode == 125


def test_template_render() -> None:
    obj = {"A": {"B": 1, "C": True, "D": None, "E": [1, 2]}, "S": "x"}
    assert template.render("{{.A.B}}-{{ .S }}-{{.A.C}}", obj) == "1-x-true"
    assert template.render("{{.A.D}} {{.A.E}}", obj) == "<no value> [1, 2]"
    assert json.loads(template.render("{{json .A}}", obj)) == obj["A"]
    with pytest.raises(UsageError):
        template.render("{{.A.Z}}", obj)
    with pytest.raises(UsageError):
        template.check("{{if .A}}x{{end}}")


def _ctr_with_network(net: dict[str, Any] | None, status: str = "exited") -> Container:
    ctr = Container(id="ab" * 32, name="n", config={"network": "basin0", "argv": ["sh"]})
    ctr.state = SimpleNamespace(  # type: ignore[assignment]
        **{**vars(ctr.state), "status": status, "network": net}
    )
    return ctr


def test_network_settings_from_state_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inspect_cli.records, "alive", lambda _state: True)
    net = {
        "network": "basin0",
        "ip": "10.234.1.2",
        "prefixlen": 24,
        "gateway": "10.234.1.1",
        "host_veth": "veth1234",
        "ports": [{"host_port": 8080, "container_port": 80, "proto": "tcp"}, "9090:90/udp"],
    }
    obj = inspect_cli.to_docker(Paths(Path("/r"), Path("/x")), _ctr_with_network(net, "running"))
    ns = obj["NetworkSettings"]
    assert ns["IPAddress"] == "10.234.1.2" and ns["IPPrefixLen"] == 24
    assert ns["Gateway"] == "10.234.1.1"
    assert ns["Networks"]["basin0"]["HostVeth"] == "veth1234"
    assert ns["Ports"] == {
        "80/tcp": [{"HostIp": "", "HostPort": "8080"}],
        "90/udp": [{"HostIp": "", "HostPort": "9090"}],
    }
    # absent: a container from before the network code, or one that has stopped
    obj = inspect_cli.to_docker(Paths(Path("/r"), Path("/x")), _ctr_with_network(None))
    assert obj["NetworkSettings"]["IPAddress"] == "" and obj["NetworkSettings"]["Ports"] == {}
