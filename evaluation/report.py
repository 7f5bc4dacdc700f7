"""Entry point of the ``tables`` rule: gather per-run results into the profile's tables.

Reads only stored result files (never logs, never recomputes): ``eval/**.json`` become
``tables/runs.csv`` (one row per run) and the accuracy tables (best top-1, the papers' number, and
last-epoch top-1 beside it); backbone checks become ``tables/backbone.md``.

Usage: ``python -m evaluation.report --runs FILE... [--backbone-checks FILE...] --out DIR
[--method-order a,b,...]``
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


from .artifacts import write_text_atomic
from .tables import load_runs, write_accuracy_tables

RUN_COLUMNS = ["dataset", "method", "ipc", "seed", "protocol", "network", "repeat",
               "best_top1", "last_top1", "best_epoch", "epochs"]


def protocol_footnotes(paths: list[Path]) -> list[str]:
    """One line per protocol naming the settings its runs used (read from their manifests)."""
    notes = {}
    for path in paths:
        record = json.loads(Path(path).read_text())
        params = record["manifest"]["config"]["protocol_params"]
        notes[record["protocol"]] = (
            f"{record['protocol']}: {params['optimizer']} lr {params['lr']}, batch {params['batch_size']}, "
            f"epochs = reference ipc_epoch x {params['epoch_scale']}, CutMix p {params['cutmix_prob']}, "
            f"test split of the real data; n = generation seeds x evaluation repeats.")
    return [notes[k] for k in sorted(notes)]


def backbone_table(paths: list[Path]) -> str:
    lines = ["# Backbone recognisability", "",
             "Share of class-conditional samples (plain DiT sampling) that the teacher network labels "
             "with their conditioning class.", "",
             "| Dataset | Samples | Recognisability | Worst class |", "|---|---|---|---|"]
    for path in sorted(paths):
        record = json.loads(Path(path).read_text())
        worst = min(range(len(record["per_class"])), key=lambda c: record["per_class"][c])
        lines.append(f"| {record['dataset']} | {record['samples']} | {record['recognisability']:.1%} "
                     f"| {worst} ({record['per_class'][worst]:.0%}) |")
    return "\n".join(lines) + "\n"


def write_report(runs: list[Path], backbone_checks: list[Path], out_dir: Path,
                 method_order: list[str] | None, method_notes: list[str] = ()) -> None:
    frame = load_runs(runs)
    write_text_atomic(out_dir / "runs.csv", frame[RUN_COLUMNS].to_csv(index=False, lineterminator="\n"))
    notes = protocol_footnotes(runs) + list(method_notes)
    write_accuracy_tables(frame, out_dir, "best_top1", "accuracy", method_order, notes)
    write_accuracy_tables(frame, out_dir, "last_top1", "accuracy_last", method_order, notes)
    if backbone_checks:
        write_text_atomic(out_dir / "backbone.md", backbone_table(backbone_checks))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", required=True, type=Path)
    parser.add_argument("--backbone-checks", nargs="*", default=[], type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--method-order", default=None, help="comma-separated method variant names")
    parser.add_argument("--note", action="append", default=[], help="a footnote of every table (repeatable)")
    args = parser.parse_args(argv)
    order = args.method_order.split(",") if args.method_order else None
    write_report(args.runs, args.backbone_checks, args.out, order, args.note)


if __name__ == "__main__":
    main()
