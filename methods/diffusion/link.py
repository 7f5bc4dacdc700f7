"""Entry point of the ``load_backbone`` rule: check that a hub or local backbone loads, and record it.

Writes ``backbones/<name>/manifest.json`` naming the source and VAE (``open_backbone`` follows it),
so that a missing or offline backbone fails here, once, before any distillation job.

Usage: ``python workflow/scripts/load_backbone.py --source HUB_ID_DIR_OR_PT [--vae HUB_ID_OR_DIR]
[--numerics official|diffusers] [--num-heads N] --out DIR``
"""
from __future__ import annotations

import time
from pathlib import Path

from evaluation.core.artifacts import atomic_path, manifest, write_manifest

from .backbone import load_backbone


def link_backbone(source: str, vae: str, numerics: str, num_heads: int | None, out: Path) -> None:
    """Check that the backbone at ``source`` (and ``vae``) loads and record where it is under ``out``."""
    started = time.time()
    backbone = load_backbone(source, vae or None, numerics=numerics, num_heads=num_heads)
    record = {"source": source, "vae": vae or None, "numerics": numerics, "num_heads": num_heads}
    with atomic_path(out) as tmp:
        tmp.mkdir()
        write_manifest(tmp, manifest(
            record, seed=None, device="cpu", started=started, **record, num_classes=backbone.num_classes,
            latent_shape=list(backbone.latent_shape)))
