"""How the cost of distillation, evaluation and metrics grows with classes, IPC and image size.

Measured on the embedded profile's pieces at several sizes in one run (best of ``--repeats``
interleaved rounds), printed as a markdown table with the growth exponent b of each pair of
sizes (cost ∝ size^b between the two readings), for the scaling table of docs/performance.md:

- distillation: ``dit`` and ``dmgd`` (default parameters, ``--steps`` sampler steps; cost is linear in
  steps by construction) over classes (a class chunk of the digits), IPC, and image size (an
  untrained backbone of the default architecture at 16 and 32 px: 4 and 16 latent tokens per side);
- evaluation: one hard-label training epoch of ConvNet-3 over the set size N = classes x IPC and
  the image size;
- metrics: ``evaluation.metrics.measure.compute_metrics`` on teacher-sized features (512) against the
  1,437 real training images, over the synthetic set size.

Usage: python benchmarks/scaling.py [--steps 50] [--repeats 2]
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # run as a script from anywhere
from benchmarks.dmgd_overhead import (
    context,
    default_backbone,
    distill_inputs,
    distill_runner,
)
from benchmarks.eval_loop import NETWORK, suite_epoch
from benchmarks.timing import best_times
from evaluation.config.validate import validate_config
from evaluation.protocols.networks import create_network
from evaluation.protocols.training import to_unit_float

REAL_IMAGES = 1437        # the digits' training split
FEATURES = 512            # ConvNet-3 (width 128) features at 16 px: 128 x 2 x 2


def exponent(x0: float, t0: float, x1: float, t1: float) -> float:
    return math.log(t1 / t0) / math.log(x1 / x0)


def distill_points(work: Path, steps: int, repeats: int) -> list[tuple[str, str, float, float, float, float]]:
    """(method, varied, x0, t0, x1, t1) per scaling pair, time per set in seconds."""
    backbones = {size: default_backbone(work / "b", size) for size in (16, 32)}
    inputs = {}
    for size, backbone in backbones.items():
        (work / f"d{size}").mkdir(parents=True, exist_ok=True)
        inputs[size] = distill_inputs(work / f"d{size}", backbone)
    cases = {}   # (method, classes, ipc, size) -> runner
    points = [(10, 10, 16), (5, 10, 16), (10, 1, 16), (10, 4, 32), (10, 4, 16)]
    for method in ("dit", "dmgd"):
        for classes, ipc, size in points:
            ctx = context(method, backbones[size], inputs[size], ipc, steps, 100)
            ctx.classes = range(classes)
            cases[(method, classes, ipc, size)] = distill_runner(method, ctx)
    times = best_times(cases, repeats)
    rows = []
    for method in ("dit", "dmgd"):
        t = {key[1:]: value for key, value in times.items() if key[0] == method}
        rows += [(method, "classes (IPC 10, 16 px)", 5, t[(5, 10, 16)], 10, t[(10, 10, 16)]),
                 (method, "IPC (10 classes, 16 px)", 1, t[(10, 1, 16)], 10, t[(10, 10, 16)]),
                 (method, "image size (10 classes, IPC 4)", 16, t[(10, 4, 16)], 32, t[(10, 4, 32)])]
    return rows


def evaluation_points(repeats: int) -> list[tuple[str, str, float, float, float, float]]:
    protocol = validate_config({"profile": "b", "datasets": ["digits"], "ipcs": [1],
                                "methods": {"r": {"method": "random"}}})["protocols"]["hard_label"]
    runners = {}
    for n, size in ((100, 16), (1000, 16), (100, 32)):
        gen = torch.Generator().manual_seed(0)
        data = to_unit_float(torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=gen), "cpu")
        targets = torch.arange(n) % 10
        model = create_network(NETWORK["arch"], 10, size, depth=NETWORK["depth"], width=NETWORK["width"])
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        runners[(n, size)] = (lambda m=model, o=optimizer, d=data, y=targets, g=gen:
                              suite_epoch(m, o, d, y, protocol, g))
    times = best_times(runners, repeats)
    return [("training epoch", "set size N = classes x IPC (16 px)", 100, times[(100, 16)], 1000, times[(1000, 16)]),
            ("training epoch", "image size (N = 100)", 16, times[(100, 16)], 32, times[(100, 32)])]


def metric_points(repeats: int) -> list[tuple[str, str, float, float, float, float]]:
    from evaluation.metrics.measure import compute_metrics
    cfg = validate_config({"profile": "b", "datasets": ["digits"], "ipcs": [1],
                           "methods": {"r": {"method": "random"}}})["metrics"]
    rng = np.random.default_rng(0)
    real = rng.standard_normal((REAL_IMAGES, FEATURES)).astype(np.float32)
    sets = {n: rng.standard_normal((n, FEATURES)).astype(np.float32) for n in (10, 100, 1000)}
    times = best_times({n: (lambda s=s: compute_metrics(cfg, real, s, real, s)) for n, s in sets.items()}, repeats)
    return [("all metrics of one set", "synthetic set size (1,437 real)", 10, times[10], 100, times[100]),
            ("all metrics of one set", "synthetic set size (1,437 real)", 100, times[100], 1000, times[1000])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        rows = distill_points(Path(tmp), args.steps, args.repeats)
    rows += evaluation_points(args.repeats) + metric_points(args.repeats)
    print(f"| Job | Varied | Sizes | Seconds | Growth exponent b (cost ∝ x^b) |  ({args.steps} sampler steps, "
          f"{torch.get_num_threads()} threads)")
    print("|---|---|---:|---:|---:|")
    for job, varied, x0, t0, x1, t1 in rows:
        print(f"| {job} | {varied} | {x0:g} → {x1:g} | {t0:.2f} → {t1:.2f} | {exponent(x0, t0, x1, t1):.2f} |")


if __name__ == "__main__":
    main()
