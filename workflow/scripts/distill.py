"""Rule ``distill``: one synthetic set of a method variant, or one chunk of its classes (``--classes``)."""
import argparse
from pathlib import Path

from evaluation.core.cli import (add_job_arguments, apply_job_arguments, entry_point, job_spec, non_negative_int,
                                 positive_int)
from evaluation.data.datasets import dataset_info
from methods.chunks import parse_classes
from methods.distill import distill

# the keys distill reads without a default (tests/test_workflow.py holds them to the rule's)
SPEC = job_spec("method", "dataset")


@entry_point
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, type=SPEC, help="JSON: method, params, dataset, sampler, data, encoder_weights")
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--ipc", required=True, type=positive_int)
    parser.add_argument("--seed", required=True, type=non_negative_int)
    parser.add_argument("--classes", default=None, metavar="START:STOP",
                        help="distil only these dataset labels (half-open), a chunk for rule merge_chunks")
    parser.add_argument("--backbone", type=Path, default=None)
    parser.add_argument("--latents", type=Path, default=None)
    parser.add_argument("--teacher", type=Path, default=None, help="the dataset's teacher (encoder 'teacher')")
    parser.add_argument("--statistics", type=Path, default=None, help="class statistics of the method's encoder")
    add_job_arguments(parser)
    args = parser.parse_args(argv)
    spec = args.spec
    classes = parse_classes(args.classes, dataset_info(spec["dataset"]).num_classes)
    distill(spec, args.data, args.ipc, args.seed, args.out, args.backbone, args.latents, apply_job_arguments(args),
            classes, args.teacher, args.statistics)


if __name__ == "__main__":
    main()
