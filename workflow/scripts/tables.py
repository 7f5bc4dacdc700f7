"""Rule ``tables``: the profile's tables from its stored run, metric and backbone-check records.

The rule then runs ``figures.py`` (same rule, second output); see ``evaluation/report/build.py``
for what each table holds.
"""
import argparse
from pathlib import Path

from evaluation.core.cli import add_job_arguments, entry_point
from evaluation.report.build import build_tables
from evaluation.report.reported import REFERENCE_FILE


@entry_point
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="*", default=[], type=Path,
                        help="evaluation run records (none when the profile evaluates nothing)")
    parser.add_argument("--backbone-checks", nargs="*", default=[], type=Path)
    parser.add_argument("--metrics", nargs="*", default=[], type=Path,
                        help="metrics records of the distilled sets (none: no metric tables)")
    add_job_arguments(parser, device=False)
    parser.add_argument("--method-order", default=None, help="comma-separated method variant names")
    parser.add_argument("--note", action="append", default=[], help="a footnote of every table (repeatable)")
    parser.add_argument("--benchmarks", type=Path, default=None,
                        help="the profile's benchmarks folder (results/<profile>/benchmarks): writes costs.{md,csv}")
    parser.add_argument("--method-map", nargs="*", action="extend", default=[], metavar="VARIANT=METHOD",
                        help="compare a variant with the reference rows of METHOD (a registry name or an "
                             "ablation variant of config/paper/ablations.yaml), e.g. random-first-k=random")
    parser.add_argument("--reference", type=Path, default=REFERENCE_FILE,
                        help="reference CSV (default: the packaged evaluation/report/reported_results.csv)")
    args = parser.parse_args(argv)
    order = args.method_order.split(",") if args.method_order else None
    build_tables(args.runs, args.backbone_checks, args.out, order, args.note, args.metrics, args.benchmarks,
                 args.method_map, args.reference)


if __name__ == "__main__":
    main()
