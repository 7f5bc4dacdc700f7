"""Sample grid of one synthetic set (DMGD supplementary, Figures 5-6).

Rows are classes (at most ``max_classes``, label order), columns the first ``max_samples`` samples
of each class in generation order. Images are placed pixel for pixel (``Figure.figimage``, no
resampling): sides below ``tile`` are enlarged by an integer factor (nearest), larger sides reduced
to ``tile`` (antialiased bilinear), so a tile is exactly the stored image whenever it is not reduced.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.font_manager import FontProperties
from matplotlib.textpath import text_to_path

from .render import DPI, FONT_SIZE, new_figure, save_png

PAD = 2            # white pixels around and between tiles
TITLE_PX = 22      # band above the grid
LABEL_GAP = 6


@dataclass(frozen=True)
class GridLayout:
    """Pixel geometry of a sample grid; origins are (top, left) in the PNG."""

    rows: int
    columns: int
    tile: int          # side of a tile in the PNG
    scale: int         # integer enlargement of the stored image (0: reduced to ``tile``)
    label_px: int      # width of the row-label margin
    width: int
    height: int

    def tile_origin(self, row: int, column: int) -> tuple[int, int]:
        return (TITLE_PX + PAD + row * (self.tile + PAD), self.label_px + PAD + column * (self.tile + PAD))


def text_px(text: str) -> int:
    """Rendered width of ``text`` at ``FONT_SIZE`` in pixels."""
    points, _, _ = text_to_path.get_text_width_height_descent(text, FontProperties(size=FONT_SIZE), ismath=False)
    return math.ceil(points * DPI / 72)


def grid_layout(rows: int, columns: int, side: int, tile: int, labels: list[str], title: str) -> GridLayout:
    scale = tile // side if side <= tile else 0
    shown = side * scale if scale else tile
    label_px = max(text_px(label) for label in labels) + LABEL_GAP
    grid_w, grid_h = PAD + columns * (shown + PAD), PAD + rows * (shown + PAD)
    width = max(label_px + grid_w, text_px(title) + 2 * LABEL_GAP)
    return GridLayout(rows, columns, shown, scale, label_px, width, TITLE_PX + grid_h)


def fit_tiles(images: torch.Tensor, layout: GridLayout) -> np.ndarray:
    """uint8 N x 3 x S x S -> N x tile x tile x 3, enlarged (nearest) or reduced (antialiased)."""
    if layout.scale:
        tiles = images.repeat_interleave(layout.scale, dim=2).repeat_interleave(layout.scale, dim=3)
    else:
        tiles = F.interpolate(images.float(), size=(layout.tile, layout.tile), mode="bilinear",
                              align_corners=False, antialias=True).round().clamp(0, 255).to(torch.uint8)
    return tiles.permute(0, 2, 3, 1).numpy()


def select(images: torch.Tensor, labels: torch.Tensor, num_classes: int, max_classes: int,
           max_samples: int) -> list[torch.Tensor]:
    """The first ``max_samples`` images of each of the first ``max_classes`` classes, in stored order."""
    return [images[labels == c][:max_samples] for c in range(min(max_classes, num_classes))]


def draw_sample_grid(images: torch.Tensor, labels: torch.Tensor, class_names: tuple[str, ...], title: str,
                     path: Path, *, max_classes: int, max_samples: int, tile: int) -> GridLayout:
    """Draw and write the grid of one synthetic set; returns its layout."""
    rows = select(images, labels, len(class_names), max_classes, max_samples)
    names = [class_names[c] for c in range(len(rows))]
    columns = max(len(r) for r in rows)
    layout = grid_layout(len(rows), columns, images.shape[-1], tile, names, title)
    canvas = np.full((layout.height - TITLE_PX, layout.width - layout.label_px, 3), 255, dtype=np.uint8)
    for r, row in enumerate(rows):
        for c, image in enumerate(fit_tiles(row, layout)):
            top, left = layout.tile_origin(r, c)
            top, left = top - TITLE_PX, left - layout.label_px
            canvas[top:top + layout.tile, left:left + layout.tile] = image
    fig = new_figure(layout.width, layout.height)
    fig.figimage(canvas, xo=layout.label_px, yo=0, origin="upper", resize=False)
    for r, name in enumerate(names):
        top, _ = layout.tile_origin(r, 0)
        fig.text((layout.label_px - LABEL_GAP) / layout.width, 1 - (top + layout.tile / 2) / layout.height,
                 name, ha="right", va="center", fontsize=FONT_SIZE)
    fig.text(LABEL_GAP / layout.width, 1 - TITLE_PX / 2 / layout.height, title, ha="left", va="center",
             fontsize=FONT_SIZE)
    save_png(fig, path)
    return layout
