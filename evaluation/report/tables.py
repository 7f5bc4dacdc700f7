"""Accuracy tables from per-run result files, laid out like Table 1 of the DMGD supplementary.

One block per (dataset, protocol, network); in each block, methods are rows and IPC values are
columns, and every cell is the mean ± sample std (ddof=1) of the chosen metric over all runs of
that cell (seeds × repeats). In each IPC column the best mean is bold and the second-best is
underlined; ranks are dense and compare means at the displayed precision (one decimal), so tied
methods share a rank and the next distinct mean gets the next rank. The same table renders as
Markdown (for reading), LaTeX (for the paper) and long-format CSV (for machines).

Three readings of each run are tabulated: best test top-1 over training (the papers' number, which
selects the epoch on the test set), last-epoch test top-1, and test top-1 at the epoch of best
validation top-1 (the only honest estimate). A null reading (a protocol without validation
evaluations) makes its cell missing, never a mean over the runs that have it; ``model_selection``
puts the three side by side.

Mixed provenance is marked, not hidden: a cell whose runs differ in ``manifest.code_version`` (compared
as strings, so ``abc`` and ``abc-dirty`` differ) or in ``manifest.config`` (the job's config slice,
seed and repeat excluded) gets a ``†`` after its number and a footnote naming the cell and the
differing values with their run counts. Stored results of two commits in one cell are common (a
re-run of some seeds only), so the table still shows the pooled number; the mark says it is pooled.
Records without a manifest count as one more value, ``not recorded``.
"""
from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from evaluation.core.artifacts import read_json_object
from evaluation.core.errors import InputError
from .render import (MISSING, MIXED_MARK, cell_table, cell_text, cells, cells_csv, count_range, dense_ranks,
                     latex_escape, markdown_table, mean_std, notes, pipe_escape, pivot_blocks, pooled, summarise,
                     table_text, write_texts)

REQUIRED_KEYS: dict[str, type] = {
    "dataset": str, "method": str, "ipc": int, "seed": int, "protocol": str, "network": str,
    "repeat": int, "best_top1": float, "last_top1": float,
}
# Nullable run fields: absent or null means "not measured" (older records, no validation split).
OPTIONAL_KEYS: dict[str, type] = {"val_selected_top1": float, "val_selected_epoch": int, "selection": str}
# Top-1 accuracies are percentages: a run record's value outside [0, 100] (or NaN) is damaged or edited.
ACCURACY_KEYS = ("best_top1", "last_top1", "val_selected_top1")
CURVE_KEYS = ("top1", "val_top1")   # of each entry of a record's ``curve``
ROUNDING = 1e-6   # slack on a bound for a value that a computation rounded past it
RUN_SORT_KEYS = ["dataset", "protocol", "network", "method", "ipc", "seed", "repeat"]
BLOCK_KEYS = ["dataset", "protocol", "network"]
METRIC_DESCRIPTIONS = {
    "best_top1": "best over training (the papers' convention)",
    "last_top1": "at the last epoch",
    "val_selected_top1": "at the epoch of best validation top-1 (the honest estimate)",
}
CSV_COLUMNS = ["dataset", "protocol", "network", "method", "ipc", "mean", "std", "n", "rank",
               "mixed_provenance"]
DECIMALS = 1
# Columns that load_runs derives from a record's manifest (absent from frames built by hand).
CODE_VERSION = "manifest_code_version"
CONFIG = "manifest_config"  # canonical JSON of manifest.config without the keys below
CONFIG_EXCLUDED = ("seed", "repeat")  # vary within a cell by design
PACKAGES = "manifest_packages"  # canonical JSON of manifest.packages (python and package versions)
NETWORK_ARCH, NETWORK_DEPTH, PROTOCOL_BASE = "network_arch", "network_depth", "protocol_base"
NOT_RECORDED = "not recorded"


def load_runs(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Read per-run JSON result files into one row per file, sorted by dataset, protocol,
    network, method, ipc, seed and repeat (ties by file path).

    Columns are the required keys followed by any other scalar top-level keys, alphabetically;
    the optional keys are always present (null where a record lacks them): ``val_selected_top1``
    as float (NaN), ``val_selected_epoch`` as nullable integer. From the manifest come
    ``manifest_code_version``, ``manifest_config`` (canonical JSON of ``manifest.config`` without
    seed and repeat), ``manifest_packages``, ``network_arch``/``network_depth``
    (``manifest.config.network``) and ``protocol_base`` (``manifest.config.protocol_params.base``);
    None where not recorded.
    """
    records = [_read_run(Path(path)) for path in sorted(paths, key=str)]
    others = {key for record in records for key in record} | set(OPTIONAL_KEYS)
    frame = pd.DataFrame.from_records(records, columns=list(REQUIRED_KEYS) + sorted(others - set(REQUIRED_KEYS)))
    for key, kind in OPTIONAL_KEYS.items():
        if kind is not str:
            frame[key] = pd.to_numeric(frame[key]).astype(float if kind is float else "Int64")
    return frame.sort_values(RUN_SORT_KEYS, kind="mergesort").reset_index(drop=True)


def _read_run(path: Path) -> dict:
    """One run's scalar top-level fields, with the required keys checked and typed, every top-1 (its
    ``curve`` entries' too) checked to lie in [0, 100] percent, and its manifest's fields."""
    data = read_json_object(path, "training", "run results", rule="evaluate")
    record = {key: value for key, value in data.items()
              if value is None or isinstance(value, (str, int, float, bool))}
    record.update(required_fields(path, data, REQUIRED_KEYS, "add it to the run's result JSON",
                                  "fix the value in the run's result JSON"))
    for key, kind in OPTIONAL_KEYS.items():
        value = data.get(key)
        allowed = (int, float) if kind is float else (kind,)
        if value is not None and (isinstance(value, bool) or not isinstance(value, allowed)):
            raise InputError(f"{path}: key '{key}' is {value!r}, not {kind.__name__} or null; "
                             "fix the value in the run's result JSON")
        record[key] = None if value is None else kind(value)
    for key in ACCURACY_KEYS:
        check_range(path, key, record.get(key), 0.0, 100.0, "evaluate")
    curve = data.get("curve")
    for index, entry in enumerate(curve if isinstance(curve, list) else ()):
        for key in CURVE_KEYS:
            check_range(path, f"curve[{index}].{key}", entry.get(key) if isinstance(entry, dict) else None,
                        0.0, 100.0, "evaluate")
    return record | _manifest_fields(data.get("manifest"))


def required_fields(path: Path, data: dict, kinds: dict[str, type], add: str, fix: str) -> dict:
    """``data``'s ``kinds`` keys, each converted to its type (a ``dict`` key checked to be an object),
    refused in one line naming the key and ``add`` (missing) or ``fix`` (not of its type)."""
    record = {}
    for key, kind in kinds.items():
        if key not in data:
            raise InputError(f"{path}: missing required key '{key}'; {add}")
        try:
            if kind is dict and not isinstance(data[key], dict):
                raise TypeError
            record[key] = data[key] if kind is dict else kind(data[key])
        except (TypeError, ValueError):
            noun = "an object" if kind is dict else kind.__name__
            raise InputError(f"{path}: key '{key}' is {data[key]!r}, not {noun}; {fix}") from None
    return record


def check_range(path: Path, key: str, value: object, low: float, high: float, rule: str) -> None:
    """Refuse a record's number (None: not measured, allowed) that is not a finite number in
    [``low``, ``high``], in one line naming the file and the ``rule`` that re-makes it."""
    if value is None:
        return
    number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if number is None or not math.isfinite(number) or not low - ROUNDING <= number <= high + ROUNDING:
        raise InputError(f"{path}: {key} is {value!r}, not a number in [{low:g}, {high:g}]; delete the file "
                         f"and run snakemake again to re-make it (rule {rule})")


def _object(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _manifest_fields(manifest: object) -> dict:
    """Provenance and network identity of a run, from its manifest (None where not recorded)."""
    manifest = _object(manifest)
    config = _object(manifest.get("config"))
    network = _object(config.get("network"))
    depth = network.get("depth")
    return record_provenance(manifest, CONFIG_EXCLUDED) | {
        NETWORK_ARCH: network.get("arch"), NETWORK_DEPTH: None if depth is None else int(depth),
        PROTOCOL_BASE: _object(config.get("protocol_params")).get("base")}


def record_provenance(manifest: dict, excluded: Sequence[str]) -> dict[str, str | None]:
    """A record's code version, canonical config JSON and canonical package versions JSON (``manifest.packages``)
    as the columns that :func:`mixed_provenance` compares (None where not recorded).

    The config is ``manifest.config`` without the ``excluded`` keys, plus, under ``synset``, the
    config slice of the synthetic set the record was made from (``manifest.synset.config``: the
    method and its parameters; the set's seed is kept beside it, not in it), so that two results of
    one cell made from sets of different method parameters differ here even when their own job's
    config agrees. A set made by another code version than the record shows as
    ``<record version> (synset <set version>)``.
    """
    synset = _object(manifest.get("synset"))
    code_version = manifest.get("code_version")
    if synset.get("code_version") not in (None, code_version):
        code_version = f"{code_version} (synset {synset['code_version']})"
    packages = manifest.get("packages")
    fields = {CODE_VERSION: code_version, CONFIG: None,
              PACKAGES: json.dumps(packages, sort_keys=True) if isinstance(packages, dict) else None}
    if not isinstance(manifest.get("config"), dict):
        return fields
    config = {k: v for k, v in manifest["config"].items() if k not in excluded}
    if isinstance(synset.get("config"), dict):
        config["synset"] = synset["config"]
    return fields | {CONFIG: json.dumps(config, sort_keys=True)}


def accuracy_table(runs: pd.DataFrame, metric: str = "best_top1",
                   method_order: Sequence[str] | None = None) -> pd.DataFrame:
    """Summarise runs into per-block method × IPC grids of mean ± std of ``metric``: one row per
    (dataset, protocol, network, method, IPC) of each block's grid, blocks sorted, then methods in
    row order, then IPCs ascending (``attrs["metric"]`` names the metric).

    Rows follow ``method_order`` if given (it must name every method in ``runs``), else the
    order in which methods first appear in ``runs``; a block lists only methods it has runs for.
    Every method × IPC cell whose runs all have the metric gets its mean, sample std, count and
    dense per-IPC rank; a cell with any null reading, or without runs, has a null mean (missing).
    """
    if metric not in METRIC_DESCRIPTIONS:
        raise ValueError(f"unknown metric '{metric}'; use one of {', '.join(METRIC_DESCRIPTIONS)}")
    missing_columns = [c for c in BLOCK_KEYS + ["method", "ipc", metric] if c not in runs.columns]
    if missing_columns:
        raise ValueError(f"runs lack columns {missing_columns}; build them with load_runs")
    if runs.empty:
        raise InputError("no runs to tabulate; check the result paths passed to load_runs")
    summary = summarise(runs, BLOCK_KEYS + ["method", "ipc"], metric, mixed_provenance)
    summary["rank"] = summary.groupby(BLOCK_KEYS + ["ipc"])["mean"].transform(
        lambda means: pd.Series(dense_ranks(dict(means)), dtype=int))
    grid = runs[BLOCK_KEYS + ["method"]].drop_duplicates().merge(runs[BLOCK_KEYS + ["ipc"]].drop_duplicates())
    table = cell_table(summary, grid, BLOCK_KEYS + ["method", "ipc"], {"method": ordered_methods(runs, method_order)})
    table.attrs["metric"] = metric
    return table


def ordered_methods(runs: pd.DataFrame, method_order: Sequence[str] | None) -> list[str]:
    """Row order: ``method_order`` checked to cover every method, else first appearance."""
    appearing = list(dict.fromkeys(runs["method"]))
    if method_order is None:
        return appearing
    unlisted = [m for m in appearing if m not in method_order]
    if unlisted:
        raise InputError(f"method_order lacks methods {unlisted}; add them to method_order "
                         "or drop their runs")
    return list(method_order)


# ---------------------------------------------------------------- provenance


def mixed_provenance(runs: pd.DataFrame, noun: str = "run") -> tuple[str, ...]:
    """What differs between ``runs`` (the runs of one cell): one phrase for the code versions, one
    for the package versions and one for the config keys whose values differ, each value with its
    count of ``noun``s; empty when the runs agree or the frame has no provenance columns."""
    phrases = []
    if CODE_VERSION in runs.columns:
        versions = Counter(NOT_RECORDED if pd.isna(v) else str(v) for v in runs[CODE_VERSION])
        if len(versions) > 1:   # every git hash cut to 12 characters, the rest (``-dirty``) kept
            short = {re.sub(r"\b([0-9a-f]{12})[0-9a-f]{28}\b", r"\1", v): n for v, n in versions.items()}
            phrases.append("code version " + _counted(short, noun))
    for column, label in ((PACKAGES, "packages"), (CONFIG, "config")):
        differing = _differing_keys(runs[column], noun) if column in runs.columns else []
        if differing:
            phrases.append(f"{label} {'; '.join(differing)}")
    return tuple(phrases)


def _differing_keys(texts: pd.Series, noun: str) -> list[str]:
    """``key a (n runs) vs b (m runs)`` for each dotted key whose values differ between the
    canonical JSON objects ``texts`` (a missing key or object counts as ``not recorded``)."""
    objects = [{} if pd.isna(text) else _flatten(json.loads(text)) for text in texts]
    if len({json.dumps(o, sort_keys=True) for o in objects}) < 2:
        return []
    values = {key: Counter(json.dumps(o[key]) if key in o else NOT_RECORDED for o in objects)
              for key in sorted({key for o in objects for key in o})}
    return [f"{key} {_counted(counts, noun)}" for key, counts in values.items() if len(counts) > 1]


def _counted(values: dict[str, int], noun: str = "run") -> str:
    """``a (3 runs) vs b (2 runs)``, most frequent first (ties by value)."""
    ordered = sorted(values.items(), key=lambda item: (-item[1], item[0]))
    return " vs ".join(f"{value} ({count} {noun}{'s' if count > 1 else ''})" for value, count in ordered)


def _flatten(config: dict, prefix: str = "") -> dict:
    """Nested dicts as dotted keys (``protocol_params.lr``); other values as they are."""
    flat = {}
    for key, value in config.items():
        nested = isinstance(value, dict) and value
        flat.update(_flatten(value, f"{prefix}{key}.") if nested else {f"{prefix}{key}": value})
    return flat


def cell_name(row) -> str:
    """``dataset · protocol · network · method · IPC k`` of a cell (any object with those attributes)."""
    return f"{row.dataset} · {row.protocol} · {row.network} · {row.method} · IPC {row.ipc}"


def provenance_footnotes(table: pd.DataFrame, name=cell_name, noun: str = "run") -> list[str]:
    """One ``†`` footnote per marked cell of ``table``, in its order, naming the cell and what differs."""
    return [pooled(name(row), row.provenance, noun) for row in table.itertuples() if row.provenance]


# ---------------------------------------------------------------- rendering


def title(table: pd.DataFrame) -> str:
    """One line naming the metric and how many runs each cell averages."""
    return (f"Top-1 accuracy (%), {METRIC_DESCRIPTIONS[table.attrs['metric']]}, "
            f"mean ± std over {count_range(table['n'])} runs per cell (seeds × repeats)")


def to_markdown(table: pd.DataFrame, footnotes: Sequence[str] = (), latex: bool = False) -> str:
    """Title line, then one heading and pipe table per block (in LaTeX, one booktabs ``tabular`` per
    block with a caption row naming it), then ``Notes:`` and the footnotes."""
    name = latex_escape if latex else pipe_escape
    texts = [cell_text(cell, lambda c: mean_std(c.mean, c.std, DECIMALS, latex), latex) for cell in cells(table)]
    blocks = [(block, ["Method"] + [f"IPC {ipc}" for ipc, in ipcs],
               [[name(m), *row] for (m,), row in zip(methods, grid)], [])
              for block, methods, ipcs, grid in pivot_blocks(table, texts, BLOCK_KEYS, ["method"], ["ipc"])]
    return table_text(title(table), blocks, list(footnotes) + provenance_footnotes(table), latex)


def to_latex(table: pd.DataFrame, footnotes: Sequence[str] = ()) -> str:
    return to_markdown(table, footnotes, latex=True)


def to_csv(table: pd.DataFrame) -> str:
    """Long format, one row per non-missing cell, numbers at full precision."""
    return cells_csv(table, CSV_COLUMNS)


# Model selection: the three readings of the same runs side by side.

SELECTION_READINGS = {"best_top1": "Best", "val_selected_top1": "Val-selected", "last_top1": "Last"}
SELECTION_CONVENTIONS = {
    "best": "the protocol reports the best test top-1 over its evaluations",
    "final": "the protocol tests the final model once, so best = last",
    "final_ema": "the protocol tests the final EMA model once, so best = last",
}

SELECTION_HEADER = (
    "Model selection: test top-1 accuracy (%) of the same runs read three ways, mean ± std over {runs} "
    "runs per cell (seeds × repeats). **Best** is the highest test top-1 over training, the papers' "
    "number; it chooses the epoch on the test set, so it is optimistic. **Val-selected** is the test "
    "top-1 at the epoch of highest validation top-1 (a split held out from the real training data; "
    "earliest epoch on ties): the only honest estimate of the three. **Last** is the test top-1 at "
    "the final evaluation. Best − val is how much choosing the epoch on the test set inflates the "
    "number. {missing} = not measured (the protocol evaluates no validation split, or a run lacks "
    "the reading).")


def model_selection_markdown(runs: pd.DataFrame, method_order: Sequence[str] | None = None,
                             footnotes: Sequence[str] = ()) -> str:
    """Best, val-selected and last test top-1 (mean ± std) of every method × IPC, one long table
    per (dataset, protocol, network), with the gap best − val-selected; no marks (the columns are
    readings of the same runs, not competitors). The three tables share one grid, so their rows align."""
    tables = [accuracy_table(runs, metric, method_order) for metric in SELECTION_READINGS]
    best, val = tables[0]["mean"], tables[1]["mean"]
    texts = {metric: [MISSING if c is None else mean_std(c.mean, c.std, DECIMALS) + MIXED_MARK * bool(c.provenance)
                      for c in cells(table)] for metric, table in zip(SELECTION_READINGS, tables)}
    gaps = [MISSING if pd.isna(v) else f"{b - v:.{DECIMALS}f}" for b, v in zip(best, val)]
    readings = tables[0].assign(**texts, gap=gaps)
    selections = runs.reindex(columns=BLOCK_KEYS + ["selection"]).groupby(BLOCK_KEYS)["selection"]
    conventions = selections.agg(lambda selection: "; ".join(
        SELECTION_CONVENTIONS.get(c, f"selection '{c}'") for c in sorted(set(selection.dropna()))))
    lines = [SELECTION_HEADER.format(runs=count_range(tables[0]["n"]), missing=MISSING), ""]
    for block, part in readings.groupby(BLOCK_KEYS, sort=False):
        said = conventions[block]
        lines += [f"### {' · '.join(block)}", ""] + ([said[:1].upper() + said[1:] + ".", ""] if said else [])
        rows = [[pipe_escape(row.method), str(row.ipc), *(getattr(row, metric) for metric in SELECTION_READINGS),
                 row.gap] for row in part.itertuples() if not pd.isna(row.mean)]   # null best: no runs at this IPC
        lines += markdown_table(["Method", "IPC", *SELECTION_READINGS.values(), "Best − val"],
                                ["---"] + ["---:"] * (len(SELECTION_READINGS) + 2), rows) + [""]
    return "\n".join(lines + notes(list(footnotes) + provenance_footnotes(tables[0])))


def write_accuracy_tables(runs: pd.DataFrame, out_dir: Path, metric: str, stem: str,
                          method_order: Sequence[str] | None = None,
                          footnotes: Sequence[str] = ()) -> list[Path]:
    """Write ``<stem>.md``, ``<stem>.tex`` and ``<stem>.csv`` into ``out_dir``, each atomically;
    footnotes go to the Markdown and LaTeX only. Returns the written paths."""
    table = accuracy_table(runs, metric, method_order)
    return write_texts(out_dir, stem, {".md": to_markdown(table, footnotes), ".tex": to_latex(table, footnotes),
                                       ".csv": to_csv(table)})
