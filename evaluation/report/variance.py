"""Where a cell's spread comes from: the generation seed or the evaluation repeat.

Every table cell pools runs along two axes, generation seeds (a new synthetic set) and evaluation
repeats (a new network on the same set), and shows one std over both. ``variance.csv`` splits it,
per (dataset, protocol, network, method, IPC) and reading.

Estimator. A cell has k seeds, seed i with n_i repeats x_ij (N = Σ n_i runs), seed means x̄_i and
grand mean x̄. The sums of squares obey SS_total = SS_between + SS_within (the law of total
variance), with SS_total = Σ_ij (x_ij − x̄)², SS_between = Σ_i n_i (x̄_i − x̄)² and SS_within =
Σ_ij (x_ij − x̄_i)². The split reported is

- ``total_var`` = SS_total / (N − 1): the square of the std the tables show;
- ``between_seed_var`` = SS_between / (N − 1) and ``within_seed_var`` = SS_within / (N − 1): the parts
  of ``total_var`` that lie between the seeds' means and within each seed (across repeats); they sum
  to ``total_var`` exactly; ``seed_share`` = between / total.

That split describes these runs. Because each seed mean also carries repeat noise (variance
σ²_repeat / n_i), it overstates the seed's own effect; the one-way random-effects ANOVA (method of
moments) estimates of the two population components are given beside it:

- ``anova_repeat_var`` = MS_within = SS_within / (N − k);
- ``anova_seed_var`` = max(0, (MS_between − MS_within) / n₀), MS_between = SS_between / (k − 1),
  n₀ = (N − Σ n_i² / N) / (k − 1) (= n for a balanced design; clipped at 0, the usual convention).

With one seed the split's seed part is 0 by construction and ``anova_seed_var`` is not estimable
(NaN); with one repeat per seed ``anova_repeat_var`` is not estimable (NaN); the ``note`` column says
so. A cell with a null reading is left out, as in the accuracy tables.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from .render import count_range, write_texts
from .tables import BLOCK_KEYS, METRIC_DESCRIPTIONS

COLUMNS = ["dataset", "protocol", "network", "method", "ipc", "metric", "seeds", "runs", "repeats_per_seed",
           "mean", "total_var", "between_seed_var", "within_seed_var", "seed_share", "anova_seed_var",
           "anova_repeat_var", "note"]


def variance_split(values: np.ndarray, seeds: np.ndarray) -> dict[str, float]:
    """The split of ``values`` (one per run) grouped by ``seeds`` (the run's generation seed):
    total, between-seed and within-seed variance (sums of squares over N − 1), and the ANOVA
    components; see the module docstring."""
    values = np.asarray(values, dtype=float)
    seeds = np.asarray(seeds)
    total_n = len(values)
    labels, index, counts = np.unique(seeds, return_inverse=True, return_counts=True)
    k = len(labels)
    grand = values.mean()
    means = np.bincount(index, weights=values) / counts
    ss_between = float(np.sum(counts * (means - grand) ** 2))
    ss_within = float(np.sum((values - means[index]) ** 2))
    dof = total_n - 1
    result = {"mean": float(grand), "total_var": (ss_between + ss_within) / dof if dof else math.nan,
              "between_seed_var": ss_between / dof if dof else math.nan,
              "within_seed_var": ss_within / dof if dof else math.nan}
    result["seed_share"] = (result["between_seed_var"] / result["total_var"]
                            if dof and result["total_var"] > 0 else math.nan)
    ms_within = ss_within / (total_n - k) if total_n > k else math.nan
    if k > 1:
        n0 = (total_n - np.sum(counts ** 2) / total_n) / (k - 1)
        ms_between = ss_between / (k - 1)
        seed = max(0.0, (ms_between - ms_within) / n0) if not math.isnan(ms_within) else math.nan
    else:
        seed = math.nan
    result.update(anova_seed_var=seed, anova_repeat_var=ms_within)
    return result


def _note(seeds: int, runs: int) -> str:
    if runs == 1:
        return "one run: no variance"
    notes = ["one generation seed: the split's seed part is 0 by construction; anova_seed_var not estimable"]
    return "; ".join(notes * (seeds == 1) + ["one repeat per seed: anova_repeat_var not estimable"] * (runs == seeds))


def variance_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, protocol, network, method, IPC, reading) whose runs all have the reading."""
    keys = BLOCK_KEYS + ["method", "ipc", "metric"]
    metrics = [metric for metric in METRIC_DESCRIPTIONS if metric in runs.columns]   # alphabetical, as sorted
    readings = runs.melt(id_vars=keys[:-1] + ["seed"], value_vars=metrics, var_name="metric")
    rows = []
    for key, group in readings.groupby(keys, sort=True):
        if group["value"].isna().any():
            continue
        counts = group.groupby("seed").size()
        rows.append({**dict(zip(keys, key)), "seeds": len(counts), "runs": len(group),
                     "repeats_per_seed": count_range(counts),
                     **variance_split(group["value"].to_numpy(dtype=float), group["seed"].to_numpy()),
                     "note": _note(len(counts), len(group))})
    return pd.DataFrame(rows, columns=COLUMNS)


def write_variance(runs: pd.DataFrame, out_dir: Path) -> Path:
    """Write ``variance.csv`` (numbers at full precision) into ``out_dir``, atomically."""
    [path] = write_texts(out_dir, "variance", {".csv": variance_table(runs).to_csv(index=False, lineterminator="\n")})
    return path
