"""Top-1 accuracy against IPC, one figure per (dataset, protocol, network), from ``runs.csv``.

One line per method: the mean ± sample std (ddof=1, as the tables) over seeds x repeats of the
best test top-1 over training (solid, the papers' number) and of the test top-1 at the epoch of best
validation top-1 (dashed, same colour; absent where a protocol has no validation evaluations).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.lines import Line2D

from .render import FONT_SIZE, new_figure, save_png

READINGS = (("best_top1", "-", "best"), ("val_selected_top1", "--", "val-selected"))


def summarise(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per (method, ipc): mean, std (ddof=1; 0 for a single run) and n of ``metric``'s non-null runs."""
    values = runs.dropna(subset=[metric]).groupby(["method", "ipc"])[metric]
    return values.agg(mean="mean", std="std", n="count").fillna({"std": 0.0}).reset_index()


def draw_accuracy(runs: pd.DataFrame, methods: list[str], colors: dict[str, tuple], title: str,
                  path: Path) -> dict[str, list[int]]:
    """Draw one block's runs; returns the run counts per point of each reading (for the caption)."""
    fig = new_figure(520, 400)
    fig.set_layout_engine("constrained")
    ax = fig.subplots()
    counts = {}
    for metric, style, name in READINGS:
        table = summarise(runs, metric)
        counts[metric] = sorted(set(table["n"].tolist()))
        for method in methods:
            rows = table[table["method"] == method].sort_values("ipc")
            if rows.empty:
                continue
            ax.errorbar(rows["ipc"], rows["mean"], yerr=rows["std"], color=colors[method], linestyle=style,
                        marker="o", markersize=3, capsize=2, linewidth=1.2)
    ipcs = sorted(runs["ipc"].unique().tolist())
    ax.set_xscale("log")
    ax.set_xticks(ipcs, [str(i) for i in ipcs])
    ax.minorticks_off()
    if len(ipcs) == 1:
        ax.set_xlim(ipcs[0] / 2, ipcs[0] * 2)
    ax.set_xlabel("images per class (IPC)", fontsize=FONT_SIZE)
    ax.set_ylabel("test top-1 (%)", fontsize=FONT_SIZE)
    ax.tick_params(labelsize=FONT_SIZE)
    ax.grid(alpha=0.3)
    shown = [m for m in methods if m in set(runs["method"])]
    handles = [Line2D([], [], color=colors[m], marker="o", markersize=3) for m in shown]
    handles += [Line2D([], [], color="black", linestyle=style) for _, style, _ in READINGS]
    fig.legend(handles, shown + [name for _, _, name in READINGS], fontsize=FONT_SIZE, frameon=False,
               loc="outside lower center", ncols=min(len(handles), 5))
    ax.set_title(title, fontsize=FONT_SIZE + 1)
    save_png(fig, path)
    return counts

