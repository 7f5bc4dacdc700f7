"""Rule ``check_backbone``: the share of the backbone's class-conditional samples the teacher recognises."""
import argparse
from pathlib import Path

import torch

from evaluation.core.artifacts import resolve_device
from evaluation.core.cli import entry_point, json_object, positive_int
from evaluation.metrics.backbone_check import check_backbone


@entry_point
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, type=json_object)
    parser.add_argument("--backbone", required=True, type=Path)
    parser.add_argument("--teacher", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=positive_int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    check_backbone(args.spec, args.backbone, args.teacher, args.out, resolve_device(args.device))


if __name__ == "__main__":
    main()
