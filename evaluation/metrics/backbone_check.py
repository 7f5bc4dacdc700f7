"""Recognisability of the backbone: the share of class-conditional samples that the teacher
labels with their conditioning class (the embedded backbone must reach ``min_recognisability``).

Usage: ``python workflow/scripts/check_backbone.py --spec JSON --backbone DIR --teacher DIR --out FILE``
"""
from __future__ import annotations

import time
from pathlib import Path


from methods.dit import distill as sample_with_dit
from methods.registry import DistillContext

from evaluation.core.artifacts import manifest, seal, write_json_atomic
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


def check_backbone(spec: dict, backbone_dir: Path, teacher_dir: Path, out: Path, device: str) -> None:
    """Write the backbone's recognisability to ``out``; refuse (exit) one below ``min_recognisability``."""
    started = time.time()
    result = recognisability(spec, backbone_dir, teacher_dir, device)
    print(f"recognisability {result['recognisability']:.3f} over {result['samples']} samples")
    if result["recognisability"] < spec["min_recognisability"]:
        raise SystemExit(f"backbone {backbone_dir}: the teacher labels only {result['recognisability']:.1%} "
                         f"of its samples correctly (< backbone.min_recognisability "
                         f"{spec['min_recognisability']:.0%}); train it longer (backbone.train.dit_steps)")
    write_json_atomic(out, seal({**result, "manifest": manifest(spec, seed=spec["seed"], device=device,
                                                                  started=started)}))
