"""Job counts and estimated GPU-hours of every paper profile, from its dry run and a FLOP model.

For each ``config/paper/*.yaml`` the script dry-runs the DAG over a fake ImageNet tree (no pixel is
read), takes every job with its wildcards, and prices the GPU work:

- ``distill`` of a diffusion method: images x sampler steps x (2 with classifier-free guidance) x one DiT
  forward, with S³'s ``groups`` x IPC candidates per class (IMS3);
- ``distill`` of an encoder method (LGM, SFM): iterations x C x IPC x augs_per_batch x the encoder forwards
  of one step (``ENCODER_STEP_FORWARDS``: LGM's real forward + the synthetic forward, backward with a graph
  and double backward ~ 5; SFM's forward + backward ~ 3) at the crop resolution;
- ``finetune_backbone`` (Minimax): steps x batch x 3 (forward + backward) x one DiT forward; IMS3's IM term
  adds one no-grad forward per row (x 4);
- ``evaluate``: per repeat (a job trains ``evaluation.repeats`` of them), epochs x set size x 3 x one
  forward of the evaluation network at the protocol's resolution, plus every evaluation pass over the
  test and validation splits (50 + 50 per class); a linear probe's frozen encoder runs forward only
  (x 1). A job whose repeats train as one stacked model (``evaluation.stack_repeats``,
  ``evaluation/protocols/stacked_training.py``) is priced at ``--stacked-eval-tflops``, one whose
  repeats train one at a time (dropout networks, classifier inheritance) at ``--eval-tflops``;
- ``class_statistics`` (SFM) and ``golden_head`` (classifier inheritance): the train split
  (``TRAIN_IMAGES_PER_CLASS``) through the encoder, once and ``golden_head.epochs`` times;
- data preparation, latents, features, metrics and tables are left out (minutes, not hours).

Forward FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` on the real
architectures built on the meta device (DiT-XL/2 at 256 px: 237 GFLOP per image). FLOPs become
hours at an *assumed* sustained throughput (``--dit-tflops``, ``--eval-tflops``, ``--stacked-eval-tflops``):
these are not measurements, no GPU was available where this was written; pass your own, e.g. from
``benchmarks/gpu_check.sh`` (its evaluation rows give single and model-batched epochs/s).

Usage: python benchmarks/paper_cost.py [--dit-tflops 150] [--eval-tflops 25] [--stacked-eval-tflops 60]
       [--profiles woof.yaml ...]
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from functools import cache
from pathlib import Path

import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from evaluation.config.validate import validate_config
from evaluation.data.datasets import dataset_info
from evaluation.protocols.networks import create_network
from evaluation.protocols.protocols import evaluation_epochs, protocol_epochs
from evaluation.protocols.stacked_training import stackable
from methods.encoder.encoders import ENCODERS
from methods.registry import get_method

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))   # the fake ImageNet tree of the tests
from tests.fake_imagenet import make_fake_imagenet, make_fake_imagenet_1k

EVAL_IMAGES_PER_CLASS = 100   # ImageNet val (the test split, 50) + the held-out validation split (50)
TRAIN_IMAGES_PER_CLASS = 1281  # ImageNet-1K train: 1,281,167 images / 1000 classes
ENCODER_STEP_FORWARDS = {"lgm": 5, "sfm": 3}   # encoder forward-equivalents per image and step (module docstring)
DIT_XL_2 = {"num_attention_heads": 16, "attention_head_dim": 72, "in_channels": 4, "out_channels": 8,
            "num_layers": 28, "patch_size": 2, "sample_size": 32, "num_embeds_ada_norm": 1000}
JOB = re.compile(r"^(?:local)?rule (\w+):$")


@cache
def dit_flops() -> float:
    """FLOPs of one DiT-XL/2 forward of one 256 px image (32x32x4 latent)."""
    from diffusers import DiTTransformer2DModel

    with torch.device("meta"):
        model = DiTTransformer2DModel(**DIT_XL_2)
        with FlopCounterMode(display=False) as counter:
            model(torch.randn(1, 4, 32, 32), timestep=torch.tensor([1]), class_labels=torch.tensor([1]))
    return float(counter.get_total_flops())


@cache
def network_flops(arch: str, size: int, kwargs: tuple) -> float:
    """FLOPs of one forward of one image through an evaluation network."""
    with torch.device("meta"):
        model = create_network(arch, 10, size, **dict(kwargs))
        with FlopCounterMode(display=False) as counter:
            model(torch.randn(1, 3, size, size))
    return float(counter.get_total_flops())


@cache
def stackable_network(arch: str, size: int, kwargs: tuple, loss: str) -> bool:
    """Whether the repeats of a network train as one stacked model (``stacked_training.stackable``)."""
    with torch.device("meta"):
        return stackable(create_network(arch, 10, size, **dict(kwargs)), {"loss": loss})


@cache
def encoder_flops(name: str) -> float:
    """FLOPs of one forward of one image through a frozen encoder at its input size (timm, meta device)."""
    import timm

    spec = ENCODERS[name]
    with torch.device("meta"):
        model = timm.create_model(spec.arch, pretrained=False, num_classes=0, **spec.kwargs)
        with FlopCounterMode(display=False) as counter:
            model(torch.randn(1, 3, spec.input_size, spec.input_size))
    return float(counter.get_total_flops())


def root_kind(datasets: list[str]) -> str:
    """Which fake root a profile's datasets need: the subsets', 1K's, or 1K's beside IDC-100's."""
    if "imagenet_1k" not in datasets:
        return "subsets"
    return "1k" if datasets == ["imagenet_1k"] else "both"


def dry_run_jobs(profile: Path, roots: dict[str, Path]) -> list[tuple[str, dict[str, str]]]:
    """(rule, wildcards) of every job of the profile's dry run."""
    config = yaml.safe_load(profile.read_text())
    root = roots[root_kind(config["datasets"])]
    env = {**os.environ, "XDG_CACHE_HOME": str(roots["work"] / "cache")}
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-n", "--cores", "1",
                           "-d", str(roots["work"] / profile.stem), "--configfile", str(profile),
                           "--config", f"imagenet_root={root}"], capture_output=True, text=True, env=env,
                          check=False)
    if proc.returncode:
        raise SystemExit(f"dry run of {profile.name} failed: {(proc.stdout + proc.stderr)[-1000:]}")
    jobs, rule = [], None
    for line in proc.stdout.splitlines():
        if match := JOB.match(line.strip()):
            rule = match.group(1)
            jobs.append((rule, {}))
        elif line.strip().startswith("wildcards:") and jobs:
            jobs[-1][1].update(pair.split("=", 1) for pair in line.split(":", 1)[1].strip().split(", "))
    return jobs


def job_flops(rule: str, wildcards: dict[str, str], config: dict) -> tuple[str, float]:
    """(cost category, FLOPs) of one job."""
    if rule == "distill":
        info = dataset_info(wildcards["dataset"])
        variant = config["methods"][wildcards["method"]]
        method, params = get_method(variant["method"]), variant["params"]
        classes = info.num_classes
        if "chunk" in wildcards:
            start, stop = map(int, wildcards["chunk"].split("-"))
            classes = stop - start
        images = classes * int(wildcards["ipc"])
        if not method.needs_backbone:
            if method.encoder_param is None:   # random, external: no network
                return "distill", 0.0
            copies = images * params["augs_per_batch"] * (params["iterations"] + 1)
            return "distill", copies * ENCODER_STEP_FORWARDS[variant["method"]] * encoder_flops(method.encoder(params))
        sampler = {**config["sampler"], **variant.get("sampler", {})}
        if "groups" in params:                 # S³: G candidates of every class in every chunk job
            images = info.num_classes * int(wildcards["ipc"]) * params["groups"]
        guided = 2 if sampler["cfg_scale"] != 1 else 1
        return "distill", images * sampler["steps"] * guided * dit_flops()
    if rule == "finetune_backbone":
        params = config["methods"][wildcards["method"]]["params"]
        passes = 4 if "lambda_match" in params else 3
        return "finetune", params["steps"] * params["batch_size"] * passes * dit_flops()
    if rule in ("class_statistics", "golden_head"):
        train = dataset_info(wildcards["dataset"]).num_classes * TRAIN_IMAGES_PER_CLASS
        epochs = config["golden_head"]["epochs"] if rule == "golden_head" else 1
        flops = 0.0 if wildcards["encoder"] not in ENCODERS else encoder_flops(wildcards["encoder"])
        return "distill", train * epochs * flops
    if rule == "evaluate":
        info = dataset_info(wildcards["dataset"])
        protocol = config["protocols"][wildcards["protocol"]]
        network = config["evaluation"]["networks"][wildcards["network"]]
        size = protocol["image_size"] or config["data"]["imagenet_image_size"]
        ipc = int(wildcards["ipc"])
        epochs = protocol_epochs(protocol, ipc, info.num_classes)
        start = int(protocol["eval_from"] * epochs)
        evals = len(evaluation_epochs(epochs, min(protocol["num_evals"], epochs - start), protocol["eval_from"]))
        kwargs = tuple(sorted((k, v) for k, v in network.items() if k not in ("arch", "protocols")))
        if "encoder" in network:               # frozen encoder + head: forwards only
            flops, passes = encoder_flops(network["encoder"]), 1
            stacked = protocol["loss"] != "feature_mse"   # a timm encoder without dropout, shared in the stack
        else:
            flops, passes = network_flops(network["arch"], size, kwargs), 3
            stacked = stackable_network(network["arch"], size, kwargs, protocol["loss"])
        repeats = config["evaluation"]["repeats"]
        train = epochs * info.num_classes * ipc * passes * flops
        category = "evaluate_stacked" if stacked and config["evaluation"]["stack_repeats"] and repeats > 1 else "evaluate"
        return category, repeats * (train + evals * info.num_classes * EVAL_IMAGES_PER_CLASS * flops)
    return "other", 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dit-tflops", type=float, default=150.0,
                        help="assumed sustained TFLOP/s of DiT-XL/2 sampling/fine-tuning (H100, TF32)")
    parser.add_argument("--eval-tflops", type=float, default=25.0,
                        help="assumed sustained TFLOP/s of evaluation-network training (small batches)")
    parser.add_argument("--stacked-eval-tflops", type=float, default=60.0,
                        help="assumed sustained TFLOP/s of a job training its repeats as one stacked model")
    parser.add_argument("--profiles", nargs="*", default=None, help="file names in config/paper/")
    args = parser.parse_args()
    profiles = [ROOT / "config" / "paper" / name for name in args.profiles] if args.profiles else \
        sorted((ROOT / "config" / "paper").glob("*.yaml"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        roots = {"work": tmp / "work",
                 "subsets": make_fake_imagenet(tmp / "subsets", ["imagenet_woof", "imagenet_nette", "imagenet_idc100",
                                                                 "imagenet_a", "imagenet_b", "imagenet_c",
                                                                 "imagenet_d", "imagenet_e"],
                                               train_per_class=2, val_per_class=1, size=8),
                 "1k": make_fake_imagenet_1k(tmp / "1k"),
                 # 1K beside IDC-100 (linear_probe.yaml): 900 fake wnids + IDC-100's 100 real ones = 1000 classes
                 "both": make_fake_imagenet(make_fake_imagenet_1k(tmp / "both", count=900), ["imagenet_idc100"],
                                            train_per_class=1, val_per_class=1, size=8)}
        print("| Profile | Jobs | GPU jobs | Distillation GPU-h | Fine-tuning GPU-h | Evaluation GPU-h | Total GPU-h |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for profile in profiles:
            raw = yaml.safe_load(profile.read_text())
            config = validate_config({**raw, "imagenet_root": str(roots[root_kind(raw["datasets"])])})
            jobs = dry_run_jobs(profile, roots)
            hours, gpu_jobs = Counter(), 0
            tflops = {"evaluate": args.eval_tflops, "evaluate_stacked": args.stacked_eval_tflops}
            for rule, wildcards in jobs:
                category, flops = job_flops(rule, wildcards, config)
                hours[category] += flops / (tflops.get(category, args.dit_tflops) * 1e12) / 3600
                gpu_jobs += flops > 0
            hours["evaluate"] += hours.pop("evaluate_stacked", 0.0)
            total = hours["distill"] + hours["finetune"] + hours["evaluate"]
            print(f"| `{profile.name}` | {len(jobs)} | {gpu_jobs} | {hours['distill']:.1f} | {hours['finetune']:.1f} "
                  f"| {hours['evaluate']:.1f} | {total:.0f} |")
    print(f"\nAssumed sustained throughput: {args.dit_tflops:g} TFLOP/s for DiT-XL/2, {args.eval_tflops:g} TFLOP/s "
          f"for evaluation training one model at a time, {args.stacked_eval_tflops:g} TFLOP/s for a job's repeats "
          f"trained as one stacked model; DiT-XL/2 forward {dit_flops() / 1e9:.0f} GFLOP per image.")


if __name__ == "__main__":
    main()
