"""Diversity (DMGD supplementary A3.2): "the minimum distance between each surrogate sample and all
other surrogate samples in the VGG feature space ... the average"."""
from __future__ import annotations

import numpy as np
import torch

from evaluation.core.errors import InputError

CHUNK = 1024   # rows of the distance matrix held at once


def diversity(synthetic: np.ndarray) -> float:
    """Mean over synthetic samples of the Euclidean distance to the nearest *other* sample.

    Distances are taken from coordinate differences (no ``|x|^2 - 2xy + |y|^2`` shortcut), so
    duplicated images are exactly 0 apart.
    """
    if len(synthetic) < 2:
        raise InputError(f"diversity needs at least 2 synthetic samples, got {len(synthetic)}")
    x = torch.as_tensor(np.asarray(synthetic, dtype=np.float64))
    nearest = []
    for start in range(0, len(x), CHUNK):
        block = torch.cdist(x[start:start + CHUNK], x, compute_mode="donot_use_mm_for_euclid_dist")
        rows = torch.arange(len(block))
        block[rows, rows + start] = float("inf")
        nearest.append(block.min(dim=1).values)
    return float(torch.cat(nearest).mean())
