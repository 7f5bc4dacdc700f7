"""Rule ``check_backbone``: the share of the backbone's class-conditional samples the teacher recognises."""
import argparse
from pathlib import Path

from evaluation.core.cli import add_job_arguments, apply_job_arguments, entry_point, job_spec
from evaluation.metrics.backbone_check import check_backbone

# the keys check_backbone reads without a default (tests/test_workflow.py holds them to the rule's)
SPEC = job_spec("dataset", "sampler", "samples_per_class", "seed", "min_recognisability")


@entry_point
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, type=SPEC)
    parser.add_argument("--backbone", required=True, type=Path)
    parser.add_argument("--teacher", required=True, type=Path)
    add_job_arguments(parser)
    args = parser.parse_args(argv)
    device = apply_job_arguments(args)
    check_backbone(args.spec, args.backbone, args.teacher, args.out, device)


if __name__ == "__main__":
    main()
