"""Class-batched Lloyd k-means in torch: DMGD's "GPU-based fast K-means" distribution approximation.

DMGD (Algorithm 2) clusters the real data of a class into k groups and keeps the centres together
with the cluster fractions (line 6: mass_i = |cluster_i| / N) as a discrete approximation of the
class distribution; the MGD³ baseline reuses it for its modes (D⁴M's prototypes come from
scikit-learn's ``MiniBatchKMeans``, as in its reference code: ``methods/d4m.py``).

Lloyd's algorithm alternates the assignment of each point to its nearest centre and the move of
each centre to the mean of its points. :func:`kmeans_batched` clusters C classes of different sizes
in one call: their points padded to [C, N, D] with a validity mask, and all ``restarts`` runs of
every class advancing together as one (C, restarts, N, k) computation; the run with the lowest
inertia is kept per class, as sklearn's ``n_init``. Each class stops by its own tolerance and is
then frozen; :func:`kmeans_classes` feeds a method's classes through it batch by batch.
Randomness comes only from each class's own ``generator`` (a CPU generator; draws move to the
data's device), so a seed fixes a class's result on CPU and CUDA alike, and on CPU a class gets
the same floats alone (:func:`kmeans`, a one-class batch) as beside any other classes.

DMGD's official code clusters with fast_pytorch_kmeans 0.2.2 (golden README, ``kmeans.pt``): random
init with replacement, an absolute tolerance of 1e-4, empty clusters left at the zero vector, and
the labels of the last iteration's assignment. ``init=<centres>``, ``tol=1e-4, tol_mode="absolute"``,
``empty_clusters="zero"`` and ``final_assignment=False`` reproduce it; the defaults are the suite's
sklearn-like choices.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat

import torch
from torch import Tensor

INITS = ("k-means++", "random")
EMPTY_CLUSTER_POLICIES = ("reseed", "zero")
TOL_MODES = ("relative", "absolute")
# Padded points per call of kmeans_classes: ImageNet-sized classes (1,300 latents of 4,096 dims)
# come 12 to a batch in float64, 24 in float32, so that a job holding many classes never copies
# them all at once.
BATCH_BYTES = 512 * 2 ** 20


@dataclass(frozen=True)
class KMeansResult:
    """The best run: centres, hard labels, cluster sizes, inertia and cluster fractions."""

    centers: Tensor  # [k, D], in the working dtype (float64 for float64 input, else float32)
    labels: Tensor  # [N] long, each point's nearest centre (before the last move if not final_assignment)
    counts: Tensor  # [k] long, points per label; always k long, with 0 for an empty cluster
    #                 (DMGD's bincount drops a trailing empty cluster: a deliberate difference)
    inertia: float  # Σ_n ‖x_n − c_{labels[n]}‖² with the returned centres, as sklearn's ``inertia_``
    masses: Tensor  # [k], counts / N: the cluster fractions of DMGD Algorithm 2, line 6


@dataclass(frozen=True)
class BatchedKMeansResult:
    """The best run of each of C classes: :class:`KMeansResult`'s fields stacked, padding marked."""

    centers: Tensor  # [C, k, D], in the working dtype
    labels: Tensor  # [C, N] long, -1 at padding
    counts: Tensor  # [C, k] long
    inertia: Tensor  # [C] float64
    masses: Tensor  # [C, k], counts / the class's size
    sizes: Tensor  # [C] long, the valid points of each class
    iterations: Tensor  # [C] long, the Lloyd steps each class ran

    def __len__(self) -> int:
        return len(self.sizes)

    def __getitem__(self, c: int) -> KMeansResult:
        n = int(self.sizes[c])
        return KMeansResult(centers=self.centers[c], labels=self.labels[c, :n], counts=self.counts[c],
                            inertia=float(self.inertia[c]), masses=self.masses[c])


def pad_classes(classes: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """Points [C, N_max, D] (each class's [N_c, D] first, zeros after) and the validity mask [C, N_max]."""
    if not classes or any(points.dim() != 2 for points in classes) or len({p.shape[1] for p in classes}) != 1:
        shapes = [tuple(points.shape) for points in classes]
        raise ValueError(f"pad_classes expects one or more [N_c, D] tensors of one D, got shapes {shapes}; "
                         "flatten each class's features to the same D")
    sizes = torch.tensor([len(points) for points in classes])
    padded = classes[0].new_zeros(len(classes), int(sizes.max()), classes[0].shape[1])
    for row, points in zip(padded, classes):
        row[: len(points)] = points
    return padded, torch.arange(padded.shape[1]) < sizes[:, None]


def squared_distances(points: Tensor, centers: Tensor, point_norms: Tensor | None = None,
                      sizes: Sequence[int] | None = None) -> Tensor:
    """‖x_cn − c_cm‖² for points [C, N, D] and centres [C, M, D] → [C, M, N], by the expanded form.

    ‖x‖² − 2 c·x + ‖c‖², clamped at zero against the rounding of the subtraction; centres times
    points, since MKL's float32 GEMM runs the few rows of centres against the many points about
    twice as fast as the transposed product. With ``sizes`` (each class's valid points) on CPU, one
    matmul per class on its own points, as a one-class call makes it: MKL's rounding changes with
    the batch and the padding, and so would labels on near ties; elsewhere one batched matmul (the
    padding's columns are then garbage, never read). ``point_norms`` (``points.pow(2).sum(-1)``)
    may be passed by a caller that computes distances to the same points many times.
    """
    point_norms = points.pow(2).sum(-1) if point_norms is None else point_norms
    if sizes is not None and points.device.type == "cpu":
        cross = points.new_zeros(len(points), centers.shape[1], points.shape[1])
        for row, class_centers, class_points, size in zip(cross, centers, points, sizes):
            row[:, :size] = class_centers @ class_points[:size].T
    else:
        cross = torch.bmm(centers, points.transpose(1, 2))
    # in place, in the order of ‖x‖² − 2c·x + ‖c‖²: the same floats as the out-of-place expression
    return cross.mul_(-2.0).add_(point_norms[:, None, :]).add_(centers.pow(2).sum(-1)[..., None]).clamp_min_(0.0)


def kmeans_plus_plus_init(points: Tensor, sizes: Sequence[int], uniforms: Tensor, norms: Tensor) -> Tensor:
    """Classic (non-greedy) k-means++ seeding (Arthur & Vassilvitskii 2007), batched over classes
    and restarts: centres [C, R, k, D] for padded points [C, N, D] with ``sizes`` [C] valid points
    and ``norms`` [C, N] their squared norms, from ``uniforms`` [C, R, k] in [0, 1).

    The first centre is a uniformly drawn point; each next one is drawn with probability
    proportional to D²(x), the squared distance to the nearest centre chosen so far. Sampling
    inverts the cumulative D² with the uniform draws, so it runs on the data's device; padding
    weighs 0 and so adds nothing to the cumulative. Should every point of a class already coincide
    with a centre (D² ≡ 0, fewer distinct points than k) the draw is uniform over its points.
    """
    c, n = points.shape[:2]
    k = uniforms.shape[2]
    counts = torch.tensor(sizes, device=points.device)
    last = (counts - 1)[:, None]
    valid = (torch.arange(n, device=points.device) < counts[:, None])[:, None, :]  # [C, 1, N]
    rows = torch.arange(c, device=points.device)[:, None]
    first = torch.minimum((uniforms[..., 0] * counts[:, None].to(points.dtype)).long(), last)
    centers = [points[rows, first]]  # each [C, R, D]
    nearest_sq = squared_distances(points, centers[0], norms, sizes).masked_fill(~valid, 0.0)  # [C, R, N]
    ones = valid.to(points.dtype).expand_as(nearest_sq)
    for i in range(1, k):
        all_covered = nearest_sq.sum(-1, keepdim=True) <= 0
        weights = torch.where(all_covered, ones, nearest_sq)
        cumulative = weights.cumsum(-1)
        target = uniforms[..., i : i + 1] * cumulative[..., -1:]
        chosen = torch.minimum(torch.searchsorted(cumulative, target, right=True).squeeze(-1), last)
        centers.append(points[rows, chosen])
        to_new = squared_distances(points, centers[-1], norms, sizes).masked_fill(~valid, 0.0)
        nearest_sq = torch.minimum(nearest_sq, to_new)
    return torch.stack(centers, dim=2)


def random_init(points: Tensor, k: int, restarts: int, generator: torch.Generator) -> Tensor:
    """k points of one class [N, D] drawn uniformly WITH replacement per restart, by ``torch.randint``.

    This is fast_pytorch_kmeans 0.2.x's default ``init_method="random"``, used by DMGD's code (golden
    README, ``kmeans.pt``; 0.1.x drew distinct points). Duplicate centres are possible: all but the
    first of them end up empty and are handled by the empty-cluster policy.
    """
    chosen = torch.randint(points.shape[0], (restarts, k), generator=generator).to(points.device)
    return points[chosen]


def reseed_empty_clusters(points: Tensor, centers: Tensor, own_distance: Tensor, counts: Tensor) -> Tensor:
    """Move each empty cluster's centre onto a point far from its own centre (sklearn's relocation).

    Per class and restart (centres [C, R, k, D], ``own_distance`` [C, R, N] of each point to its
    assigned centre, −1 at padding), the e empty clusters take the e points with the largest
    distance, farthest first, so they restart where the current partition fits worst.
    """
    empty = counts == 0  # [C, R, k]
    farthest = own_distance.topk(centers.shape[2], dim=-1).indices  # [C, R, k], k ≤ every class's size
    rank_among_empty = (empty.long().cumsum(-1) - 1).clamp_min(0)
    rows = torch.arange(len(points), device=points.device)[:, None, None]
    replacement = points[rows, farthest.gather(-1, rank_among_empty)]  # [C, R, k, D]
    return torch.where(empty[..., None], replacement, centers)


def adds_in_order(device: torch.device) -> bool:
    """Whether cluster sums are made by ``index_add_`` (CPU: the points added in their order) rather
    than by a one-hot matmul (elsewhere: deterministic, where an indexed add on CUDA is not)."""
    return device.type == "cpu"


def sweep(points: Tensor, centers: Tensor, norms: Tensor, valid: Tensor, sizes: Sequence[int],
          labels: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor | None]:
    """One pass over the points [C, N, D] (``sizes`` valid in each class): every point's nearest centre per restart (centres
    [C, R, k, D]; the first on ties, as fast_pytorch_kmeans' argmax of 2x·c − ‖x‖² − ‖c‖²), its
    squared distance to it [C, R, N], and each cluster's sum [C, R, k, D].

    Given ``labels`` [C, R, N], the distances are those to the labelled centres and no sums are made.
    Sums by :func:`adds_in_order`: ``index_add_`` adds the points in their order (N·D additions, and
    the floats of a plain per-class loop), a one-hot matmul otherwise. The whole batch goes through
    each operation at once: on a CPU shared by two threads, cache-sized blocks of points made many
    more parallel calls and ran slower.
    """
    c, r, k, d = centers.shape
    distances = squared_distances(points, centers.reshape(c, r * k, d), norms, sizes).view(c, r, k, -1)
    if labels is not None:
        return labels, distances.gather(2, labels[:, :, None])[:, :, 0], None
    nearest = distances.argmin(2, keepdim=True)  # [C, R, 1, N]
    labels, own = nearest[:, :, 0], distances.gather(2, nearest)[:, :, 0]
    binned = labels.masked_fill(~valid[:, None], k)  # padding: bin k, dropped
    if adds_in_order(points.device):
        sums = points.new_zeros(c * r * (k + 1), d)
        flat = points.reshape(-1, d)
        offsets = (torch.arange(c * r, device=points.device) * (k + 1)).view(c, r, 1)
        for restart in range(r):
            sums.index_add_(0, (binned[:, restart] + offsets[:, restart]).flatten(), flat)
        sums = sums.view(c, r, k + 1, d)[:, :, :k]
    else:
        one_hot = torch.nn.functional.one_hot(binned, k + 1)[..., :k].to(points.dtype)  # [C, R, N, k]
        sums = torch.bmm(one_hot.permute(0, 1, 3, 2).reshape(c, r * k, -1), points).view(c, r, k, d)
    return labels, own, sums


def lloyd(points: Tensor, sizes: list[int], valid: Tensor, norms: Tensor, centers: Tensor, thresholds: Tensor,
          iters: int, empty_clusters: str, final_assignment: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Lloyd's steps on one group of classes (points [C, N, D], start centres [C, R, k, D]) until each
    class stops (module docstring): its final centres, labels and squared distances to the labelled
    centres [C, R, N], and the steps each class ran [C].

    A stopped class is frozen (its centres kept) and dropped from the batch once half of the batch
    has stopped, so that a class costs about the steps it runs without a copy of the points at every
    stop. The one synchronisation of a step is its stop test.
    """
    c, r, k, d = centers.shape
    n, device = points.shape[1], points.device
    centers = centers.clone()
    iterations = torch.zeros(c, dtype=torch.long)
    last_labels = torch.empty(c, r, n, dtype=torch.long, device=device)
    last_own = points.new_empty(c, r, n)
    stable = torch.zeros(c, dtype=torch.bool)  # stopped on a step that left every centre unchanged
    batch = torch.arange(c)  # classes in the batch, running or frozen
    running = torch.ones(c, dtype=torch.bool, device=device)  # over the batch
    b_points, b_norms, b_valid, b_centers, b_thresholds = points, norms, valid, centers, thresholds
    for step in range(iters):
        labels, own, sums = sweep(b_points, b_centers, b_norms, b_valid, [sizes[i] for i in batch.tolist()])
        counts = torch.zeros(len(batch), r, k + 1, dtype=points.dtype, device=device)
        counts = counts.scatter_add_(2, labels.masked_fill(~b_valid[:, None], k),
                                     torch.ones_like(labels, dtype=points.dtype))[..., :k]
        moved = sums / counts.clamp_min(1.0)[..., None]  # an empty cluster's centre: 0
        if empty_clusters == "reseed":  # a no-op without empty clusters, so no test for them
            moved = reseed_empty_clusters(b_points, moved, own.masked_fill(~b_valid[:, None], -1.0), counts)
        shift = (moved - b_centers).pow(2).sum(dim=(2, 3))
        stops = running & ((shift <= b_thresholds[:, None]).all(-1) | (step == iters - 1))
        unchanged = (moved == b_centers).flatten(1).all(-1)  # not shift == 0, which can underflow
        b_centers = torch.where(running[:, None, None, None], moved, b_centers)
        stops_cpu = stops.cpu()
        if not stops_cpu.any():
            continue
        done = batch[stops_cpu]
        iterations[done] = step + 1
        centers[done], last_labels[done], last_own[done] = b_centers[stops], labels[stops], own[stops]
        stable[done] = unchanged[stops].cpu()
        running &= ~stops
        alive = running.cpu()
        if not alive.any():
            break
        if 2 * int(alive.sum()) <= len(batch):
            batch = batch[alive]
            b_points, b_norms, b_valid = b_points[running], b_norms[running], b_valid[running]
            b_centers, b_thresholds = b_centers[running], b_thresholds[running]
            running = torch.ones(len(batch), dtype=torch.bool, device=device)

    # the final assignment, but for a class whose last step moved no centre (it has it already);
    # without final_assignment the labels stay DMGD's, before the last move, scored against the final centres
    moving = (~stable).nonzero()[:, 0]
    if len(moving):
        whole = len(moving) == c
        f_points, f_centers, f_norms, f_valid = ((points, centers, norms, valid) if whole else
                                                 (points[moving], centers[moving], norms[moving], valid[moving]))
        labels, own, _ = sweep(f_points, f_centers, f_norms, f_valid, [sizes[i] for i in moving.tolist()],
                               None if final_assignment else last_labels[moving])
        last_labels[moving], last_own[moving] = labels, own
    return centers, last_labels, last_own, iterations


def check_options(k: int, iters: int, restarts: int, init: str | Tensor, has_generators: bool, tol_mode: str,
                  empty_clusters: str) -> None:
    """The checks shared by :func:`kmeans` and :func:`kmeans_batched` (one-line errors naming the fix)."""
    if k < 1:
        raise ValueError(f"k-means needs k >= 1, got k={k}; pass a positive number of clusters")
    if iters < 1 or restarts < 1:
        raise ValueError(f"k-means needs iters >= 1 and restarts >= 1, got iters={iters}, restarts={restarts}; raise them")
    if isinstance(init, Tensor):
        if restarts != 1:
            raise ValueError(f"k-means with given init centres runs once, got restarts={restarts}; pass restarts=1")
    elif init not in INITS:
        raise ValueError(f"k-means init={init!r} is unknown; use one of {INITS} or a tensor of initial centres")
    elif not has_generators:
        raise ValueError(f"k-means init={init!r} draws from a generator, got None; pass a torch.Generator")
    if tol_mode not in TOL_MODES:
        raise ValueError(f"k-means tol_mode={tol_mode!r} is unknown; use one of {TOL_MODES}")
    if empty_clusters not in EMPTY_CLUSTER_POLICIES:
        raise ValueError(f"k-means empty_clusters={empty_clusters!r} is unknown; use one of {EMPTY_CLUSTER_POLICIES}")


def check_batch(points: Tensor, mask: Tensor | None, k: int, init: str | Tensor,
                generators: Sequence[torch.Generator] | torch.Generator | None) -> Tensor:
    """The batched entry point's own checks; returns each class's size [C]."""
    if points.dim() != 3 or len(points) == 0:
        raise ValueError(f"batched k-means expects points of shape [C, N, D] with C >= 1, got {tuple(points.shape)}; "
                         "stack the classes with pad_classes")
    c, n, d = points.shape
    if mask is None:
        sizes = torch.full((c,), n)
    else:
        if mask.shape != (c, n) or mask.dtype != torch.bool:
            raise ValueError(f"batched k-means mask of shape {tuple(mask.shape)} and dtype {mask.dtype} must be a "
                             f"bool [C, N] = [{c}, {n}]; pass the mask of pad_classes")
        sizes = mask.sum(-1).cpu()
        if not torch.equal(mask.cpu(), torch.arange(n) < sizes[:, None]):
            raise ValueError("batched k-means mask must mark each class's points first and its padding after; "
                             "pad each class at the end, as pad_classes does")
    if int(sizes.min()) < k:
        small = int(sizes.argmin())
        raise ValueError(f"batched k-means with k={k} needs at least k points per class, got N={int(sizes[small])} "
                         f"in class {small}; lower k to at most {int(sizes[small])} or leave the class out")
    if isinstance(init, Tensor) and init.shape != (c, k, d):
        raise ValueError(f"batched k-means init of shape {tuple(init.shape)} must be [C, k, D] = [{c}, {k}, {d}]; "
                         "pass one initial centre per cluster and class")
    if isinstance(generators, Sequence) and len(generators) != c:
        raise ValueError(f"batched k-means got {len(generators)} generators for {c} classes; pass one per class "
                         "(or one torch.Generator, drawn from class after class)")
    return sizes


def kmeans_batched(points: Tensor, k: int, *, mask: Tensor | None = None,
                   generators: Sequence[torch.Generator] | torch.Generator | None, iters: int = 100,
                   restarts: int = 1, init: str | Tensor = "k-means++", tol: float = 1e-6,
                   tol_mode: str = "relative", empty_clusters: str = "reseed",
                   final_assignment: bool = True) -> BatchedKMeansResult:
    """Cluster each of C classes (points [C, N, D], ``mask`` [C, N] marking each class's points
    first, then its padding; None: no padding) into k groups with Lloyd's algorithm, keeping each
    class's best of ``restarts`` runs (DMGD Algorithm 2 per class, in one batched computation).

    ``init`` is a seeding of ``INITS``, drawn from ``generators`` (one per class; a single generator
    is drawn from class after class, as a loop over classes would), or a tensor [C, k, D] of initial
    centres (then ``restarts`` must be 1 and ``generators`` may be None). Each Lloyd step assigns
    every point to its nearest centre (the first on ties, as fast_pytorch_kmeans' argmax of
    2x·c − ‖x‖² − ‖c‖²) and moves every centre to the mean of its points. A class stops after the
    step in which, for every one of its runs, the total squared centre shift Σ_j ‖c_j' − c_j‖² falls
    to its threshold, or after ``iters`` steps; a stopped class is frozen while the others go on.
    ``tol_mode="relative"`` (the suite's, sklearn's) takes ``tol`` × the mean per-feature variance of
    the class's points as the threshold, ``"absolute"`` takes ``tol`` itself (fast_pytorch_kmeans,
    DMGD: 1e-4).

    ``empty_clusters="reseed"`` (the suite's deliberate choice, sklearn-like) moves the centre of a
    cluster left without points to the point farthest from its centre; ``"zero"`` is DMGD's official
    behaviour (golden README, ``kmeans.pt``): the mean of no points, 0/0, becomes the zero vector, and
    Lloyd moves it on from there like any centre. With ``final_assignment`` (the suite's default),
    the returned labels are the nearest final centres; without it they are, as DMGD's, the
    assignment made at the start of the last step, before the final move. Padding (any finite values)
    never becomes a centre, gets a label (−1) or counts. Float64 input is computed in float64,
    anything else in float32.
    """
    check_options(k, iters, restarts, init, generators is not None, tol_mode, empty_clusters)
    sizes = check_batch(points, mask, k, init, generators)
    if isinstance(generators, torch.Generator):
        generators = [generators] * len(points)
    work_dtype = torch.float64 if points.dtype == torch.float64 else torch.float32
    points = points.to(work_dtype)
    c, n, d = points.shape
    device = points.device
    sizes_list = sizes.tolist()
    norms = points.pow(2).sum(-1)  # once, not in every assignment step
    valid = torch.arange(n, device=device) < sizes.to(device)[:, None]  # [C, N]
    # the draws class after class, each from its class's generator: those of one-class calls
    if isinstance(init, Tensor):
        start = init.to(points)[:, None]
    elif init == "k-means++":
        uniforms = torch.stack([torch.rand(restarts, k, generator=g, dtype=work_dtype) for g in generators])
        start = kmeans_plus_plus_init(points, sizes_list, uniforms.to(device), norms)
    else:
        start = torch.stack([random_init(points[i, :m], k, restarts, g)
                             for i, (m, g) in enumerate(zip(sizes_list, generators))])
    if tol_mode == "relative":  # per class on its own points: the floats of a one-class call
        # Σ (x − μ)² / (N·D), the mean of the per-feature variances, in two passes (torch's
        # var(dim=0) over the rows of [1300, 4096] floats runs about 6x slower)
        thresholds = torch.stack([tol * (points[i, :m] - points[i, :m].mean(0)).pow_(2).mean()
                                  for i, m in enumerate(sizes_list)])
    else:
        thresholds = torch.full((c,), tol, dtype=work_dtype, device=device)
    centers, labels, own, iterations = lloyd(points, sizes_list, valid, norms, start, thresholds, iters, empty_clusters,
                                             final_assignment)

    # the best run of each class, on its own points (its floats do not depend on the padding)
    best_centers = points.new_empty(c, k, d)
    best_labels = torch.full((c, n), -1, dtype=torch.long, device=device)
    inertia = torch.empty(c, dtype=torch.float64)
    for i, m in enumerate(sizes_list):
        best = int(own[i, :, :m].sum(-1).argmin())
        best_centers[i], best_labels[i, :m] = centers[i, best], labels[i, best, :m]
        inertia[i] = float((points[i, :m] - best_centers[i][best_labels[i, :m]]).pow(2).sum())
    counts = torch.zeros(c, k + 1, dtype=torch.long, device=device)
    counts.scatter_add_(1, best_labels.masked_fill(~valid, k), torch.ones_like(best_labels))
    counts = counts[:, :k]
    return BatchedKMeansResult(centers=best_centers, labels=best_labels, counts=counts, inertia=inertia,
                               masses=counts.to(work_dtype) / sizes.to(device)[:, None].to(work_dtype),
                               sizes=sizes, iterations=iterations)


def kmeans(points: Tensor, k: int, *, generator: torch.Generator | None, iters: int = 100, restarts: int = 1,
           init: str | Tensor = "k-means++", tol: float = 1e-6, tol_mode: str = "relative",
           empty_clusters: str = "reseed", final_assignment: bool = True) -> KMeansResult:
    """Cluster one class's points [N, D] into k groups: :func:`kmeans_batched` on a batch of one class.

    ``init`` is a seeding of ``INITS``, drawn from ``generator``, or a tensor [k, D] of initial
    centres (then ``restarts`` must be 1 and ``generator`` may be None); the other options are
    :func:`kmeans_batched`'s.
    """
    if points.dim() != 2:
        raise ValueError(f"k-means expects points of shape [N, D], got {tuple(points.shape)}; flatten the features")
    n = points.shape[0]
    if k > n:
        raise ValueError(f"k-means with k={k} needs at least k points, got N={n}; lower k to at most {n}")
    if isinstance(init, Tensor):
        if init.shape != (k, points.shape[1]):
            raise ValueError(f"k-means init of shape {tuple(init.shape)} must be [k, D] = [{k}, {points.shape[1]}]; "
                             "pass one initial centre per cluster")
        init = init[None]
    return kmeans_batched(points[None], k, generators=None if generator is None else [generator], iters=iters,
                          restarts=restarts, init=init, tol=tol, tol_mode=tol_mode, empty_clusters=empty_clusters,
                          final_assignment=final_assignment)[0]


def kmeans_classes(classes: Iterable[Tensor], k: int, *, generators: Iterable[torch.Generator] | None,
                   k_at_most_size: bool = False, batch_bytes: int = BATCH_BYTES, **options) -> list[KMeansResult]:
    """:func:`kmeans_batched` over classes of points [N_c, D], one result per class: the one
    :func:`kmeans` gives the class with its generator (one per class, or None with given init).

    Consecutive classes are padded into one batch while it holds at most ``batch_bytes`` of points
    (at least one class) and one k; ``classes`` and ``generators`` are read lazily, batch by batch,
    so that a caller can hand in a generator of classes and never hold them all. With
    ``k_at_most_size`` a class of fewer than k points gets k = its size (DMGD's ``min(K, N)``);
    without it such a class is refused. ``options`` are :func:`kmeans_batched`'s.
    """
    results: list[KMeansResult] = []
    pending: list[Tensor] = []
    pending_generators: list[torch.Generator | None] = []
    pending_k, widest = k, 0

    def flush() -> None:
        points, mask = pad_classes(pending)
        batch = kmeans_batched(points, pending_k, mask=mask,
                               generators=None if generators is None else list(pending_generators), **options)
        results.extend(batch[i] for i in range(len(batch)))
        pending.clear()
        pending_generators.clear()

    draws = repeat(None) if generators is None else generators
    for index, (points, gen) in enumerate(zip(classes, draws, strict=generators is not None)):
        class_k = min(k, len(points)) if k_at_most_size else k
        if len(points) < class_k:
            raise ValueError(f"k-means with k={k} needs at least k points, got N={len(points)} in class {index}; "
                             f"lower k to at most {len(points)} or pass k_at_most_size=True")
        itemsize = 8 if points.dtype == torch.float64 else 4
        if pending and (class_k != pending_k or
                        (len(pending) + 1) * max(widest, len(points)) * points.shape[-1] * itemsize > batch_bytes):
            flush()
        if not pending:
            pending_k, widest = class_k, 0
        pending.append(points)
        pending_generators.append(gen)
        widest = max(widest, len(points))
    if pending:
        flush()
    return results
