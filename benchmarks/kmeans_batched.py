"""Class-batched k-means against scikit-learn's ``KMeans`` looped over classes (issue #18 item 2).

The suite clusters all classes of a dataset in one masked call (``methods/diffusion/kmeans.py``:
``kmeans_classes`` pads them and runs ``kmeans_batched``); scikit-learn fits one ``KMeans`` per class,
one after another, with the same k, init kind, restarts (``n_init``), ``max_iter`` and relative
tolerance. Both sides are timed side by side in one process, interleaved, best of ``repeats``
rounds (``benchmarks.timing.best_times``), on 2 threads each: ``torch.set_num_threads`` and
``threadpoolctl`` for scikit-learn's OpenMP and BLAS pools. The inertia compared is the sum over the
classes of each side's ``inertia_``.

The data are seeded mixtures of Gaussians, one mixture per class, so that the clusters mean
something: ImageNet-shaped (10 classes of 1,000 to 1,300 latents of 4·32·32 = 4,096 dims, float32)
at DMGD's setting (k = ``support_points``, random init: the official preset's ``kmeans_init``) and at
MGD³'s (k-means++, k = IPC 10 and 50), and at the embedded profile's sizes (the digits train split's
classes, 256-dim latents, float64 as DMGD clusters them, k = ``support_points``, k-means++, the
sizes of the k-means figure ``benchmarks/run.py`` had before these rows). scikit-learn's k-means++
is its greedy variant (2 + ln k candidates per centre), the suite's the classic one: the same init
kind, as scikit-learn names it. Both sides run Lloyd's steps to the same stop rule: given the same
initial centres they take the same steps to the same labels (checked at the ImageNet size, k 10).

Usage: python benchmarks/kmeans_batched.py [--quick] [--repeats 3]; ``benchmarks/run.py`` adds the rows.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # run as a script from anywhere
from benchmarks.rows import Row, ms
from benchmarks.timing import best_times
from methods.diffusion.kmeans import kmeans_classes

THREADS = 2          # torch and scikit-learn alike
TOL = 1e-6           # the suite's relative tolerance (scikit-learn's definition)
SEED = 0
COMPONENTS = 20      # Gaussians per class
SPREAD = 0.2         # std of the component means per dim, against unit within-component noise


@dataclass(frozen=True)
class Case:
    name: str            # what the row stands for
    sizes: tuple[int, ...]
    dim: int
    dtype: torch.dtype
    k: int
    init: str
    restarts: int
    iters: int = 100


def mixture_classes(sizes: tuple[int, ...], dim: int, dtype: torch.dtype, seed: int = SEED) -> list[torch.Tensor]:
    """One seeded mixture of ``COMPONENTS`` Gaussians per class: means ~ N(0, SPREAD²), unit noise."""
    gen = torch.Generator().manual_seed(seed)
    classes = []
    for n in sizes:
        means = SPREAD * torch.randn(COMPONENTS, dim, generator=gen)
        members = torch.randint(COMPONENTS, (n,), generator=gen)
        classes.append((means[members] + torch.randn(n, dim, generator=gen)).to(dtype))
    return classes


def imagenet_sizes(classes: int, seed: int = SEED) -> tuple[int, ...]:
    """Class sizes of ImageNet-1K's train split range (732 to 1,300, most at 1,300): 1,000 to 1,300."""
    return tuple(torch.randint(1000, 1301, (classes,), generator=torch.Generator().manual_seed(seed)).tolist())


def digits_sizes() -> tuple[int, ...]:
    """The class sizes of the embedded profile's digits train split."""
    from sklearn.datasets import load_digits

    from evaluation.config.validate import validate_config
    from evaluation.data.datasets import digits_split
    data = validate_config({"profile": "b", "datasets": ["digits"], "ipcs": [1],
                            "methods": {"d": {"method": "dit"}}})["data"]
    targets = load_digits().target
    train = digits_split(targets, data["digits_test_fraction"], data["split_seed"], data["digits_val_fraction"])[0]
    return tuple(np.bincount(targets[train]).tolist())


def cases(quick: bool) -> list[Case]:
    from benchmarks.dmgd_overhead import method_params
    from methods.dmgd_fidelity import resolve_fidelity
    dmgd = method_params("dmgd")
    support, iters = dmgd["support_points"], dmgd["kmeans_iters"]
    dmgd_init = resolve_fidelity(dmgd["fidelity"]).kmeans_init
    imagenet = imagenet_sizes(3 if quick else 10)
    if quick:
        imagenet = tuple(n // 10 for n in imagenet)
    dim = 256 if quick else 4 * 32 * 32
    ipcs = (10,) if quick else (10, 50)
    found = []
    for restarts in (1, 3):
        found.append(Case("DMGD support points", imagenet, dim, torch.float32, support, dmgd_init, restarts, iters))
        found += [Case(f"MGD³ modes, IPC {ipc}", imagenet, dim, torch.float32, ipc, "k-means++", restarts,
                       method_params("mgd3")["kmeans_iters"]) for ipc in ipcs]
        found.append(Case("embedded digits sizes", digits_sizes(), 256, torch.float64, support, "k-means++",
                          restarts, iters))
    return found


def measure(case: Case, repeats: int) -> dict:
    """Best times (s) of both sides and their summed inertias and Lloyd steps, on ``THREADS`` threads."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    classes = mixture_classes(case.sizes, case.dim, case.dtype)
    arrays = [points.numpy() for points in classes]   # the same memory
    found: dict = {}

    def suite():
        results = kmeans_classes(classes, case.k, generators=[torch.Generator().manual_seed(c) for c in
                                                               range(len(classes))],
                                 iters=case.iters, restarts=case.restarts, init=case.init, tol=TOL)
        found["suite"] = sum(result.inertia for result in results)

    def sklearn():
        fits = [KMeans(n_clusters=case.k, init=case.init, n_init=case.restarts, max_iter=case.iters, tol=TOL,
                       random_state=c).fit(points) for c, points in enumerate(arrays)]
        found["sklearn"] = sum(float(fit.inertia_) for fit in fits)
        found["sklearn_iters"] = [int(fit.n_iter_) for fit in fits]

    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        with threadpool_limits(limits=THREADS):
            times = best_times({"suite": suite, "sklearn": sklearn}, repeats)
    finally:
        torch.set_num_threads(threads)
    return {"times": times, **found}


def kmeans_rows(quick: bool, repeats: int) -> list[Row]:
    """One benchmark row per case: suite's time / scikit-learn's, goal ≤ 0.5 and inertia within 1 %
    (the suite's summed inertia at most 1 % above scikit-learn's, as ``benchmarks/run.py`` judges it)."""
    # the goals live in run.py, which imports this module: imported here, not at the top, where it
    # would be circular
    from benchmarks.run import KMEANS_INERTIA_TOLERANCE, SKLEARN_TIME_GOAL

    rows = []
    for case in cases(quick):
        result = measure(case, repeats)
        times = result["times"]
        ratio = times["suite"] / times["sklearn"]
        relative = result["suite"] / result["sklearn"] - 1.0
        dtype = str(case.dtype).removeprefix("torch.")
        rows.append(Row(
            f"Class-batched k-means / scikit-learn `KMeans` looped over classes, time ({case.name}: "
            f"{len(case.sizes)} classes of {min(case.sizes)}–{max(case.sizes)}×{case.dim} {dtype} points, k {case.k}, "
            f"{case.init}, {case.restarts} restart{'s' * (case.restarts > 1)}, ≤ {case.iters} steps, tol {TOL:g}, "
            f"{THREADS} threads each; inertia {100 * relative:+.2f}%)",
            ms(times["suite"]), ms(times["sklearn"]), f"{ratio:.2f}×",
            f"≤ {SKLEARN_TIME_GOAL:g}, inertia within {100 * KMEANS_INERTIA_TOLERANCE:g}%",
            ratio <= SKLEARN_TIME_GOAL and relative <= KMEANS_INERTIA_TOLERANCE and math.isfinite(relative)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for the smoke test")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for row in kmeans_rows(args.quick, args.repeats):
        print("| " + " | ".join(row.cells()) + " |")


if __name__ == "__main__":
    main()
