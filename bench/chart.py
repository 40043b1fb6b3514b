"""A PNG of the medians: one horizontal bar per timed row (log scale), failures marked."""

from __future__ import annotations

from pathlib import Path

from bench.results import Row


def draw(rows: list[Row], out: Path) -> str:
    """Write the chart; '' on success, else why there is none (e.g. matplotlib missing)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        return f"no chart: {exc}"
    timed = [r for r in rows if r.unit == "ms"]
    if not timed:
        return "no chart: no timed rows"
    labels = [_short(f"{r.scenario} — {r.tool}") for r in timed]
    measured = [r.median for r in timed if r.median is not None]
    floor = min(measured) / 2 if measured else 1.0
    values = [r.median if r.median is not None else floor for r in timed]
    colors = [
        "#999999" if r.median is None else "#1f77b4" if r.tool.startswith("basin") else "#ff7f0e"
        for r in timed
    ]
    fig, ax = plt.subplots(figsize=(11, 0.32 * len(timed) + 1.5))
    positions = list(range(len(timed)))
    ax.barh(positions, values, color=colors)
    ax.set_yticks(positions, labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("median, ms (log scale); grey = failed or unavailable")
    ax.set_title("basin vs runc, crun, podman, unshare (blue = basin)")
    for pos, row, value in zip(positions, timed, values, strict=True):
        text = f"{row.median:.1f} ms" if row.median is not None else "failed"
        ax.text(value, pos, " " + text, va="center", fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    _shrink(out)
    return ""


def _shrink(png: Path) -> None:
    """A few flat colours need no 24-bit pixels: a 32-colour palette is ~4x smaller, which
    matters for a chart that is committed with every run."""
    try:
        from PIL import Image
    except ImportError:
        return
    with Image.open(png) as img:
        small = img.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    small.save(png, optimize=True)


def _short(label: str, width: int = 72) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"
