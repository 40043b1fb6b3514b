"""Shared fixtures. Every test runs against its own BASIN_ROOT/BASIN_RUN and fails if it
leaves a mount, link, cgroup, rule, process or state file behind."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import leaks

if os.geteuid() != 0:  # the integration tests need namespaces, mounts and cgroups
    raise pytest.UsageError("basin's tests run as root")


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[None]:
    roots = [tmp_path]
    before = leaks.snapshot(roots)
    yield
    # processes may take a moment to be reaped after the last test step
    deadline = time.monotonic() + 5
    while True:
        left = leaks.snapshot(roots) - before
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not left, "test leaked:\n" + "\n".join(sorted(left))
