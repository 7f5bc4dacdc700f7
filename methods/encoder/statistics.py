"""SFM's class-statistics artifact (reference ims3_lgm_sfm.md §3.2, §4.2): the class-mean features of every real
training image through the frozen encoder, computed once per (dataset, encoder, synthetic resolution, crop) by rule
``class_statistics`` (workflow/scripts/class_statistics.py) and read by the ``sfm`` distill jobs, as the latents
artifact is by the diffusion methods."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from evaluation.core.artifacts import atomic_path, load_torch_record, manifest, save_torch, seal
from evaluation.core.errors import InputError
from evaluation.data.datasets import dataset_info

from .distill import class_statistics
from .encoders import load_encoder
from .real import ordered_batches

RULE = "class_statistics"
BATCH = 256


def check_crop(crop_resolution: int, encoder_input: int, encoder: str) -> None:
    """The crop the encoder sees must be its input size (a ViT's 224, the teacher's image size)."""
    if crop_resolution != encoder_input:
        raise InputError(f"crop_resolution {crop_resolution} but encoder '{encoder}' takes {encoder_input} px images; "
                         f"set the method's params.crop_resolution to {encoder_input}")


def write_class_statistics(dataset: str, data_dir: Path, encoder: str, resolution: int, crop: int, out: Path,
                           device: str, weights: Path | None = None, teacher_dir: Path | None = None) -> None:
    """Write ``out``: ``means`` (C, D) float64 class-mean features, ``counts`` (C,), and the manifest."""
    started = time.time()
    frozen = load_encoder(encoder, weights=weights, teacher=teacher_dir, device=device)
    check_crop(crop, frozen.input_size, encoder)
    means, counts = class_statistics(frozen, ordered_batches(data_dir, resolution, BATCH),
                                     dataset_info(dataset).num_classes, crop, device)
    config = {"dataset": dataset, "encoder": encoder, "weights": frozen.weights, "synthetic_resolution": resolution,
              "crop_resolution": crop}
    record = seal({"means": means, "counts": counts,
                   "manifest": manifest(config, seed=None, device=device, started=started)})
    with atomic_path(out) as tmp:
        save_torch(record, tmp)


def load_class_statistics(path: Path, encoder: str, resolution: int, crop: int) -> torch.Tensor:
    """The class-mean features of the artifact at ``path``, refused if it was made for another encoder or size."""
    record = load_torch_record(path, RULE)
    config = record["manifest"]["config"]
    made = (config["encoder"], config["synthetic_resolution"], config["crop_resolution"])
    if made != (encoder, resolution, crop):
        raise InputError(f"{path}: class statistics of encoder/resolution/crop {made}, the method needs "
                         f"{(encoder, resolution, crop)}; pass the statistics of its own params")
    return record["means"]
