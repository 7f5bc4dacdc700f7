"""Rule ``prepare_data``: one dataset's splits as image folders, with their manifest."""
import argparse

from evaluation.core.cli import add_job_arguments, entry_point, job_spec
from evaluation.data.prepare import prepare_data

# the key every dataset's preparation reads (evaluation.data.datasets.prepare; the others depend on the
# dataset); tests/test_workflow.py holds it to the rule's spec
SPEC = job_spec("split_seed")


@entry_point
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--spec", required=True, type=SPEC, help="JSON of the config's data block")
    add_job_arguments(parser, device=False)
    args = parser.parse_args(argv)
    prepare_data(args.dataset, args.spec, args.out)


if __name__ == "__main__":
    main()
