"""Rule ``tables``, second step: every figure of a profile, and ``index.md`` captioning them.

Reads only stored results under ``--results`` (``results/<profile>``); see
``evaluation/report/figures/build.py`` for what it reads and draws.
"""
import argparse
from pathlib import Path

from threadpoolctl import threadpool_limits

from evaluation.core.cli import add_job_arguments, apply_job_arguments, entry_point, non_negative_int, positive_int
from evaluation.report.figures.build import FigureSpec, build_figures


def integers(text: str) -> list[int]:
    """argparse type of a comma-separated list of integers."""
    return [int(v) for v in text.split(",") if v]


def names(text: str) -> list[str]:
    """argparse type of a comma-separated list of names."""
    return [v for v in text.split(",") if v]


@entry_point
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", required=True, type=Path, help="results/<profile>")
    parser.add_argument("--methods", required=True, type=names, help="comma-separated variants, in legend order")
    parser.add_argument("--datasets", required=True, type=names)
    parser.add_argument("--ipcs", required=True, type=integers)
    parser.add_argument("--seeds", required=True, type=integers, help="generation seeds")
    parser.add_argument("--extractor", required=True, help="feature extractor of the t-SNE (metrics.feature_extractor)")
    parser.add_argument("--weights", type=Path, help="the extractor's weight file (metrics.inception_weights or "
                        "metrics.vgg16_weights; default: where its library looks)")
    parser.add_argument("--features", action=argparse.BooleanOptionalAction, default=True,
                        help="draw the t-SNE from real and synthetic features (metrics.enabled); --no-features "
                             "reads no real features")
    parser.add_argument("--teacher-root", type=Path, help="folder of teachers/<dataset> (default RESULTS/teachers)")
    parser.add_argument("--real-split", default="train", help="real split of the stored features (metrics.reference_split)")
    parser.add_argument("--max-real", type=positive_int, default=1000,
                        help="real samples in the t-SNE (seeded subset; metrics.figure_max_real)")
    parser.add_argument("--max-synthetic", type=positive_int, default=200,
                        help="synthetic images per (method, IPC) in the t-SNE (seeded, class-stratified; "
                             "metrics.figure_max_synthetic)")
    parser.add_argument("--perplexity", type=float, default=30.0)
    parser.add_argument("--max-classes", type=positive_int, default=10, help="rows of a sample grid")
    parser.add_argument("--max-samples", type=positive_int, default=10, help="columns of a sample grid")
    parser.add_argument("--tile", type=positive_int, default=128, help="side of a sample-grid tile in pixels")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of every random choice (metrics.seed)")
    add_job_arguments(parser, out_required=False, out_help="output folder (default RESULTS/figures)")
    args = parser.parse_args(argv)
    device = apply_job_arguments(args)
    options = {k: v for k, v in vars(args).items() if k != "threads"}
    spec = FigureSpec(**{**options, "out": args.out or args.results / "figures", "device": device})
    with threadpool_limits(args.threads):
        build_figures(spec, options)


if __name__ == "__main__":
    main()
