"""The interactive shell: `basin` with no arguments on a terminal opens the `basin>` prompt.

prompt_toolkit (and aiofiles) are imported only when the shell starts, so the one-shot commands
stay thin."""

from __future__ import annotations


def main() -> int:
    from basin.shell.app import run

    return run()
