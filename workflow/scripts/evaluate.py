"""Rule ``evaluate``: train the repeats of one evaluation network on a synthetic set, test them on real data."""
import argparse
from pathlib import Path

from evaluation.core.cli import add_job_arguments, apply_job_arguments, entry_point, job_spec
from evaluation.protocols.train import evaluate_synset

# the keys evaluate_synset reads without a default (tests/test_workflow.py holds them to the rule's)
SPEC = job_spec("dataset", "method", "ipc", "seed", "protocol", "repeats", "stack_repeats", "stacked_forward", "network",
                "network_name", "protocol_params")


@entry_point
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, type=SPEC, help="JSON config slice of the job")
    parser.add_argument("--synset", required=True, type=Path, help="synthetic set directory")
    parser.add_argument("--data", required=True, type=Path, help="prepared dataset directory")
    parser.add_argument("--teacher", type=Path, help="teacher directory (soft-label protocols)")
    parser.add_argument("--golden", type=Path, help="golden head directory (classifier inheritance)")
    add_job_arguments(parser, out_nargs="+", out_help="one record per repeat of the spec, in its order")
    args = parser.parse_args(argv)
    evaluate_synset(args.spec, args.synset, args.data, args.out, apply_job_arguments(args), args.teacher, args.golden)


if __name__ == "__main__":
    main()
