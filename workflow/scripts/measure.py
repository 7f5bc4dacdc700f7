"""Rule ``measure``: every metric of one distilled set against cached real features."""
import argparse
from pathlib import Path

from threadpoolctl import threadpool_limits

from evaluation.core.cli import add_job_arguments, apply_job_arguments, entry_point, job_spec
from evaluation.metrics.measure import measure_set

# the keys measure_set reads without a default (tests/test_workflow.py holds them to the rule's)
SPEC = job_spec("dataset", "method", "ipc", "seed", "metrics")


@entry_point
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, type=SPEC,
                        help="JSON config slice: dataset, method, ipc, seed, metrics")
    parser.add_argument("--synset", required=True, type=Path, help="synthetic set directory")
    parser.add_argument("--fid-features", required=True, type=Path, help="real features of metrics.fid_extractor")
    parser.add_argument("--features", required=True, type=Path, help="real features of metrics.feature_extractor")
    parser.add_argument("--teacher", type=Path, help="teacher directory (extractor teacher)")
    add_job_arguments(parser)
    args = parser.parse_args(argv)
    device = apply_job_arguments(args)
    with threadpool_limits(args.threads):
        measure_set(args.spec, args.synset, args.fid_features, args.features, args.teacher, device, args.out)


if __name__ == "__main__":
    main()
