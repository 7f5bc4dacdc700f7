"""Rule ``encode_latents``: VAE latents of a dataset's real training images."""
import argparse
from pathlib import Path

from evaluation.core.cli import add_job_arguments, apply_job_arguments, entry_point, positive_int
from methods.diffusion.latents import encode_latents


@entry_point
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--backbone", required=True, type=Path)
    parser.add_argument("--image-size", type=positive_int, default=None, help="ImageNet crop side (None: as stored)")
    add_job_arguments(parser)
    args = parser.parse_args(argv)
    encode_latents(args.data, args.backbone, args.out, args.image_size, apply_job_arguments(args))


if __name__ == "__main__":
    main()
