"""Rule ``real_features``: features of one real split, computed once per extractor."""
import argparse
from pathlib import Path

from threadpoolctl import threadpool_limits

from evaluation.core.cli import add_job_arguments, apply_job_arguments, entry_point, job_spec
from evaluation.metrics.features import write_features

# none: write_features reads the spec's weights and image_size with defaults
SPEC = job_spec()


@entry_point
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, type=SPEC, help="JSON config slice of the job")
    parser.add_argument("--data", required=True, type=Path, help="prepared dataset directory")
    parser.add_argument("--split", required=True, choices=["train", "val", "test"])
    parser.add_argument("--extractor", required=True, help="feature extractor (evaluation.metrics.extractors)")
    parser.add_argument("--teacher", type=Path, help="teacher directory (extractor teacher)")
    add_job_arguments(parser)
    args = parser.parse_args(argv)
    device = apply_job_arguments(args)
    with threadpool_limits(args.threads):
        write_features(args.spec, args.data, args.split, args.extractor, args.out, device, args.teacher)


if __name__ == "__main__":
    main()
