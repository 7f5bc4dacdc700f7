"""Entry point of the ``tables`` rule: gather per-run and per-set results into the profile's tables.

Reads only stored result files (never logs, never recomputes): ``eval/**.json`` become
``tables/runs.csv`` (one row per run), the accuracy tables (``accuracy``: best test top-1, the
papers' number; ``accuracy_last``: last evaluation; ``accuracy_val``: at the epoch of best
validation top-1) and ``model_selection.md`` (the three side by side); ``metrics/**.json`` become
the generation-quality and distribution tables (``generation``, ``distribution``); backbone checks
become ``backbone.md``. Beside them: ``variance.csv`` (each cell's variance split into generation
seeds and evaluation repeats, :mod:`evaluation.report.variance`), the reported-vs-reproduced tables
(``reported.md`` and one ``reported_<family>.{md,csv}`` per family of the reference the results
have, :mod:`evaluation.report.reported`) and, with ``--benchmarks``, ``costs.{md,csv}``
(:mod:`evaluation.report.costs`).

Usage: ``python workflow/scripts/tables.py --runs FILE... [--backbone-checks FILE...]
[--metrics FILE...] --out DIR [--method-order a,b,...] [--note TEXT]... [--benchmarks DIR]
[--method-map VARIANT=METHOD...] [--reference CSV]``
"""
from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

from evaluation.core.artifacts import atomic_path, manifest, read_json_object, write_manifest, write_text_atomic
from evaluation.core.errors import InputError
from .costs import write_costs
from .quality_tables import load_metrics, write_quality_tables
from .reported import (
    REFERENCE_FILE,
    load_reference,
    parse_method_map,
    write_reported_tables,
)
from .tables import (
    CODE_VERSION,
    check_range,
    load_runs,
    model_selection_markdown,
    write_accuracy_tables,
)
from .variance import write_variance

RUN_COLUMNS = ["dataset", "method", "ipc", "seed", "protocol", "network", "repeat",
               "best_top1", "last_top1", "best_epoch", "epochs",
               "val_selected_top1", "val_selected_epoch", "selection", CODE_VERSION]
ACCURACY_TABLES = {"accuracy": "best_top1", "accuracy_last": "last_top1", "accuracy_val": "val_selected_top1"}
SELECTION_NOTES = {"final": "the final model tested once (best = last)",
                   "final_ema": "the final EMA model tested once (best = last)"}
# the settings named after the epochs: (key, text, whether its value is shown)
LATE_SETTINGS = (("temperature", "teacher soft labels at temperature {}", lambda value: value is not None),
                 ("ema_decay", "EMA decay {}", lambda value: value is not None),
                 ("cutmix_prob", "CutMix p {}", bool), ("dsa", "DSA {}", bool))


def describe_protocol(name: str, params: dict, selection: str | None) -> str:
    """The settings of one protocol that a reader needs, from whichever keys its record has, and
    the convention of its reported number."""
    parts = []
    if params.get("base") not in (None, name):
        parts.append(f"variant of {params['base']}")
    optimizer = params.get("optimizer")
    if "lr" in params:
        overrides = ", ".join(f"{arch} {lr}" for arch, lr in (params.get("lr_by_arch") or {}).items())
        by_arch = f" ({overrides})" if overrides else ""
        scaled_lr = f" x min(batch, N) / {params['lr_reference_batch']}" if params.get("lr_reference_batch") else ""
        parts.append(f"{optimizer + ' ' if optimizer else ''}lr {params['lr']}{scaled_lr}{by_arch}")
    elif optimizer:
        parts.append(optimizer)
    if params.get("schedule"):
        parts.append(f"{params['schedule']} schedule")
    if "batch_size" in params:
        parts.append(f"batch {params['batch_size']}")
    scale = params.get("epoch_scale")
    scaled = f" x {scale}" if scale not in (None, 1, 1.0) else ""
    if params.get("epochs", "ipc_rule") == "ipc_rule" and ("epochs" in params or scale is not None):
        parts.append(f"epochs = reference ipc_epoch{scaled}")
    elif "epochs" in params:
        parts.append(f"{params['epochs']}{scaled} epochs")
    parts += [text.format(params[key]) for key, text, shown in LATE_SETTINGS if shown(params.get(key))]
    settings = ", ".join(parts) if parts else "settings not recorded"
    return f"{settings}; reported number: {_selection_note(selection, params)}"


def _selection_note(selection: str | None, params: dict) -> str:
    if selection is None:
        return "convention not recorded"
    if selection != "best":
        return SELECTION_NOTES.get(selection, f"'{selection}'")
    evaluations = f" over {params['num_evals']} evaluations" if "num_evals" in params else " over training"
    window = params.get("eval_from") or 0
    return f"best test top-1{evaluations}" + (f" in the last {1 - window:.0%} of epochs" if window else "")


def protocol_footnotes(paths: Sequence[Path]) -> list[str]:
    """One line per protocol naming the settings its runs used (read from their manifests); runs
    of one protocol with different settings get one line per setting, naming its IPCs."""
    return [note for notes in protocol_notes(paths).values() for note in notes]


def protocol_notes(paths: Sequence[Path]) -> dict[str, list[str]]:
    """The lines of :func:`protocol_footnotes` by protocol, in protocol order."""
    variants: dict[str, dict[str, set[int]]] = {}
    for path in paths:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
        params = ((record.get("manifest") or {}).get("config") or {}).get("protocol_params") or {}
        text = describe_protocol(record["protocol"], params, record.get("selection"))
        variants.setdefault(record["protocol"], {}).setdefault(text, set()).add(int(record["ipc"]))
    notes: dict[str, list[str]] = {}
    for protocol in sorted(variants):
        texts = sorted(variants[protocol].items(), key=lambda item: min(item[1]))
        for text, ipcs in texts:
            scope = f" (IPC {', '.join(map(str, sorted(ipcs)))})" if len(texts) > 1 else ""
            notes.setdefault(protocol, []).append(f"{protocol}{scope}: {text}. Test split of the real data; "
                                                  "n = generation seeds x evaluation repeats.")
    return notes


def backbone_table(paths: Sequence[Path]) -> str:
    lines = ["# Backbone recognisability", "",
             ("Share of class-conditional samples (plain DiT sampling) that the teacher network labels "
              "with their conditioning class."), "",
             "| Dataset | Samples | Recognisability | Worst class |", "|---|---|---|---|"]
    for path in sorted(paths):
        record = read_backbone_check(Path(path))
        worst = min(range(len(record["per_class"])), key=lambda c: record["per_class"][c])
        lines.append(f"| {record['dataset']} | {record['samples']} | {record['recognisability']:.1%} "
                     f"| {worst} ({record['per_class'][worst]:.0%}) |")
    return "\n".join(lines) + "\n"


def read_backbone_check(path: Path) -> dict:
    """A backbone check record, its shares of recognised samples checked to lie in [0, 1]."""
    record = read_json_object(path, "backbone check", "backbone checks", rule="check_backbone")
    fix = "delete the file and run snakemake again to re-make it (rule check_backbone)"
    missing = [key for key in ("dataset", "samples", "recognisability", "per_class") if key not in record]
    if missing:
        raise InputError(f"{path}: missing required key '{missing[0]}'; {fix}")
    if not isinstance(record["per_class"], list) or not record["per_class"]:
        raise InputError(f"{path}: per_class is {record['per_class']!r}, not a list of shares; {fix}")
    check_range(path, "recognisability", record["recognisability"], 0.0, 1.0, "check_backbone")
    for index, share in enumerate(record["per_class"]):
        check_range(path, f"per_class[{index}]", share, 0.0, 1.0, "check_backbone")
    return record


def write_report(runs: Sequence[Path], backbone_checks: Sequence[Path], out_dir: Path,
                 method_order: Sequence[str] | None, method_notes: Sequence[str] = (),
                 metrics: Sequence[Path] = (), benchmarks: Path | None = None,
                 method_map: dict[str, str] | None = None, reference: Path = REFERENCE_FILE) -> None:
    """Write every table of the report into ``out_dir``: the metric tables only with ``metrics``,
    the cost tables only with ``benchmarks``."""
    out_dir = Path(out_dir)
    frame = load_runs(runs)   # every input is read before the first table is written
    metric_frame = load_metrics(metrics) if metrics else None
    write_text_atomic(out_dir / "runs.csv",
                      frame.reindex(columns=RUN_COLUMNS).to_csv(index=False, lineterminator="\n"))
    by_protocol = protocol_notes(runs)
    notes = [note for lines in by_protocol.values() for note in lines] + list(method_notes)
    if len(frame):   # a profile that only measures its sets (evaluation.enabled false) has no runs
        for stem, metric in ACCURACY_TABLES.items():
            write_accuracy_tables(frame, out_dir, metric, stem, method_order, notes)
        write_text_atomic(out_dir / "model_selection.md", model_selection_markdown(frame, method_order, notes))
        write_variance(frame, out_dir)
    if backbone_checks:
        write_text_atomic(out_dir / "backbone.md", backbone_table(backbone_checks))
    if metric_frame is not None:
        write_quality_tables(metric_frame, out_dir, method_order, method_notes)
    write_reported_tables(frame, out_dir, metric_frame, method_map, method_order, by_protocol, method_notes,
                          reference)
    if benchmarks is not None:
        write_costs(benchmarks, out_dir, method_order, load_reference(reference))


def build_tables(runs: Sequence[Path], backbone_checks: Sequence[Path], out: Path, method_order: Sequence[str] | None,
                 notes: Sequence[str], metrics: Sequence[Path], benchmarks: Path | None, method_map: Sequence[str],
                 reference: Path = REFERENCE_FILE) -> None:
    """The tables folder ``out`` (:func:`write_report`) with its manifest, appearing complete or not at all."""
    started = time.time()
    with atomic_path(out) as tmp:
        tmp.mkdir()
        write_report(runs, backbone_checks, tmp, method_order, notes, metrics, benchmarks,
                     parse_method_map(method_map), reference)
        settings = {"method_order": method_order, "notes": list(notes), "method_map": list(method_map)}
        write_manifest(tmp, manifest(settings, seed=None, device="cpu", started=started))
