"""IMS3's Selective Subgroup Sampling (S³): pick one of G candidate subgroups per class (Wang, Chen et al.,
CVPR 2026, arXiv 2603.13960; official code Westlake-AGI-Lab/IMS3 ``centroid.py``; shared/reference/ims3_lgm_sfm.md
§1.4, §1.7). This module is the selection itself, on feature arrays; generating the G·IPC images per class and
extracting their features (a frozen ImageNet ResNet-18 in the official code) are the caller's.

* **Centroids** (paper Eq. (8)–(9)): a set's centroid is the L2-normalised mean of its L2-normalised features
  (:func:`unit_centroid`): r_i of ≤ 200 real training images of class i, c_{i,g} of the K = IPC images of
  candidate subgroup g of class i. Subgroup membership is fixed at generation.
* **Objective, maximised** (official ``combined_objective``; not the paper's Eq. (10), whose pairing term the
  secondary summaries dispute), over the selected subgroups g_i only, with d(u, v) = 1 − clamp(u·v, −1, 1):

      L(g) = α Σ_i −log(d(c_{i,g_i}, r_i) + ε) + β Σ_{i<j} log(d(c_{i,g_i}, c_{j,g_j}) + ε)

  (:func:`selection_objective`). Defaults are the official ``run.sh``: α = 0.4 (``--w-real``), β = 0.9
  (``--w-sep``), ε = 0 (``--sel-eps``; argparse defaults 1 / 1 / 1e-6). With ε = 0 a zero distance (a subgroup
  centroid equal to its real centroid, or two classes selecting equal centroids) makes L infinite; generated
  images never do that in practice and, as the official code, nothing guards it.
* **Search** (official ``optimize_selection``, :func:`coordinate_ascent`): warm start with each class's subgroup
  closest to its real centroid (the official code's choice; its comment says the paper's Alg. 2 starts at
  random; ``start`` takes any other start); then sweeps over the classes in order, each class switching to the
  subgroup that maximises L with the other classes fixed, when that is strictly better than its current one
  (ties: the current one, else the lowest index); a switch is seen by the classes after it in the same sweep.
  At most ``max_sweeps`` sweeps (``--sel-max-iters`` 5); it stops after a sweep that changed nothing.
  The official code recomputes the whole L for each trial; here only the terms involving the switching class
  are compared (the rest is common to all trials), in float64 (the official in float32): the same choices
  wherever L is finite, up to float rounding between near-equal trials.

**Class chunks.** The selection is joint over the classes it is given: the separation term couples every pair,
so one class's choice depends on every other class's candidates. Called on a chunk of a dataset's classes it is
**chunk-local** (separation only inside the chunk), which is what the official code does for large subsets (its
``--phase`` runs of ``--nclass`` classes, each selected on its own). The inputs are small (C·G centroids), so a
dataset-wide joint selection only needs the candidates' features of every chunk gathered before one call.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Selection:
    """The outcome of a search: one subgroup index per class, its objective and the sweeps run."""
    groups: tuple[int, ...]
    objective: float
    sweeps: int


def unit_centroid(features: torch.Tensor) -> torch.Tensor:
    """The L2-normalised mean of the L2-normalised rows of ``features`` (…, N, D) → (…, D), in float64."""
    unit = torch.nn.functional.normalize(features.double(), dim=-1)
    return torch.nn.functional.normalize(unit.mean(dim=-2), dim=-1)


def cosine_distance(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """d = 1 − clamp(u·v, −1, 1) of unit vectors, every row of ``u`` (…, D) against every row of ``v`` (M, D)."""
    return 1.0 - (u @ v.T).clamp(-1, 1)


def _check(candidates: torch.Tensor, real: torch.Tensor) -> None:
    if candidates.dim() != 3 or real.dim() != 2 or candidates.shape[0] != real.shape[0] \
            or candidates.shape[2] != real.shape[1]:
        raise ValueError(f"candidate centroids (C, G, D) and real centroids (C, D) must agree; got "
                         f"{tuple(candidates.shape)} and {tuple(real.shape)}")


def selection_objective(candidates: torch.Tensor, real: torch.Tensor, groups: Sequence[int], alpha: float = 0.4,
                        beta: float = 0.9, eps: float = 0.0) -> float:
    """L(groups) of the module docstring, for unit candidate centroids (C, G, D) and unit real centroids (C, D)."""
    _check(candidates, real)
    picked = candidates[torch.arange(len(real)), torch.as_tensor(groups)]
    closeness = -torch.log(1.0 - (picked * real).sum(dim=1).clamp(-1, 1) + eps).sum()
    upper = torch.triu_indices(len(real), len(real), offset=1)
    separation = torch.log(cosine_distance(picked, picked)[upper[0], upper[1]] + eps).sum()
    return float(alpha * closeness + beta * separation)


def warm_start(candidates: torch.Tensor, real: torch.Tensor) -> list[int]:
    """Each class's subgroup whose centroid is closest (cosine distance) to its real centroid, the lowest index
    on ties (official ``optimize_selection``'s initialisation)."""
    _check(candidates, real)
    distances = 1.0 - (candidates * real[:, None, :]).sum(dim=2).clamp(-1, 1)
    return distances.argmin(dim=1).tolist()


def class_terms(candidates: torch.Tensor, real: torch.Tensor, groups: Sequence[int], i: int, alpha: float,
                beta: float, eps: float) -> torch.Tensor:
    """(G,) the terms of L that involve class ``i`` if it selected each of its subgroups, the other classes'
    selections fixed: α·−log(d(c_{i,g}, r_i) + ε) + β Σ_{j≠i} log(d(c_{i,g}, c_{j,g_j}) + ε)."""
    others = [j for j in range(len(real)) if j != i]
    picked = candidates[others, torch.as_tensor(groups)[others]]
    closeness = -torch.log(cosine_distance(candidates[i], real[i:i + 1])[:, 0] + eps)
    separation = torch.log(cosine_distance(candidates[i], picked) + eps).sum(dim=1)
    return alpha * closeness + beta * separation


def coordinate_ascent(candidates: torch.Tensor, real: torch.Tensor, alpha: float = 0.4, beta: float = 0.9,
                      eps: float = 0.0, max_sweeps: int = 5, start: Sequence[int] | None = None) -> Selection:
    """The official search (module docstring) on unit centroids: candidates (C, G, D), real (C, D); ``start``
    (C,) defaults to :func:`warm_start`. Deterministic: no random draw."""
    _check(candidates, real)
    if max_sweeps < 0:
        raise ValueError(f"max_sweeps must be >= 0, not {max_sweeps}")
    groups = list(warm_start(candidates, real) if start is None else start)
    if len(groups) != len(real) or not all(0 <= g < candidates.shape[1] for g in groups):
        raise ValueError(f"start must hold one subgroup index in [0, {candidates.shape[1]}) per class; got {groups}")
    sweeps = 0
    while sweeps < max_sweeps:
        sweeps += 1
        changed = False
        for i in range(len(real)):
            terms = class_terms(candidates, real, groups, i, alpha, beta, eps)
            best = int(terms.argmax())
            if terms[best] > terms[groups[i]]:
                groups[i], changed = best, True
        if not changed:
            break
    return Selection(tuple(groups), selection_objective(candidates, real, groups, alpha, beta, eps), sweeps)


def select_subgroups(candidate_features: torch.Tensor, real_features: Sequence[torch.Tensor], alpha: float = 0.4,
                     beta: float = 0.9, eps: float = 0.0, max_sweeps: int = 5,
                     start: Sequence[int] | None = None) -> Selection:
    """S³ on frozen features: ``candidate_features`` (C, G, K, D), the K images of each of the G subgroups of
    each class; ``real_features[i]`` (N_i, D), the real images of class i. Joint over these C classes (module
    docstring: class chunks)."""
    if len(real_features) != candidate_features.shape[0]:
        raise ValueError(f"{candidate_features.shape[0]} classes of candidates but real features of "
                         f"{len(real_features)}")
    real = torch.stack([unit_centroid(f) for f in real_features])
    return coordinate_ascent(unit_centroid(candidate_features), real, alpha, beta, eps, max_sweeps, start)
