"""DMGD's per-image cost as a ratio to plain DiT sampling, measured in the same run.

Both methods distil the same dataset with the same backbone, sampler steps and batch (one sample
of every class per batch: the batch greedy progressive matching allows), each timed end to end
(backbone load, k-means for DMGD, sampling, decoding) as the best of ``--repeats`` interleaved runs. DMGD's
cost must stay within 1.2x of DiT's (issue #3).

Usage: python benchmarks/dmgd_overhead.py [--backbone DIR] [--ipc 10] [--steps 50] [--repeats 5]
Without --backbone it uses results/digits/backbones/tiny if present, else builds an untrained
backbone of the default profile's architecture (timing does not depend on the weights).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from evaluation.config import validate_config
from evaluation.datasets import dataset_info, prepare_digits
from methods.diffusion.backbone import Backbone, dit_scheduler, open_backbone
from methods.diffusion.latents import encode_split
from methods.diffusion.train_tiny import build_dit, build_vae
from methods.registry import DistillContext, get_method

LIMIT = 1.2


def default_backbone(directory: Path) -> Path:
    trained = Path("results/digits/backbones/tiny")
    if trained.is_dir():
        return trained
    config = validate_config({"profile": "b", "datasets": ["digits"], "ipcs": [1], "methods": {"d": {"method": "dit"}}})
    train = config["backbone"]["train"]
    size = config["data"]["digits_image_size"]
    vae = build_vae(train, size)
    latent = size // 2 ** (len(train["vae_channels"]) - 1)
    Backbone(build_dit(train, latent, 10), vae, dit_scheduler()).save(directory / "tiny")
    return directory / "tiny"


def best_times(contexts: dict[str, DistillContext], repeats: int) -> dict[str, float]:
    """Best wall time of each method over ``repeats`` rounds, the methods interleaved in each round
    so that a slow spell of a shared machine hits both alike."""
    best = {name: float("inf") for name in contexts}
    for _ in range(repeats):
        for name, ctx in contexts.items():
            started = time.perf_counter()
            get_method(name).distill(ctx)
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", type=Path, default=None)
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        backbone_dir = args.backbone or default_backbone(tmp)
        data_dir = tmp / "digits"
        prepare_digits(data_dir, open_backbone(backbone_dir).vae.config.sample_size, 0.2, 0)
        torch.save(encode_split(open_backbone(backbone_dir), data_dir, None), tmp / "latents.pt")
        info = dataset_info("digits")
        sampler = {"steps": args.steps, "cfg_scale": 4.0, "cfg_channels": None, "batch_size": info.num_classes}
        config = validate_config({"profile": "b", "datasets": ["digits"], "ipcs": [args.ipc],
                                  "methods": {"d": {"method": "dmgd"}}})
        context = lambda params: DistillContext(info, data_dir, args.ipc, 0, params, sampler, {},  # noqa: E731
                                                backbone_dir, tmp / "latents.pt")
        times = best_times({"dit": context({}), "dmgd": context(config["methods"]["d"]["params"])}, args.repeats)
    dit, dmgd = times["dit"], times["dmgd"]
    images = info.num_classes * args.ipc
    ratio = dmgd / dit
    print(f"backbone {backbone_dir}, {images} images, {args.steps} steps, batch {info.num_classes}, "
          f"{torch.get_num_threads()} threads")
    print(f"dit : {1000 * dit / images:8.2f} ms/image")
    print(f"dmgd: {1000 * dmgd / images:8.2f} ms/image")
    print(f"dmgd / dit = {ratio:.3f}  (limit {LIMIT}: {'PASS' if ratio <= LIMIT else 'FAIL'})")


if __name__ == "__main__":
    main()
