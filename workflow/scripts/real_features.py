"""Rule ``real_features``: features of one real split, computed once per extractor."""
import argparse
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits

from evaluation.core.artifacts import resolve_device
from evaluation.core.cli import entry_point, json_object, positive_int
from evaluation.metrics.features import write_features


@entry_point
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, type=json_object, help="JSON config slice of the job")
    parser.add_argument("--data", required=True, type=Path, help="prepared dataset directory")
    parser.add_argument("--split", required=True, choices=["train", "val", "test"])
    parser.add_argument("--extractor", required=True, help="feature extractor (evaluation.metrics.extractors)")
    parser.add_argument("--teacher", type=Path, help="teacher directory (extractor teacher)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=positive_int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with threadpool_limits(args.threads):
        write_features(args.spec, args.data, args.split, args.extractor, args.out,
                       resolve_device(args.device), args.teacher)


if __name__ == "__main__":
    main()
