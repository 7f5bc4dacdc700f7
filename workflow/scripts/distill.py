"""Rule ``distill``: one synthetic set of a method variant, or one chunk of its classes (``--classes``)."""
import argparse
from pathlib import Path

import torch

from evaluation.core.artifacts import resolve_device
from evaluation.core.cli import entry_point, json_object, non_negative_int, positive_int
from evaluation.data.datasets import dataset_info
from methods.chunks import parse_classes
from methods.distill import distill


@entry_point
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, type=json_object, help="JSON: method, params, dataset, sampler, data")
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--ipc", required=True, type=positive_int)
    parser.add_argument("--seed", required=True, type=non_negative_int)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--classes", default=None, metavar="START:STOP",
                        help="distil only these dataset labels (half-open), a chunk for rule merge_chunks")
    parser.add_argument("--backbone", type=Path, default=None)
    parser.add_argument("--latents", type=Path, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=positive_int, default=1)
    args = parser.parse_args(argv)
    spec = args.spec
    classes = parse_classes(args.classes, dataset_info(spec["dataset"]).num_classes)
    torch.set_num_threads(args.threads)
    distill(spec, args.data, args.ipc, args.seed, args.out, args.backbone, args.latents, resolve_device(args.device),
            classes)


if __name__ == "__main__":
    main()
