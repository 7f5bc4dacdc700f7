"""Rule ``train_backbone``: the tiny embedded VAE and DiT, trained on a prepared split."""
import argparse
from pathlib import Path

import torch

from evaluation.core.artifacts import resolve_device
from evaluation.core.cli import entry_point, json_object, positive_int
from methods.diffusion.train_tiny import train_tiny_backbone


@entry_point
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, type=json_object,
                        help="JSON: backbone.train config slice, numerics, num_classes")
    parser.add_argument("--data", required=True, type=Path, help="prepared dataset directory")
    parser.add_argument("--out", required=True, type=Path, help="backbone output directory")
    parser.add_argument("--loss-log", required=True, type=Path, help="CSV of the running loss")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=positive_int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    spec = args.spec
    train_tiny_backbone(args.data, spec["train"], spec["num_classes"], args.out, args.loss_log,
                        resolve_device(args.device), spec["numerics"])


if __name__ == "__main__":
    main()
