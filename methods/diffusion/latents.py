"""Entry point of the ``encode_latents`` rule: VAE latents of a dataset's real training images.

One artifact per (dataset, backbone), shared by every method that matches real data in latent
space (DMGD's distribution approximation; MGD³, D⁴M and Minimax later): the posterior mean and
std of each image (scaled by the VAE's scaling factor), so that a method takes either the mean
(MGD³'s ``latent_dist.mean``) or a seeded posterior sample (DMGD's ``latent_dist.sample()``).

Usage: ``python workflow/scripts/encode_latents.py --data DIR --backbone DIR --out FILE [--image-size S]``
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
from tqdm import tqdm

from evaluation.core.artifacts import atomic_path, load_torch_record, manifest, seal, save_torch
from evaluation.data.datasets import load_split, split_labels

from .backbone import Backbone, open_backbone

BATCH = 64


@torch.no_grad()
def encode_split(backbone: Backbone, data_dir: Path, image_size: int | None) -> dict:
    labels = split_labels(data_dir, "train")
    means, stds = [], []
    for start in tqdm(range(0, len(labels), BATCH), desc="encode", mininterval=5):
        indices = list(range(start, min(start + BATCH, len(labels))))
        images, _ = load_split(data_dir, "train", image_size=image_size, indices=indices)
        dist = backbone.vae.encode(images.to(backbone.device).float() / 127.5 - 1.0).latent_dist
        scale = backbone.vae.config.scaling_factor
        means.append((dist.mean * scale).cpu())
        stds.append((dist.std * scale).cpu())
    return {"mean": torch.cat(means), "std": torch.cat(stds), "labels": labels}


def load_latents(path: str | Path) -> dict:
    """The latents artifact (``mean``, ``std``, ``labels``, ``manifest``), checked against its digest."""
    return load_torch_record(path, "encode_latents")


def encode_latents(data_dir: Path, backbone_dir: Path, out: Path, image_size: int | None, device: str) -> None:
    """Encode the real training split of ``data_dir`` with the backbone's VAE into ``out``."""
    started = time.time()
    latents = encode_split(open_backbone(backbone_dir, device), data_dir, image_size)
    latents = seal({**latents, "manifest": manifest({"data": str(data_dir), "backbone": str(backbone_dir),
                                                     "image_size": image_size}, seed=None, device=device,
                                                    started=started)})
    with atomic_path(out) as tmp:
        save_torch(latents, tmp)
