"""Rule ``measure``: every metric of one distilled set against cached real features."""
import argparse
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits

from evaluation.core.artifacts import resolve_device
from evaluation.core.cli import entry_point, json_object, positive_int
from evaluation.metrics.measure import measure_set


@entry_point
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, type=json_object,
                        help="JSON config slice: dataset, method, ipc, seed, metrics")
    parser.add_argument("--synset", required=True, type=Path, help="synthetic set directory")
    parser.add_argument("--fid-features", required=True, type=Path, help="real features of metrics.fid_extractor")
    parser.add_argument("--features", required=True, type=Path, help="real features of metrics.feature_extractor")
    parser.add_argument("--teacher", type=Path, help="teacher directory (extractor teacher)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=positive_int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with threadpool_limits(args.threads):
        measure_set(args.spec, args.synset, args.fid_features, args.features, args.teacher,
                    resolve_device(args.device), args.out)


if __name__ == "__main__":
    main()
