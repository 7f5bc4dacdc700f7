"""Rule ``train_backbone``: the tiny embedded VAE and DiT, trained on a prepared split."""
import argparse
from pathlib import Path

from evaluation.core.cli import add_job_arguments, apply_job_arguments, entry_point, job_spec
from methods.diffusion.train_tiny import train_tiny_backbone

# the keys train_tiny_backbone reads without a default (tests/test_workflow.py holds them to the rule's)
SPEC = job_spec("train", "numerics", "num_classes")


@entry_point
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, type=SPEC,
                        help="JSON: backbone.train config slice, numerics, num_classes")
    parser.add_argument("--data", required=True, type=Path, help="prepared dataset directory")
    parser.add_argument("--loss-log", required=True, type=Path, help="CSV of the running loss")
    add_job_arguments(parser, out_help="backbone output directory")
    args = parser.parse_args(argv)
    spec = args.spec
    train_tiny_backbone(args.data, spec["train"], spec["num_classes"], args.out, args.loss_log,
                        apply_job_arguments(args), spec["numerics"])


if __name__ == "__main__":
    main()
