"""Rule ``train_teacher``: the dataset's teacher network (trained, or torchvision's restricted to its classes)."""
import argparse
from pathlib import Path

from evaluation.core.cli import add_job_arguments, apply_job_arguments, entry_point, job_spec
from evaluation.protocols.train import make_teacher

# the keys make_teacher reads without a default (tests/test_workflow.py holds them to the rule's)
SPEC = job_spec("dataset", "protocol_params", "teacher.source", "teacher.network")


@entry_point
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, type=SPEC, help="JSON config slice of the job")
    parser.add_argument("--data", required=True, type=Path, help="prepared dataset directory")
    add_job_arguments(parser)
    args = parser.parse_args(argv)
    make_teacher(args.spec, args.data, args.out, apply_job_arguments(args))


if __name__ == "__main__":
    main()
