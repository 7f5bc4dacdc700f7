"""Recognisability of the backbone: the share of class-conditional samples that the teacher
labels with their conditioning class (the embedded backbone must reach ``min_recognisability``).

Usage: ``python -m evaluation.metrics.backbone_check --spec JSON --backbone DIR --teacher DIR --out FILE``
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from methods.dit import distill as sample_with_dit
from methods.registry import DistillContext

from evaluation.core.artifacts import manifest, resolve_device, seal, write_json_atomic
from evaluation.core.cli import entry_point, json_object, positive_int
from evaluation.data.datasets import dataset_info, resize_uint8
from evaluation.protocols.train import load_teacher
from evaluation.protocols.training import predict


def recognisability(spec: dict, backbone_dir: Path, teacher_dir: Path, device: str) -> dict:
    info = dataset_info(spec["dataset"])
    teacher, record = load_teacher(teacher_dir, device)   # a bad teacher fails before the sampling
    ctx = DistillContext(dataset=info, data_dir=Path("."), ipc=spec["samples_per_class"],
                         seed=spec["seed"], sampler=spec["sampler"], backbone_dir=backbone_dir,
                         device=device)
    synset = sample_with_dit(ctx)
    images = synset.images
    if images.shape[-1] != record["image_size"]:
        images = resize_uint8(images, record["image_size"])
    predicted = predict(teacher, images, record["mean"], record["std"], 256, device)
    correct = predicted == synset.labels
    per_class = [float(correct[synset.labels == c].float().mean()) for c in range(info.num_classes)]
    return {"dataset": info.name, "recognisability": float(correct.float().mean()),
            "per_class": per_class, "samples": len(correct)}


@entry_point
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, type=json_object)
    parser.add_argument("--backbone", required=True, type=Path)
    parser.add_argument("--teacher", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=positive_int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started, spec, device = time.time(), args.spec, resolve_device(args.device)
    result = recognisability(spec, args.backbone, args.teacher, device)
    print(f"recognisability {result['recognisability']:.3f} over {result['samples']} samples")
    if result["recognisability"] < spec["min_recognisability"]:
        raise SystemExit(f"backbone {args.backbone}: the teacher labels only {result['recognisability']:.1%} "
                         f"of its samples correctly (< backbone.min_recognisability "
                         f"{spec['min_recognisability']:.0%}); train it longer (backbone.train.dit_steps)")
    write_json_atomic(args.out, seal({**result, "manifest": manifest(spec, seed=spec["seed"], device=device,
                                                                       started=started)}))


if __name__ == "__main__":
    main()
