"""The one busybox rootfs every tool runs: a directory, an OCI bundle around it, a tarball of it."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
DIRS = ["bin", "dev", "etc", "proc", "sys", "tmp", "root"]


def build_rootfs(dest: Path) -> Path:
    """/bin/busybox plus a symlink per applet, and the empty mount points a runtime expects."""
    if not BUSYBOX.exists():
        raise RuntimeError(f"{BUSYBOX} missing: apt-get install busybox-static")
    for d in DIRS:
        (dest / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, dest / "bin" / "busybox")
    applets = subprocess.run(
        [str(BUSYBOX), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        link = dest / "bin" / applet
        if applet != "busybox" and not link.exists():
            link.symlink_to("busybox")
    (dest / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (dest / "etc" / "group").write_text("root:x:0:\n")
    return dest


def write_tar(rootfs: Path, out_tar: Path) -> Path:
    """A `docker export`-style tarball: paths relative to the rootfs, no leading slash."""
    with tarfile.open(out_tar, "w") as tar:
        for child in sorted(rootfs.iterdir()):
            tar.add(child, arcname=child.name)
    return out_tar


def write_bundle(bundle: Path, spec_tool: str) -> Path:
    """An OCI bundle whose rootfs/ is a busybox rootfs: `runc spec` (or `crun spec`), adjusted
    to run `true` without a terminal."""
    build_rootfs(bundle / "rootfs")
    subprocess.run([spec_tool, "spec"], cwd=bundle, check=True, capture_output=True)
    config_path = bundle / "config.json"
    config = json.loads(config_path.read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = ["true"]
    config_path.write_text(json.dumps(config, indent=2))
    return bundle
