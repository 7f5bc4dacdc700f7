"""Rule ``class_statistics``: class-mean features of a dataset's real training images through a frozen encoder."""
import argparse
from pathlib import Path

from evaluation.core.cli import add_job_arguments, apply_job_arguments, entry_point, positive_int
from methods.encoder.statistics import write_class_statistics


@entry_point
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data", required=True, type=Path, help="prepared dataset directory")
    parser.add_argument("--encoder", required=True, help="encoder name (methods/encoder/encoders.py)")
    parser.add_argument("--weights", type=Path, default=None, help="the encoder's weight file (config 'encoders')")
    parser.add_argument("--teacher", type=Path, default=None, help="the dataset's teacher (encoder 'teacher')")
    parser.add_argument("--resolution", required=True, type=positive_int, help="synthetic resolution")
    parser.add_argument("--crop", required=True, type=positive_int, help="centre crop the encoder sees")
    add_job_arguments(parser)
    args = parser.parse_args(argv)
    write_class_statistics(args.dataset, args.data, args.encoder, args.resolution, args.crop, args.out,
                           apply_job_arguments(args), args.weights, args.teacher)


if __name__ == "__main__":
    main()
