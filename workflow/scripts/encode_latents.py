"""Rule ``encode_latents``: VAE latents of a dataset's real training images."""
import argparse
from pathlib import Path

import torch

from evaluation.core.artifacts import resolve_device
from evaluation.core.cli import entry_point, positive_int
from methods.diffusion.latents import encode_latents


@entry_point
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--backbone", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--image-size", type=positive_int, default=None, help="ImageNet crop side (None: as stored)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=positive_int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    encode_latents(args.data, args.backbone, args.out, args.image_size, resolve_device(args.device))


if __name__ == "__main__":
    main()
