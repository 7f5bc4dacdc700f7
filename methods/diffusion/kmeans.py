"""Batched Lloyd k-means in torch: DMGD's "GPU-based fast K-means" distribution approximation.

DMGD (Algorithm 2) clusters the real data of a class into k groups and keeps the centres together
with the cluster fractions (line 6: mass_i = |cluster_i| / N) as a discrete approximation of the
class distribution; the MGD³ and D⁴M baselines reuse the same routine for their prototypes.

Lloyd's algorithm alternates the assignment of each point to its nearest centre and the move of
each centre to the mean of its points. All ``restarts`` runs advance together as one
(restarts, N, k) computation and the run with the lowest inertia is kept, as sklearn's ``n_init``.
Randomness comes only from the ``generator`` argument (a CPU generator; draws move to the data's
device), so a seed fixes the result on CPU and CUDA alike.

DMGD's official code clusters with fast_pytorch_kmeans 0.2.2 (golden README, ``kmeans.pt``): random
init with replacement, an absolute tolerance of 1e-4, empty clusters left at the zero vector, and
the labels of the last iteration's assignment. ``init=<centres>``, ``tol=1e-4, tol_mode="absolute"``,
``empty_clusters="zero"`` and ``final_assignment=False`` reproduce it; the defaults are the suite's
sklearn-like choices.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

INITS = ("k-means++", "random")
EMPTY_CLUSTER_POLICIES = ("reseed", "zero")
TOL_MODES = ("relative", "absolute")


@dataclass(frozen=True)
class KMeansResult:
    """The best run: centres, hard labels, cluster sizes, inertia and cluster fractions."""

    centers: Tensor  # [k, D], in the working dtype (float64 for float64 input, else float32)
    labels: Tensor  # [N] long, each point's nearest centre (before the last move if not final_assignment)
    counts: Tensor  # [k] long, points per label; always k long, with 0 for an empty cluster
    #                 (DMGD's bincount drops a trailing empty cluster: a deliberate difference)
    inertia: float  # Σ_n ‖x_n − c_{labels[n]}‖² with the returned centres, as sklearn's ``inertia_``
    masses: Tensor  # [k], counts / N: the cluster fractions of DMGD Algorithm 2, line 6


def squared_distances(points: Tensor, centers: Tensor, point_norms: Tensor | None = None) -> Tensor:
    """‖x_n − c_rj‖² for points [N, D] and centres [R, k, D] → [R, N, k], by the expanded form.

    ‖x‖² − 2 x·c + ‖c‖², clamped at zero against the rounding of the subtraction. ``point_norms``
    (``points.pow(2).sum(-1)``) may be passed by a caller that computes distances to the same points
    many times.
    """
    point_norms = (points.pow(2).sum(-1) if point_norms is None else point_norms)[None, :, None]
    center_norms = centers.pow(2).sum(-1)[:, None, :]
    cross = torch.einsum("nd,rkd->rnk", points, centers)
    return (point_norms - 2.0 * cross + center_norms).clamp_min(0.0)


def kmeans_plus_plus_init(points: Tensor, k: int, restarts: int, generator: torch.Generator) -> Tensor:
    """Classic (non-greedy) k-means++ seeding (Arthur & Vassilvitskii 2007), batched over restarts.

    The first centre is a uniformly drawn point; each next one is drawn with probability
    proportional to D²(x), the squared distance to the nearest centre chosen so far. Sampling
    inverts the cumulative D² with a uniform draw, so it runs on the data's device. Should every
    point already coincide with a centre (D² ≡ 0, fewer distinct points than k) the draw is uniform.
    """
    n = points.shape[0]
    uniforms = torch.rand(restarts, k, generator=generator, dtype=points.dtype).to(points.device)
    first = (uniforms[:, 0] * n).long().clamp_max(n - 1)
    centers = [points[first]]  # each [R, D]
    norms = points.pow(2).sum(-1)
    nearest_sq = squared_distances(points, centers[0][:, None, :], norms)[..., 0]  # [R, N]
    for i in range(1, k):
        all_covered = nearest_sq.sum(-1, keepdim=True) <= 0
        weights = torch.where(all_covered, torch.ones_like(nearest_sq), nearest_sq)
        cumulative = weights.cumsum(-1)
        target = uniforms[:, i : i + 1] * cumulative[:, -1:]
        chosen = torch.searchsorted(cumulative, target, right=True).squeeze(-1).clamp_max(n - 1)
        centers.append(points[chosen])
        to_new = squared_distances(points, centers[-1][:, None, :], norms)[..., 0]
        nearest_sq = torch.minimum(nearest_sq, to_new)
    return torch.stack(centers, dim=1)


def random_init(points: Tensor, k: int, restarts: int, generator: torch.Generator) -> Tensor:
    """k points drawn uniformly WITH replacement per restart, by ``torch.randint``.

    This is fast_pytorch_kmeans 0.2.x's default ``init_method="random"``, used by DMGD's code (golden
    README, ``kmeans.pt``; 0.1.x drew distinct points). Duplicate centres are possible: all but the
    first of them end up empty and are handled by the empty-cluster policy.
    """
    chosen = torch.randint(points.shape[0], (restarts, k), generator=generator).to(points.device)
    return points[chosen]


def reseed_empty_clusters(points: Tensor, centers: Tensor, distances: Tensor, labels: Tensor,
                          counts: Tensor) -> Tensor:
    """Move each empty cluster's centre onto a point far from its own centre (sklearn's relocation).

    Per restart, the e empty clusters take the e points with the largest distance to their assigned
    centre, farthest first, so they restart where the current partition fits worst.
    """
    empty = counts == 0  # [R, k]
    own_distance = distances.gather(-1, labels[..., None])[..., 0]  # [R, N]
    farthest = own_distance.topk(centers.shape[1], dim=-1).indices  # [R, k], k ≤ N
    rank_among_empty = (empty.long().cumsum(-1) - 1).clamp_min(0)
    replacement = points[farthest.gather(-1, rank_among_empty)]  # [R, k, D]
    return torch.where(empty[..., None], replacement, centers)


def kmeans(points: Tensor, k: int, *, generator: torch.Generator | None, iters: int = 100, restarts: int = 1,
           init: str | Tensor = "k-means++", tol: float = 1e-6, tol_mode: str = "relative",
           empty_clusters: str = "reseed", final_assignment: bool = True) -> KMeansResult:
    """Cluster points [N, D] into k groups with Lloyd's algorithm; keep the best of ``restarts`` runs.

    ``init`` is a seeding of ``INITS``, drawn from ``generator``, or a tensor [k, D] of initial
    centres (then ``restarts`` must be 1 and ``generator`` may be None). Each Lloyd step assigns
    every point to its nearest centre (the first on ties, as fast_pytorch_kmeans' argmax of
    2x·c − ‖x‖² − ‖c‖²) and moves every centre to the mean of its points. It stops after the step
    in which, for every run, the total squared centre shift Σ_j ‖c_j' − c_j‖² falls to the threshold,
    or after ``iters`` steps. ``tol_mode="relative"`` (the suite's, sklearn's) takes ``tol`` × the
    mean per-feature variance of the data as the threshold, ``"absolute"`` takes ``tol`` itself
    (fast_pytorch_kmeans, DMGD: 1e-4).

    ``empty_clusters="reseed"`` (the suite's deliberate choice, sklearn-like) moves the centre of a
    cluster left without points to the point farthest from its centre; ``"zero"`` is DMGD's official
    behaviour (golden README, ``kmeans.pt``): the mean of no points, 0/0, becomes the zero vector, and
    Lloyd moves it on from there like any centre. With ``final_assignment`` (the suite's default),
    the returned labels are the nearest final centres; without it they are, as DMGD's, the
    assignment made at the start of the last step, before the final move. ``counts`` always has k
    entries. Float64 input is computed in float64, anything else in float32.
    """
    if points.dim() != 2:
        raise ValueError(f"k-means expects points of shape [N, D], got {tuple(points.shape)}; flatten the features")
    n = points.shape[0]
    if k > n:
        raise ValueError(f"k-means with k={k} needs at least k points, got N={n}; lower k to at most {n}")
    if k < 1:
        raise ValueError(f"k-means needs k >= 1, got k={k}; pass a positive number of clusters")
    if iters < 1 or restarts < 1:
        raise ValueError(f"k-means needs iters >= 1 and restarts >= 1, got iters={iters}, restarts={restarts}; raise them")
    if isinstance(init, Tensor):
        if init.shape != (k, points.shape[1]):
            raise ValueError(f"k-means init of shape {tuple(init.shape)} must be [k, D] = [{k}, {points.shape[1]}]; "
                             "pass one initial centre per cluster")
        if restarts != 1:
            raise ValueError(f"k-means with given init centres runs once, got restarts={restarts}; pass restarts=1")
    elif init not in INITS:
        raise ValueError(f"k-means init={init!r} is unknown; use one of {INITS} or a tensor of initial centres")
    elif generator is None:
        raise ValueError(f"k-means init={init!r} draws from a generator, got None; pass a torch.Generator")
    if tol_mode not in TOL_MODES:
        raise ValueError(f"k-means tol_mode={tol_mode!r} is unknown; use one of {TOL_MODES}")
    if empty_clusters not in EMPTY_CLUSTER_POLICIES:
        raise ValueError(f"k-means empty_clusters={empty_clusters!r} is unknown; use one of {EMPTY_CLUSTER_POLICIES}")

    work_dtype = torch.float64 if points.dtype == torch.float64 else torch.float32
    points = points.to(work_dtype)
    if isinstance(init, Tensor):
        centers = init.to(points)[None]
    else:
        seed = kmeans_plus_plus_init if init == "k-means++" else random_init
        centers = seed(points, k, restarts, generator)
    threshold = tol * points.var(dim=0, unbiased=False).mean() if tol_mode == "relative" else tol
    stacked_points = points.expand(restarts, n, points.shape[1])
    norms = points.pow(2).sum(-1)   # once, not in every assignment step

    for _ in range(iters):
        distances = squared_distances(points, centers, norms)
        labels = distances.argmin(-1)  # [R, N]
        counts = torch.zeros(restarts, k, dtype=work_dtype, device=points.device)
        counts.scatter_add_(1, labels, torch.ones_like(labels, dtype=work_dtype))
        sums = torch.zeros_like(centers).scatter_add_(1, labels[..., None].expand_as(stacked_points),
                                                      stacked_points)
        moved = sums / counts.clamp_min(1.0)[..., None]  # an empty cluster's centre: 0
        if empty_clusters == "reseed" and bool((counts == 0).any()):
            moved = reseed_empty_clusters(points, moved, distances, labels, counts)
        shift = (moved - centers).pow(2).sum(dim=(1, 2))
        centers = moved
        if bool((shift <= threshold).all()):
            break

    distances = squared_distances(points, centers, norms)
    if final_assignment:
        labels = distances.argmin(-1)
    best = int(distances.gather(-1, labels[..., None]).sum(dim=(1, 2)).argmin())
    best_centers, best_labels = centers[best], labels[best]
    counts = torch.bincount(best_labels, minlength=k)
    inertia = float((points - best_centers[best_labels]).pow(2).sum())
    return KMeansResult(centers=best_centers, labels=best_labels, counts=counts, inertia=inertia,
                        masses=counts.to(work_dtype) / n)
