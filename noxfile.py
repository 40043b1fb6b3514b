"""Checks: nox -s lint typecheck tests (CI runs all three); nox -s bench for the benchmarks."""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True

SOURCES = [p for p in ("basin", "plugins", "tests", "bench", "noxfile.py") if os.path.exists(p)]


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.4")
    session.run("ruff", "check", *SOURCES)
    session.run("ruff", "format", "--check", *SOURCES)


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("mypy")


@nox.session
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    session.run("pytest", *(session.posargs or ["-x", "-q"]))


# setuptools' default editable install loads an import hook in every process (~9 ms each
# `basin` call); compat mode is a plain path entry, as cheap as a regular install.
EDITABLE = ["--config-settings", "editable_mode=compat", "-e"]


@nox.session
def bench(session: nox.Session) -> None:
    """Not part of the test run. Times `basin` as scripts/setup installs it: the compiled
    client, which execs the venv's Python CLI for what it does not do itself."""
    session.install(*EDITABLE, ".[test]", "matplotlib")  # matplotlib: the PNG chart
    bindir = session.bin
    session.run("scripts/build-client", f"{bindir}/basin-client", f"{bindir}/python", external=True)
    session.run("python", "-m", "bench", *session.posargs)
