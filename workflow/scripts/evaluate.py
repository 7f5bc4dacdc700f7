"""Rule ``evaluate``: train one evaluation network (one repeat) on a synthetic set, test it on real data."""
import argparse
from pathlib import Path

import torch

from evaluation.core.artifacts import resolve_device
from evaluation.core.cli import entry_point, json_object, positive_int
from evaluation.protocols.train import evaluate_synset


@entry_point
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, type=json_object, help="JSON config slice of the job")
    parser.add_argument("--synset", required=True, type=Path, help="synthetic set directory")
    parser.add_argument("--data", required=True, type=Path, help="prepared dataset directory")
    parser.add_argument("--teacher", type=Path, help="teacher directory (soft-label protocols)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=positive_int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    evaluate_synset(args.spec, args.synset, args.data, args.out, resolve_device(args.device), args.teacher)


if __name__ == "__main__":
    main()
