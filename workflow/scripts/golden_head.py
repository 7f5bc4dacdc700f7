"""Rule ``golden_head``: classifier inheritance's golden linear head on a frozen encoder, trained on the full real train split."""
import argparse
from pathlib import Path

from evaluation.core.cli import add_job_arguments, apply_job_arguments, entry_point, job_spec
from evaluation.protocols.train import train_golden_head

# the keys train_golden_head reads without a default (tests/test_workflow.py holds them to the rule's)
SPEC = job_spec("dataset", "encoder", "golden_head", "probe_params", "protocol_params")


@entry_point
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, type=SPEC, help="JSON config slice of the job")
    parser.add_argument("--data", required=True, type=Path, help="prepared dataset directory")
    parser.add_argument("--weights", type=Path, default=None, help="the encoder's weight file (config 'encoders')")
    parser.add_argument("--teacher", type=Path, default=None, help="the dataset's teacher (encoder 'teacher')")
    add_job_arguments(parser)
    args = parser.parse_args(argv)
    train_golden_head(args.spec, args.data, args.out, apply_job_arguments(args),
                      str(args.weights) if args.weights else None, args.teacher)


if __name__ == "__main__":
    main()
