"""Rule ``prepare_data``: one dataset's splits as image folders, with their manifest."""
import argparse
from pathlib import Path

from evaluation.core.cli import entry_point, json_object
from evaluation.data.prepare import prepare_data


@entry_point
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--spec", required=True, type=json_object, help="JSON of the config's data block")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    prepare_data(args.dataset, args.spec, args.out)


if __name__ == "__main__":
    main()
