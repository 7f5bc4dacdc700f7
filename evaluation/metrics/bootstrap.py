"""Percentile bootstrap intervals over the synthetic set.

Each replicate draws n synthetic samples with replacement (``numpy.random.default_rng(seed)``) and
recomputes a metric against the *fixed* real side: the interval measures how much the score depends
on which images the distillation produced, not the sampling noise of the reference split. All
metrics share the same replicates, so their intervals are paired. Replicates hold duplicates, which
shrink covariances and k-NN radii: a percentile interval of a biased statistic need not contain the
full-set value, which is reported beside it.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np


def resample_indices(count: int, resamples: int, seed: int) -> np.ndarray:
    """``resamples`` x ``count`` indices drawn with replacement."""
    return np.random.default_rng(seed).integers(0, count, size=(resamples, count))


def percentile_interval(samples, ci: float) -> tuple[float, float]:
    """The central ``ci`` interval of the replicate values (numpy's linear percentiles)."""
    low, high = np.percentile(np.asarray(samples, dtype=np.float64), [50 * (1 - ci), 50 * (1 + ci)])
    return float(low), float(high)


def bootstrap(statistic: Callable[[np.ndarray], dict[str, float]], value: dict[str, float],
              indices: np.ndarray, ci: float) -> dict[str, dict[str, float | None]]:
    """``{name: {value, ci_low, ci_high}}``: ``value`` on the full set, the interval over
    ``statistic(indices[b])`` for each row b (no rows: intervals are None)."""
    replicates = [statistic(row) for row in indices]
    result = {}
    for name, full in value.items():
        low, high = percentile_interval([r[name] for r in replicates], ci) if replicates else (None, None)
        result[name] = {"value": full, "ci_low": low, "ci_high": high}
    return result
