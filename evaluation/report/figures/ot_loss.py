"""Final OT loss of each sample in generation order (DMGD supplementary, Figure 4).

DMGD's distribution matching records, per class, the final OT loss (eq. 49) of each sample in the
order it was generated (``records.final_ot_loss`` of the set's manifest). Each variant that has the
records is one line: the mean over classes and seeds at each sample index, with a ± std band, so
that a variant with semantic matching and one without it are read against each other.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .render import FONT_SIZE, new_figure, save_png

RECORD = "final_ot_loss"


def read_ot_losses(synset_dir: Path) -> np.ndarray | None:
    """classes x IPC array of the set's final OT losses, or None when its manifest has none."""
    manifest = json.loads((synset_dir / "manifest.json").read_text())
    losses = (manifest.get("records") or {}).get(RECORD)
    return None if losses is None else np.asarray(losses, dtype=np.float64)


def draw_ot_loss(losses: dict[str, np.ndarray], colors: dict[str, tuple], title: str, path: Path) -> None:
    """``losses``: variant -> (classes x seeds) x IPC array; one mean line with a ± std band each."""
    fig = new_figure(520, 340)
    fig.set_layout_engine("constrained")
    ax = fig.subplots()
    for variant, values in losses.items():
        index = np.arange(values.shape[1])
        mean, std = values.mean(axis=0), values.std(axis=0)
        ax.plot(index, mean, marker="o", markersize=3, color=colors[variant],
                label=f"{variant} (n={len(values)})")
        ax.fill_between(index, mean - std, mean + std, color=colors[variant], alpha=0.2, linewidth=0)
    ax.set_xlabel("sample index within class (generation order)", fontsize=FONT_SIZE)
    ax.set_ylabel("final OT loss", fontsize=FONT_SIZE)
    ax.tick_params(labelsize=FONT_SIZE)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=FONT_SIZE, frameon=False)
    ax.set_title(title, fontsize=FONT_SIZE + 1)
    save_png(fig, path)
