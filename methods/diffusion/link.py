"""Entry point of the ``load_backbone`` rule: check that a hub or local backbone loads, and record it.

Writes ``backbones/<name>/manifest.json`` naming the source and VAE (``open_backbone`` follows it),
so that a missing or offline backbone fails here, once, before any distillation job.

Usage: ``python -m methods.diffusion.link --source HUB_ID_DIR_OR_PT [--vae HUB_ID_OR_DIR]
[--numerics official|diffusers] [--num-heads N] --out DIR``
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from evaluation.core.artifacts import atomic_path, manifest, write_manifest
from evaluation.core.cli import entry_point, positive_int

from .backbone import load_backbone
from .official_dit import NUMERICS


@entry_point
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True)
    parser.add_argument("--vae", default="")
    parser.add_argument("--numerics", choices=NUMERICS, default="official")
    parser.add_argument("--num-heads", type=positive_int, default=None,
                        help="attention heads of a non-standard official checkpoint")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    started = time.time()
    backbone = load_backbone(args.source, args.vae or None, numerics=args.numerics, num_heads=args.num_heads)
    source = {"source": args.source, "vae": args.vae or None, "numerics": args.numerics, "num_heads": args.num_heads}
    with atomic_path(args.out) as tmp:
        tmp.mkdir()
        write_manifest(tmp, manifest(
            source, seed=None, device="cpu", started=started, **source, num_classes=backbone.num_classes,
            latent_shape=list(backbone.latent_shape)))


if __name__ == "__main__":
    main()
