"""Rule ``train_teacher``: the dataset's teacher network (trained, or torchvision's restricted to its classes)."""
import argparse
from pathlib import Path

import torch

from evaluation.core.artifacts import resolve_device
from evaluation.core.cli import entry_point, json_object, positive_int
from evaluation.protocols.train import make_teacher


@entry_point
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, type=json_object, help="JSON config slice of the job")
    parser.add_argument("--data", required=True, type=Path, help="prepared dataset directory")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=positive_int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    make_teacher(args.spec, args.data, args.out, resolve_device(args.device))


if __name__ == "__main__":
    main()
