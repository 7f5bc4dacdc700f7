"""DMGD's per-image cost as a ratio to plain DiT sampling, measured in the same run.

Both methods distil the same dataset with the same backbone, sampler steps and batch (one sample
of every class per batch: the batch greedy progressive matching allows), each timed end to end
(backbone load, k-means for DMGD, sampling, decoding) as the best of ``--repeats`` interleaved runs. DMGD's
cost must stay within 1.2x of DiT's (issue #3). ``benchmarks/run.py`` uses the pieces of this file
for every method.

Usage: python benchmarks/dmgd_overhead.py [--backbone DIR] [--ipc 10] [--steps 50] [--repeats 5]
Without --backbone it uses results/digits/backbones/tiny if present, else builds an untrained
backbone of the default profile's architecture (timing does not depend on the weights).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # run as a script from anywhere
from benchmarks.timing import best_times
from evaluation.config.validate import validate_config
from evaluation.data.datasets import dataset_info, prepare_digits
from methods.diffusion.backbone import Backbone, dit_scheduler, open_backbone
from methods.diffusion.latents import encode_split
from methods.diffusion.train_tiny import build_dit, build_vae
from methods.registry import DistillContext, get_method

LIMIT = 1.2


def default_backbone(directory: Path, image_size: int | None = None) -> Path:
    """The trained default backbone if present (and ``image_size`` is the default's), else an
    untrained one of the default architecture at ``image_size`` saved under ``directory``."""
    config = validate_config({"profile": "b", "datasets": ["digits"], "ipcs": [1], "methods": {"d": {"method": "dit"}}})
    train = config["backbone"]["train"]
    size = image_size or config["data"]["digits_image_size"]
    trained = Path("results/digits/backbones/tiny")
    if trained.is_dir() and size == config["data"]["digits_image_size"]:
        return trained
    latent = size // 2 ** (len(train["vae_channels"]) - 1)
    Backbone(build_dit(train, latent, 10), build_vae(train, size), dit_scheduler()).save(directory / f"tiny{size}")
    return directory / f"tiny{size}"


def distill_inputs(directory: Path, backbone_dir: Path, device: str = "cpu") -> tuple[Path, Path]:
    """The digits prepared at the backbone's image size and their latents, under ``directory``."""
    backbone = open_backbone(backbone_dir, device=device)
    data_dir = directory / "digits"
    prepare_digits(data_dir, backbone.vae.config.sample_size, 0.2, 0)
    torch.save(encode_split(backbone, data_dir, None), directory / "latents.pt")
    return data_dir, directory / "latents.pt"


def method_params(method: str, overrides: dict | None = None) -> dict:
    """The schema defaults of a registry method's parameters (what the default profile runs)."""
    config = validate_config({"profile": "b", "datasets": ["digits"], "ipcs": [1],
                              "methods": {"m": {"method": method, "params": overrides or {}}}})
    return config["methods"]["m"]["params"]


def context(method: str, backbone_dir: Path, inputs: tuple[Path, Path], ipc: int, steps: int,
            batch_size: int, device: str = "cpu", sampler: dict | None = None) -> DistillContext:
    """A distillation of the digits by ``method`` with its default parameters."""
    data_dir, latents = inputs
    cfg = {"steps": steps, "cfg_scale": 4.0, "cfg_channels": None, "batch_size": batch_size, **(sampler or {})}
    params = get_method(method).parse_params(method_params(method))
    return DistillContext(dataset_info("digits"), data_dir, ipc, 0, params, cfg, {}, backbone_dir, latents,
                          device=device)


def distill_runner(method: str, ctx: DistillContext):
    return lambda: get_method(method).distill(ctx)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", type=Path, default=None)
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    classes = dataset_info("digits").num_classes
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        backbone_dir = args.backbone or default_backbone(tmp)
        inputs = distill_inputs(tmp, backbone_dir)
        times = best_times({m: distill_runner(m, context(m, backbone_dir, inputs, args.ipc, args.steps, classes))
                            for m in ("dit", "dmgd")}, args.repeats)
    dit, dmgd = times["dit"], times["dmgd"]
    images = classes * args.ipc
    ratio = dmgd / dit
    print(f"backbone {backbone_dir}, {images} images, {args.steps} steps, batch {classes}, "
          f"{torch.get_num_threads()} threads")
    print(f"dit : {1000 * dit / images:8.2f} ms/image")
    print(f"dmgd: {1000 * dmgd / images:8.2f} ms/image")
    print(f"dmgd / dit = {ratio:.3f}  (limit {LIMIT}: {'PASS' if ratio <= LIMIT else 'FAIL'})")


if __name__ == "__main__":
    main()
