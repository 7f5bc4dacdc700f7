"""Generation-quality and distribution tables from per-set metrics records (DMGD supplementary).

``generation`` follows Table 9: one block per (dataset, IPC), metrics as rows (FID, KID,
precision, recall, density), methods as columns; each cell is the mean over generation seeds with
its half-sampling interval in brackets (``evaluation/metrics/bootstrap.py``). With several seeds the
bracket is the envelope of the seeds' intervals (lowest lower bound, highest upper bound), so it contains
every seed's interval; a cell shows no bracket when any of its seeds has none. ``distribution`` follows
the coverage / OT dataset distance / diversity table: one block per dataset, methods as rows, the three metrics per IPC,
mean ± sample std (ddof=1) over seeds. In both, the best displayed mean of each metric within a
(dataset, IPC) is bold, lower-is-better for FID, KID and OT distance. A cell any of whose seeds lacks
the value is missing. CSV rows keep the records' units (fractions, raw KID) at full precision.

Records computed with different extractors, resize policies, reference splits or prdc k are never
mixed: building a table from them raises a one-line error naming the two values. Seeds of one cell
measured by different code versions or configs (``manifest.config``, seed excluded) are pooled and
marked ``†``, with a footnote naming the values (as in the accuracy tables).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation.core.artifacts import read_json_object
from evaluation.core.errors import InputError
from .render import (cell_table, cell_text, cells, cells_csv, count_range, dense_ranks, latex_escape, pipe_escape,
                     pivot_blocks, summarise, table_text, write_texts)
from .tables import (CODE_VERSION, CONFIG, PACKAGES, check_range, mixed_provenance, ordered_methods,
                     provenance_footnotes, record_provenance, required_fields)


@dataclass(frozen=True)
class Metric:
    """How one metric is shown: record value × ``scale``, ``decimals`` places, and which of the
    record's extractors (``fid`` or ``features``) computed it."""

    name: str
    markdown: str
    latex: str
    lower_is_better: bool
    scale: float
    decimals: int
    extractor: str

    @property
    def ranking(self) -> tuple[int, bool, float]:
        """The arguments of :func:`~evaluation.report.render.dense_ranks` after the means."""
        return self.decimals, not self.lower_is_better, self.scale

    def label(self, latex: bool = False) -> str:
        if latex:
            return f"{self.latex} $\\{'downarrow' if self.lower_is_better else 'uparrow'}$"
        return f"{self.markdown} {'↓' if self.lower_is_better else '↑'}"


METRICS: dict[str, Metric] = {
    "fid": Metric("FID", "FID", "FID", True, 1.0, 1, "fid"),
    "kid": Metric("KID", "KID ×10³", r"KID $\times 10^3$", True, 1e3, 2, "fid"),
    "precision": Metric("precision", "Precision (%)", r"Precision (\%)", False, 100.0, 1, "features"),
    "recall": Metric("recall", "Recall (%)", r"Recall (\%)", False, 100.0, 1, "features"),
    "density": Metric("density", "Density", "Density", False, 1.0, 2, "features"),
    "coverage": Metric("coverage", "Coverage (%)", r"Coverage (\%)", False, 100.0, 1, "features"),
    "ot_distance": Metric("OT distance", "OT distance", "OT distance", True, 1.0, 2, "features"),
    "diversity": Metric("diversity", "Diversity", "Diversity", False, 1.0, 2, "features"),
}
# The values each metric can take by its definition (KID's unbiased estimate may be negative;
# prdc's density is not bounded above); a record's value outside them is damaged or edited.
BOUNDS: dict[str, tuple[float, float]] = {
    "fid": (0.0, math.inf), "kid": (-math.inf, math.inf), "precision": (0.0, 1.0), "recall": (0.0, 1.0),
    "density": (0.0, math.inf), "coverage": (0.0, 1.0), "ot_distance": (0.0, math.inf), "diversity": (0.0, math.inf),
}
GENERATION_METRICS = ("fid", "kid", "precision", "recall", "density")
DISTRIBUTION_METRICS = ("coverage", "ot_distance", "diversity")
EXTRACTOR_ROLES = ("fid", "features")  # the keys of a record's ``extractors``
PRDC = ("precision", "recall", "density", "coverage")  # prdc's k-nearest-neighbour metrics
INTERVALS_SHOWN = GENERATION_METRICS  # the generation table shows intervals; distribution, std over seeds
REQUIRED_KEYS: dict[str, type] = {"dataset": str, "method": str, "ipc": int, "seed": int,
                                  "reference_split": str, "reference_count": int, "count": int,
                                  "extractors": dict, "metrics": dict}
SORT_KEYS = ["dataset", "method", "ipc", "seed", "metric"]
CSV_COLUMNS = ["dataset", "ipc", "method", "metric", "mean", "std", "n", "ci_low", "ci_high", "best",
               "mixed_provenance"]
SETTINGS = ("nearest_k", "bootstrap", "ci", "ot_max_real", "tsne_perplexity")  # manifest.config.metrics
_COLUMNS = (["dataset", "method", "ipc", "seed", "reference_split", "reference_count", "count",
             "fid_name", "fid_resize", "features_name", "features_resize", "kid_subset_size"]
            + list(SETTINGS) + ["metric", "value", "ci_low", "ci_high", "path", CODE_VERSION, CONFIG, PACKAGES])


# ---------------------------------------------------------------- loading


def load_metrics(paths: Iterable[str | Path]) -> pd.DataFrame:
    """One row per (metrics record, known metric), sorted by dataset, method, ipc, seed, metric.

    Columns: the record's keys, ``metric``, ``value``, ``ci_low``, ``ci_high`` (NaN where null or
    absent), the extractor names and resize policies (``fid_name``, ``fid_resize``,
    ``features_name``, ``features_resize``), ``kid_subset_size`` and the manifest's metric
    settings (``nearest_k``, ``bootstrap``, ``ci``, ``ot_max_real``, ``tsne_perplexity``; None
    where not recorded), ``path`` and the provenance columns of :func:`~evaluation.report.tables.load_runs`.
    """
    rows = [row for path in sorted(paths, key=str) for row in _read_metrics(Path(path))]
    frame = pd.DataFrame(rows, columns=_COLUMNS)
    for column in ("value", "ci_low", "ci_high"):
        frame[column] = pd.to_numeric(frame[column]).astype(float)
    return frame.sort_values(SORT_KEYS, kind="mergesort").reset_index(drop=True)


def _read_metrics(path: Path) -> list[dict]:
    """The rows of one metrics record, its required keys checked and typed, its values in their metric's bounds."""
    data = read_json_object(path, "measurement", "metrics records", rule="measure")
    fix = "re-run the measurement that wrote it"
    record = required_fields(path, data, REQUIRED_KEYS, fix, fix)
    for role in EXTRACTOR_ROLES:
        extractor = record["extractors"].get(role)
        if not isinstance(extractor, dict) or "name" not in extractor:
            raise InputError(f"{path}: extractors.{role}.name is missing; {fix}")
        record[f"{role}_name"] = str(extractor["name"])
        record[f"{role}_resize"] = str(extractor.get("resize", "not recorded"))
    manifest = data.get("manifest") or {}
    settings = (manifest.get("config") or {}).get("metrics") or {}
    record.update({key: settings.get(key) for key in SETTINGS}, path=str(path))
    record.update(record_provenance(manifest, ("seed",)))
    metrics = record.pop("metrics")
    record["kid_subset_size"] = (metrics.get("kid") or {}).get("subset_size")
    rows = []
    for name in METRICS:
        entry = metrics.get(name) or {}
        if not isinstance(entry, dict):
            raise InputError(f"{path}: metrics.{name} is {entry!r}, not an object; {fix}")
        check_range(path, f"metrics.{name}.value", entry.get("value"), *BOUNDS[name], "measure")
        for end in ("ci_low", "ci_high"):   # normal intervals may leave the metric's bounds
            check_range(path, f"metrics.{name}.{end}", entry.get(end), -math.inf, math.inf, "measure")
        rows.append(record | {"metric": name, "value": entry.get("value"),
                              "ci_low": entry.get("ci_low"), "ci_high": entry.get("ci_high")})
    return rows


def check_consistent(frame: pd.DataFrame, metrics: Sequence[str]) -> None:
    """Refuse records that would mix extractors, resize policies, reference splits or prdc k in one
    table (resize policies only within a dataset, as they may name its image size)."""
    roles = sorted({METRICS[name].extractor for name in metrics})
    checks = [(f"the {role} extractor", f"{role}_name", None) for role in roles]
    checks += [(f"the {role} resize policy", f"{role}_resize", "dataset") for role in roles]
    checks += [("the reference split", "reference_split", None), ("prdc nearest_k", "nearest_k", None)]
    for what, column, within in checks:
        for _, group in frame.groupby(within, sort=True) if within else [(None, frame)]:
            known = group[group[column].notna()].drop_duplicates(column)
            if len(known) > 1:
                first, second = (known.iloc[i] for i in (0, 1))
                raise InputError(f"metrics records disagree on {what}: {_plain(first[column])!r} "
                                 f"({first['path']}) vs {_plain(second[column])!r} ({second['path']}); "
                                 "recompute them with one metrics config")


def _plain(value: object) -> object:
    """A numpy scalar as the Python value, so that messages read ``5``, not ``np.int64(5)``."""
    return value.item() if isinstance(value, np.generic) else value


# ---------------------------------------------------------------- summary


def quality_table(frame: pd.DataFrame, metrics: Sequence[str],
                  method_order: Sequence[str] | None = None) -> pd.DataFrame:
    """Summarise ``frame`` (from :func:`load_metrics`) over seeds for ``metrics``, after checking
    that its records agree on what those metrics were computed with: one row per (dataset, IPC,
    method, metric) of each dataset's grid (datasets sorted, IPCs ascending, the dataset's methods in
    row order, ``metrics`` in order; ``attrs["metrics"]``) with mean, std, n, rank (1 = best of its
    dataset, IPC and metric, else 0), provenance and interval over seeds, in record units; a
    missing cell has a null mean."""
    unknown = [name for name in metrics if name not in METRICS]
    if unknown:
        raise InputError(f"unknown metrics {unknown}; use names from {', '.join(METRICS)}")
    if frame.empty:
        raise InputError("no metrics records to tabulate; check the paths passed to load_metrics")
    frame = frame[frame["metric"].isin(metrics)]
    check_consistent(frame, metrics)
    keys = ["dataset", "ipc", "method", "metric"]
    summary = summarise(frame, keys, "value", lambda group: mixed_provenance(group, noun="record"), interval=True)
    summary["rank"] = summary.groupby(keys[:2] + ["metric"])["mean"].transform(lambda means: pd.Series(
        {key: int(rank == 1) for key, rank in dense_ranks(dict(means), *METRICS[means.name[-1]].ranking).items()},
        dtype=int))
    grid = (frame[["dataset", "method"]].drop_duplicates().merge(frame[["dataset", "ipc"]].drop_duplicates())
            .merge(pd.DataFrame({"metric": list(metrics)}), how="cross"))
    table = cell_table(summary, grid, keys, {"method": ordered_methods(frame, method_order), "metric": list(metrics)})
    table.attrs["metrics"] = tuple(metrics)
    return table


def _number(value: float, metric: str) -> str:
    spec = METRICS[metric]
    return f"{value * spec.scale:.{spec.decimals}f}"


def _with_interval(cell) -> str:
    text = _number(cell.mean, cell.metric)
    if cell.ci_low is None:
        return text
    return f"{text} [{_number(cell.ci_low, cell.metric)}, {_number(cell.ci_high, cell.metric)}]"


def provenance_notes(table: pd.DataFrame) -> list[str]:
    """One ``†`` footnote per marked cell, naming it and what differs between its seeds' records."""
    return provenance_footnotes(
        table.sort_values(["dataset", "ipc", "method", "metric"]), noun="record",
        name=lambda row: f"{row.dataset} · {row.method} · {METRICS[row.metric].name} · IPC {row.ipc}")


# ---------------------------------------------------------------- titles and footnotes


def generation_title(table: pd.DataFrame) -> str:
    return (f"Generation quality of each distilled set against the real data: mean over "
            f"{count_range(table['n'])} generation seeds per cell, in brackets the half-sampling "
            "interval (with several seeds, the envelope of the seeds' intervals: lowest lower and "
            "highest upper bound). KID is shown ×10³; precision and recall in %. Best per row in bold "
            "(↓ lower is better, ↑ higher is better).")


def distribution_title(table: pd.DataFrame) -> str:
    return (f"Distribution of each distilled set relative to the real data: mean ± sample std over "
            f"{count_range(table['n'])} generation seeds per cell; coverage in %. Best per "
            "column in bold (↓ lower is better, ↑ higher is better).")


def metric_footnotes(frame: pd.DataFrame, metrics: Sequence[str]) -> list[str]:
    """What the metrics were computed with: extractor and resize policy per metric group, the
    reference split and sizes, prdc k, KID subsets and the bootstrap settings (from the records)."""
    frame = frame[frame["metric"].isin(metrics)]
    check_consistent(frame, metrics)
    notes = []
    for role in EXTRACTOR_ROLES:
        shown = [METRICS[name].name for name in metrics if METRICS[name].extractor == role]
        if not shown:
            continue
        resizes = frame.drop_duplicates(["dataset", f"{role}_resize"])
        resize = (resizes[f"{role}_resize"].iloc[0] if resizes[f"{role}_resize"].nunique() == 1 else
                  "; ".join(f"{row.dataset}: {row[f'{role}_resize']}" for _, row in resizes.iterrows()))
        notes.append(f"{_listed(shown)}: features of the {frame[f'{role}_name'].iloc[0]} extractor, "
                     f"resize: {resize}.")
    sizes = "; ".join(
        f"{dataset}: {_values(group['reference_count'])} real images vs synthetic sets of "
        f"{_values(group['count'])} images" for dataset, group in frame.groupby("dataset", sort=True))
    notes.append(f"Reference: the real {frame['reference_split'].iloc[0]} split ({sizes}).")
    if any(name in PRDC for name in metrics):
        k = frame["nearest_k"].dropna()
        notes.append(f"prdc (precision, recall, density, coverage): k = {int(k.iloc[0])} nearest neighbours."
                     if len(k) else "prdc k: not recorded in the records' manifests.")
    if "kid" in metrics and frame["kid_subset_size"].notna().any():
        notes.append(f"KID: subsets of {_values(frame['kid_subset_size'])} images.")
    if "ot_distance" in metrics:
        detail = [text.format(_values(frame[column])) for column, text in (("tsne_perplexity", "t-SNE perplexity {}"),
                  ("ot_max_real", "at most {} real samples")) if frame[column].notna().any()]
        notes.append("OT distance: optimal transport between the t-SNE (2-D) embeddings of synthetic and "
                     "real features" + (f" ({', '.join(detail)})" if detail else "") + ".")
    if "diversity" in metrics:
        notes.append("Diversity: mean over synthetic samples of the distance to the nearest other "
                     "synthetic sample, in that feature space.")
    notes.append(_bootstrap_note(frame, shown=any(name in INTERVALS_SHOWN for name in metrics)))
    return notes


def _bootstrap_note(frame: pd.DataFrame, shown: bool) -> str:
    """The bootstrap settings and which metrics of the table have intervals (in the table if
    ``shown``, else only in its CSV)."""
    bootstrap, level = frame["bootstrap"].dropna(), frame["ci"].dropna()
    with_interval = [METRICS[name].name for name in METRICS
                     if frame.loc[frame["metric"] == name, "ci_low"].notna().any()]
    if bootstrap.empty:
        settings = "settings not recorded in the records' manifests"
    elif (bootstrap == 0).all():
        return "Bootstrap: off (0 resamples), so no intervals."
    else:
        confidence = f", {_values(level * 100)}% intervals" if len(level) else ""
        settings = (f"{_values(bootstrap)} half-samples (n/2 without replacement) of the synthetic set, "
                    f"normal intervals around the full-set value{confidence}")
    if not with_interval:
        return f"Bootstrap: {settings}; no metric of this table has an interval."
    where = "" if shown else " (in the CSV only; the table shows the spread over seeds)"
    return f"Bootstrap: {settings}; intervals of {_listed(with_interval, capital=False)}{where}."


def _listed(names: Sequence[str], capital: bool = True) -> str:
    """``a``, ``a and b``, ``a, b and c``; the first letter upper-case if ``capital``."""
    text = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    return text[0].upper() + text[1:] if capital else text


def _values(series: pd.Series) -> str:
    """Distinct values, ``a`` or ``a/b/c``, integers without a decimal point."""
    distinct = sorted(set(series.dropna()))
    return "/".join(f"{int(v)}" if float(v).is_integer() else f"{v:g}" for v in distinct) or "?"


# ---------------------------------------------------------------- renderers


def generation_markdown(table: pd.DataFrame, footnotes: Sequence[str] = (), latex: bool = False) -> str:
    """Title, then per (dataset, IPC) a pipe table (or booktabs ``tabular``) of metrics × methods,
    then the footnotes."""
    texts = [cell_text(cell, _with_interval, latex) for cell in cells(table)]
    blocks = [((dataset, f"IPC {ipc}"), ["Metric"] + [(latex_escape if latex else pipe_escape)(m) for m, in methods],
               [[METRICS[metric].label(latex)] + row for (metric,), row in zip(metrics, grid)], [])
              for (dataset, ipc), metrics, methods, grid in pivot_blocks(table, texts, ["dataset", "ipc"], ["metric"],
                                                                         ["method"])]
    return table_text(generation_title(table), blocks, footnotes, latex)


def distribution_markdown(table: pd.DataFrame, footnotes: Sequence[str] = (), latex: bool = False) -> str:
    """Title, then per dataset a pipe table of methods × (IPC, metric) (in LaTeX, a ``tabular`` with an
    IPC header row over its metric columns), then the footnotes."""
    pm, width = r"$\pm$" if latex else "±", len(table.attrs["metrics"])
    texts = [cell_text(cell, lambda c: f"{_number(c.mean, c.metric)} {pm} {_number(c.std, c.metric)}", latex)
             for cell in cells(table)]
    blocks = []
    for dataset, methods, columns, grid in pivot_blocks(table, texts, ["dataset"], ["method"], ["ipc", "metric"]):
        ipcs = list(dict.fromkeys(ipc for ipc, _ in columns))
        rules = " ".join(rf"\cmidrule(lr){{{2 + i * width}-{1 + (i + 1) * width}}}" for i in range(len(ipcs)))
        above = [" & " + " & ".join(rf"\multicolumn{{{width}}}{{c}}{{IPC {ipc}}}" for ipc in ipcs) + r" \\", rules]
        blocks.append((dataset, ["Method"] + [f"{'' if latex else f'IPC {ipc} '}{METRICS[m].label(latex)}"
                                              for ipc, m in columns],
                       [[(latex_escape if latex else pipe_escape)(m)] + row for (m,), row in zip(methods, grid)],
                       above if latex else []))
    return table_text(distribution_title(table), blocks, footnotes, latex)


def quality_csv(table: pd.DataFrame) -> str:
    """Long format, one row per non-missing cell, in the records' units at full precision."""
    return cells_csv(table, CSV_COLUMNS, best=lambda cells: cells["rank"] == 1)


RENDERERS = {"generation": (GENERATION_METRICS, generation_markdown),
             "distribution": (DISTRIBUTION_METRICS, distribution_markdown)}


def write_quality_tables(frame: pd.DataFrame, out_dir: Path, method_order: Sequence[str] | None = None,
                         notes: Sequence[str] = ()) -> list[Path]:
    """Write ``generation.{md,tex,csv}`` and ``distribution.{md,tex,csv}`` into ``out_dir``, each
    atomically; the footnotes (the records' settings, then ``notes``) go to Markdown and LaTeX."""
    paths = []
    for stem, (metrics, render) in RENDERERS.items():
        table = quality_table(frame, metrics, method_order)
        footnotes = metric_footnotes(frame, metrics) + list(notes) + provenance_notes(table)
        paths += write_texts(out_dir, stem, {".md": render(table, footnotes),
                                             ".tex": render(table, footnotes, latex=True),
                                             ".csv": quality_csv(table)})
    return paths
