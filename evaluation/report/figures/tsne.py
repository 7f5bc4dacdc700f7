"""Joint t-SNE of real and synthetic features (DMGD supplementary, Figure 3).

The real features (a seeded subset of the stored split) and the synthetic features of every method
are embedded together, once, so that all panels share one plane; each panel shows the real points
in grey and one method's points coloured by class. The embedding is the OT distance's
(``evaluation.metrics.ot_distance.embed``: PCA-initialised, seeded, perplexity capped below the
sample count).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from evaluation.metrics.ot_distance import embed
from .render import FONT_SIZE, new_figure, palette, save_png

PANEL_PX = 260
MAX_COLUMNS = 4
LEGEND_MAX_CLASSES = 10   # more classes than this: colours repeat and the legend names no class


def joint_embedding(real: np.ndarray, synthetic: dict[str, np.ndarray], perplexity: float,
                    seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """2-D points of the real features and of each method's synthetic features, one joint t-SNE."""
    points = embed(np.concatenate([real, *synthetic.values()]), perplexity, seed)
    bounds = np.cumsum([len(real)] + [len(f) for f in synthetic.values()])
    return points[:len(real)], {m: points[a:b] for m, a, b in zip(synthetic, bounds[:-1], bounds[1:])}


def draw_tsne(real_xy: np.ndarray, synthetic: dict[str, tuple[np.ndarray, np.ndarray]],
              class_names: tuple[str, ...], title: str, path: Path) -> None:
    """One panel per method (``synthetic``: method -> (points, labels)), real points in grey."""
    columns = min(MAX_COLUMNS, len(synthetic))
    rows = math.ceil(len(synthetic) / columns)
    fig = new_figure(columns * PANEL_PX, rows * PANEL_PX + 70)
    fig.set_layout_engine("constrained")
    axes = fig.subplots(rows, columns, squeeze=False, sharex=True, sharey=True).ravel()
    colors = np.array(palette(len(class_names)))
    for ax, (method, (xy, labels)) in zip(axes, synthetic.items()):
        ax.scatter(real_xy[:, 0], real_xy[:, 1], s=3, c="0.75", linewidths=0)
        ax.scatter(xy[:, 0], xy[:, 1], s=14, c=colors[labels], edgecolors="black", linewidths=0.3)
        ax.set_title(method, fontsize=FONT_SIZE + 1)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[len(synthetic):]:
        ax.set_axis_off()
    handles, names = [axes[0].scatter([], [], s=6, color="0.75", linewidths=0)], ["real"]
    if len(class_names) <= LEGEND_MAX_CLASSES:
        handles += [axes[0].scatter([], [], s=14, color=colors[c], edgecolors="black", linewidths=0.3)
                    for c in range(len(class_names))]
        names += list(class_names)
    else:
        handles.append(axes[0].scatter([], [], s=14, color=colors[0], edgecolors="black", linewidths=0.3))
        names.append(f"synthetic (coloured by class, {len(class_names)} classes)")
    fig.legend(handles, names, loc="outside lower center", ncols=min(len(names), 11), fontsize=FONT_SIZE,
               frameon=False, handletextpad=0.1, columnspacing=0.8)
    fig.suptitle(title, fontsize=FONT_SIZE + 1)
    save_png(fig, path)
