"""Figures as small, reproducible PNGs: Agg canvas, fixed dpi, no metadata, atomic writes.

Figures are built on ``matplotlib.figure.Figure`` (never pyplot), so no global state or backend
choice is involved; PNGs carry no ``Software`` text, so the same arrays give the same bytes.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from evaluation.core.artifacts import atomic_path

DPI = 100
FONT_SIZE = 8


def new_figure(width_px: float, height_px: float) -> Figure:
    """A figure of ``width_px`` x ``height_px`` pixels at ``DPI``."""
    # +0.5: the canvas truncates width_in * dpi to an integer; keep it from rounding down a pixel
    fig = Figure(figsize=((width_px + 0.5) / DPI, (height_px + 0.5) / DPI), dpi=DPI)
    fig.patch.set_facecolor("white")
    return fig


def save_png(fig: Figure, path: Path) -> Path:
    """Write ``fig`` to ``path`` atomically as a metadata-free PNG."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    return path


def palette(count: int) -> list[tuple[float, float, float, float]]:
    """``count`` distinguishable colours (tab10, then tab20, then cycling tab20)."""
    cmap = matplotlib.colormaps["tab10" if count <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(count)]


def method_colors(methods: list[str]) -> dict[str, tuple]:
    """One colour per method, by its position in the profile's order: the same in every figure."""
    return dict(zip(methods, palette(len(methods))))
