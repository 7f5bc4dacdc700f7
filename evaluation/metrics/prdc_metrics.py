"""Precision, recall, density and coverage (Naeem et al. 2020) through the official ``prdc`` package
(DMGD supplementary A3.2: "We performed code in Naeem et al. [45] to calculate the coverage").

``prdc_values`` is ``prdc.compute_prdc``. Bootstrap replicates re-run its formulas with prdc's own
helpers on distance matrices computed once (``PrdcResampler``): a resample of the synthetic set
selects columns of the real x synthetic matrix and a block of the synthetic x synthetic one, so a
replicate costs no new distance and the real k-NN radii stay fixed, as the real side does.
"""
from __future__ import annotations

import numpy as np
import prdc
from prdc.prdc import (
    compute_nearest_neighbour_distances,
    compute_pairwise_distance,
    get_kth_value,
)

from evaluation.core.errors import InputError

PRDC_KEYS = ("precision", "recall", "density", "coverage")


def check_sizes(real_count: int, synthetic_count: int, nearest_k: int) -> None:
    """prdc's k-NN radius (k + 1-th smallest distance, self included) needs more than k + 1 points."""
    for side, count in (("real", real_count), ("synthetic", synthetic_count)):
        if count < nearest_k + 2:
            raise InputError(f"prdc with nearest_k={nearest_k} needs at least {nearest_k + 2} {side} samples, "
                             f"got {count}; lower metrics.nearest_k")


def prdc_values(real: np.ndarray, synthetic: np.ndarray, nearest_k: int) -> dict[str, float]:
    check_sizes(len(real), len(synthetic), nearest_k)
    values = prdc.compute_prdc(real_features=real, fake_features=synthetic, nearest_k=nearest_k)
    return {key: float(values[key]) for key in PRDC_KEYS}


class PrdcResampler:
    """prdc of resampled synthetic sets (``prdc.compute_prdc``'s formulas) against a fixed real set."""

    def __init__(self, real: np.ndarray, synthetic: np.ndarray, nearest_k: int):
        check_sizes(len(real), len(synthetic), nearest_k)
        self.nearest_k = nearest_k
        self.real_radii = compute_nearest_neighbour_distances(real, nearest_k)
        self.real_fake = compute_pairwise_distance(real, synthetic)
        self.fake_fake = compute_pairwise_distance(synthetic)   # zero diagonal: duplicates at distance 0

    def __call__(self, indices: np.ndarray) -> dict[str, float]:
        k = self.nearest_k
        distance_real_fake = self.real_fake[:, indices]
        fake_radii = get_kth_value(self.fake_fake[np.ix_(indices, indices)], k=k + 1, axis=-1)
        inside_real = distance_real_fake < self.real_radii[:, None]
        return {"precision": float(inside_real.any(axis=0).mean()),
                "recall": float((distance_real_fake < fake_radii[None, :]).any(axis=1).mean()),
                "density": float((1.0 / k) * inside_real.sum(axis=0).mean()),
                "coverage": float((distance_real_fake.min(axis=1) < self.real_radii).mean())}
