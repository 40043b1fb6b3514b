"""Aligned text tables, as `ps`, `images` and `network ls` print them. Imports nothing, so
`basin ps` does not pay for the log reader's modules."""

from __future__ import annotations


def table(headers: list[str], rows: list[list[str]], gap: int = 3) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = []
    for row in [headers, *rows]:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=True)]
        lines.append((" " * gap).join(cells).rstrip())
    return "\n".join(lines)
