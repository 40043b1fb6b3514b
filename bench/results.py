"""Rows of measurements, the goals they are held to, and the markdown report they make."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Row:
    """One scenario/tool pair: its samples, or the error that kept it from having any."""

    scenario: str
    tool: str
    unit: str = "ms"
    samples: list[float] = field(default_factory=list)
    error: str = ""
    note: str = ""
    ratio: float | None = None
    goal: str = ""
    met: bool | None = None

    @property
    def ok(self) -> bool:
        return not self.error and bool(self.samples)

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    def fail(self, error: str) -> None:
        if not self.error:
            self.error = error


def compare(basin: Row, peer: Row, goal: str = "", max_ratio: float | None = None) -> None:
    """Fill the peer row's basin/peer ratio of medians, and judge `ratio <= max_ratio`."""
    peer.goal = goal
    if basin.median is None or peer.median is None or peer.median == 0:
        return
    peer.ratio = basin.median / peer.median
    if max_ratio is not None:
        peer.met = peer.ratio <= max_ratio


def judge(row: Row, goal: str, test: Callable[[float], bool]) -> None:
    """Hold a row's own median to an absolute goal."""
    row.goal = goal
    if row.median is not None and not row.error:
        row.met = test(row.median)


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit in {"ms", "KB", "MB/s"} and value >= 100:
        return f"{value:.0f} {unit}"
    if value >= 10:
        return f"{value:.1f} {unit}"
    return f"{value:.2f} {unit}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sections: list[tuple[str, str]] = field(default_factory=list)

    def add(self, *rows: Row) -> None:
        self.rows.extend(rows)

    def table(self) -> str:
        head = (
            "| scenario | tool | n | median | min | max | ratio basin/peer | goal | met | notes |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n"
        )
        lines = []
        for r in self.rows:
            low = min(r.samples) if r.samples else None
            high = max(r.samples) if r.samples else None
            ratio = f"{r.ratio:.2f}" if r.ratio is not None else "—"
            met = {True: "met", False: "not met", None: "—" if not r.goal else "n/a"}[r.met]
            note = r.note
            if r.error:
                note = f"**error:** {r.error}" + (f"; {r.note}" if r.note else "")
            cells = [
                r.scenario,
                r.tool,
                str(len(r.samples)),
                _number(r.median, r.unit),
                _number(low, r.unit),
                _number(high, r.unit),
                ratio,
                r.goal or "—",
                met,
                note,
            ]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        return head + "\n".join(lines) + "\n"

    def markdown(self, title: str, preamble: list[str], chart: str | None) -> str:
        parts = [f"# {title}\n", "\n".join(preamble) + "\n", self.table()]
        if chart:
            parts.append(f"![medians]({chart})\n")
        if self.notes:
            parts.append("## Notes\n\n" + "\n".join(f"- {n}" for n in self.notes) + "\n")
        for heading, body in self.sections:
            parts.append(f"## {heading}\n\n{body}\n")
        return "\n".join(parts)

    def write(self, path: Path, title: str, preamble: list[str], chart: str | None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.markdown(title, preamble, chart))
