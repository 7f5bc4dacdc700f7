"""Rule ``merge_chunks``: the class chunks of one synthetic set merged into the set."""
import argparse
from pathlib import Path

from evaluation.core.cli import add_job_arguments, entry_point
from methods.merge_chunks import merge_chunks


@entry_point
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", required=True, nargs="+", type=Path, help="chunk sets (rule distill, --classes)")
    parser.add_argument("--dataset", required=True)
    add_job_arguments(parser, device=False)
    args = parser.parse_args(argv)
    merge_chunks(args.chunks, args.dataset, args.out)


if __name__ == "__main__":
    main()
