"""Optimal-transport dataset distance (DMGD supplementary A3.2, after Alvarez-Melis and Fusi).

The real and synthetic features are embedded together in 2-D by t-SNE, then the exact OT cost
(``ot.emd2``) between the two embedded sets with uniform weights and Euclidean ground cost is the
distance. t-SNE is O(n^2): the real side enters as a seeded subset of at most ``max_real`` samples.
"""
from __future__ import annotations

import numpy as np
import ot
from sklearn.manifold import TSNE

from evaluation.core.seeding import SubsetStream, derive_seed


def real_subset(count: int, max_real: int, seed: int) -> np.ndarray:
    """Sorted indices of at most ``max_real`` of ``count`` real samples (all of them when fewer)."""
    if count <= max_real:
        return np.arange(count)
    rng = np.random.default_rng(derive_seed(seed, SubsetStream.REAL_SUBSET))
    return np.sort(rng.choice(count, size=max_real, replace=False))


def embed(features: np.ndarray, perplexity: float, seed: int) -> np.ndarray:
    """2-D t-SNE of ``features``; the perplexity is capped below the sample count (sklearn needs it)."""
    perplexity = min(float(perplexity), len(features) - 1.0)
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca",
                random_state=derive_seed(seed, SubsetStream.TSNE) % 2 ** 32)
    return tsne.fit_transform(np.asarray(features, dtype=np.float64))


def ot_distance(real: np.ndarray, synthetic: np.ndarray, max_real: int, perplexity: float,
                seed: int) -> tuple[float, int]:
    """(exact OT cost in the joint t-SNE plane, number of real samples embedded)."""
    real = real[real_subset(len(real), max_real, seed)]
    points = embed(np.concatenate([real, synthetic]), perplexity, seed)
    source, target = points[:len(real)], points[len(real):]
    weights_source = np.full(len(source), 1.0 / len(source))
    weights_target = np.full(len(target), 1.0 / len(target))
    cost = ot.dist(source, target, metric="euclidean")
    return float(ot.emd2(weights_source, weights_target, cost)), len(real)
