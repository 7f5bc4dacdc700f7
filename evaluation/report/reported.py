"""Reported vs reproduced: the reference numbers beside the suite's, cell by cell (issue #6).

The reference is ``data/reported_results.csv``, a verbatim copy of the shared reference table (its
``source`` column names where each number was read). ``data/reported_vocabulary.yaml`` maps its
vocabulary onto the suite's: reported method → method registry name (or, for ablation-specific
rows, the variant name of ``config/paper/ablations.yaml``), reported arch → network ``{arch, depth}``
as in the records' ``manifest.config.network``, protocol text → protocol base, metric → reading.
A row that the vocabulary does not map is never joined.

A reproduced cell is (dataset, protocol, network, variant, IPC) over all its runs (generation
seeds × evaluation repeats). It is compared with the reference rows whose (dataset, reference
method, IPC, network arch + depth, protocol base, metric) equal the cell's, where the variant's
reference method is its own name when that is a known reference method, or the one given with
``--method-map VARIANT=METHOD`` (the eval record carries neither the registry name nor the distill
spec). A variant with no reference method, or a key the reference lacks, shows an empty reported
cell, never a neighbouring one. Where several rows report one key, the family's ``prefer`` list
picks (then the source's rank: the DMGD paper, then the method's own paper, then SECONDARY, then
the CSV order); the others are kept in the CSV's ``also_reported`` and, where they disagree with
the chosen one, in a footnote.

Per cell: reported value ± std and its table, reproduced mean ± sample std, Δ = reproduced −
reported, and a flag when |Δ| > 2σ with σ = sqrt(std_reported² + std_reproduced²). Without a
reported std, σ is the reproduced std alone (marked ``*``); with neither (no reported std, one
run) there is no flag (``n/a``). The reproduced numbers keep the accuracy tables' marks: bold best,
underlined second (dense ranks at the displayed precision among the rows shown), ``†`` for pooled
runs of different code versions or configs (:func:`evaluation.report.tables.mixed_provenance`).

One ``reported_<family>.{md,csv}`` per family of the vocabulary that the results have blocks for,
plus ``reported.md``: the families written and the reference method of every variant.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from itertools import groupby
from pathlib import Path

import pandas as pd
import yaml

from evaluation.core.errors import InputError
from . import render
from .render import (MISSING, cell_text, count_range, dense_ranks, markdown_table, mean_std, pipe_escape, pooled,
                     summarise, write_texts)
from .quality_tables import METRICS as QUALITY_METRICS
from .quality_tables import metric_footnotes, quality_table
from .tables import NETWORK_ARCH, NETWORK_DEPTH, PROTOCOL_BASE, cell_name, mixed_provenance, ordered_methods

REFERENCE_FILE = Path(__file__).resolve().parent / "reported_results.csv"
VOCABULARY_FILE = REFERENCE_FILE.with_name("reported_vocabulary.yaml")
REFERENCE_COLUMNS = ["source", "table", "dataset", "method", "ipc", "arch", "protocol", "metric", "value", "std"]
ACCURACY_READINGS = ("best_top1",)
FLAG = "✗"
NO_REPORTED_STD = "*"
NOT_TESTED = "n/a"
DECIMALS = 1
CSV_COLUMNS = ["family", "group", "dataset", "protocol", "protocol_base", "network", "method",
               "reference_method", "ipc", "metric", "reported", "reported_std", "reported_table",
               "reported_method", "reported_source", "reported_secondary", "also_reported",
               "reproduced_mean", "reproduced_std", "n", "rank", "difference", "two_sigma",
               "sigma_basis", "flag", "mixed_provenance"]
VariantKeys = dict[str, tuple[str | None, str]]   # variant → (reference method or None, how it was found)


# ---------------------------------------------------------------- vocabulary and reference


def load_vocabulary(path: str | Path = VOCABULARY_FILE) -> dict:
    """The mapping from the reference's vocabulary to the suite's (see the YAML's comments)."""
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def network_key(arch: object, depth: object = None) -> str | None:
    """``resnet_ap-10`` for {arch: resnet_ap, depth: 10}, ``vit`` for {arch: vit}; None without arch."""
    if arch is None or (isinstance(arch, float) and math.isnan(arch)):
        return None
    return str(arch) if depth is None or pd.isna(depth) else f"{arch}-{int(depth)}"


def arch_key(networks: Sequence[dict]) -> str:
    """One network's key, or ``mean(a,b,...)`` over several (a reported cross-architecture mean)."""
    keys = [network_key(net["arch"], net.get("depth")) for net in networks]
    return keys[0] if len(keys) == 1 else f"mean({','.join(keys)})"


def composite_members(key: str) -> list[str] | None:
    """The member keys of a ``mean(...)`` network key, None for a single network."""
    match = re.fullmatch(r"mean\((.*)\)", key)
    return match.group(1).split(",") if match else None


def table_short(table: str) -> str:
    """``S5`` for "Supp. Table 5 (...)", ``T1`` for "Table 1", anything else unchanged."""
    match = re.match(r"(Supp\. )?Table (\w+)", table)
    return f"{'S' if match.group(1) else 'T'}{match.group(2)}" if match else table


def reference_methods(vocabulary: dict) -> set[str]:
    """Every reference method a variant can be compared as: registry names and ablation variants."""
    ablation = {key for table in vocabulary["ablations"].values() for key in table["rows"].values()}
    return set(vocabulary["methods"].values()) | ablation


def ablation_only_methods(vocabulary: dict) -> set[str]:
    """Reference methods that exist only as ablation rows (not registry names)."""
    return reference_methods(vocabulary) - set(vocabulary["methods"].values())


def _number(text: str, where: str) -> float:
    """A reference cell's number; NaN for text that is none (a bound such as "<1 (all)", empty). A
    cell reading "nan" or "inf" is refused: NaN stands for "not reported", never for a value."""
    try:
        value = float(text)
    except ValueError:
        return math.nan
    if not math.isfinite(value):
        raise InputError(f"{where} is {text!r}, not a finite number; write the reported number or leave it empty")
    return value


def load_reference(path: str | Path = REFERENCE_FILE, vocabulary: dict | None = None) -> pd.DataFrame:
    """The reference rows as written (strings), plus their keys in the suite's vocabulary:
    ``ref_method``, ``ref_network``, ``ref_protocol``, ``ref_reading`` (None where unmapped),
    ``ref_ipc`` (None for "full"), ``ref_value``, ``ref_std`` (NaN where the CSV gives none or a
    bound such as "<1 (all)"), ``ref_label`` (e.g. "DMGD S5"), ``ref_rank``, ``ref_secondary``."""
    vocabulary = vocabulary or load_vocabulary()
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [column for column in REFERENCE_COLUMNS if column not in frame.columns]
    if missing:
        raise InputError(f"{path}: lacks columns {missing}; use the shared reference's layout")
    rows = []
    for index, row in frame.iterrows():
        where = f"{path}: row {index + 2}"
        source = next((entry for entry in vocabulary["sources"] if row["source"].startswith(entry["match"])), None)
        if source is None:
            raise InputError(f"{where} has source {row['source']!r}, which no entry of "
                             f"{VOCABULARY_FILE.name} 'sources' matches; add one")
        ablation = vocabulary["ablations"].get(row["table"])
        networks = vocabulary["archs"].get(row["arch"])
        rows.append({
            "ref_method": (ablation["rows"] if ablation else vocabulary["methods"]).get(row["method"]),
            "ref_network": arch_key(networks) if networks else None,
            "ref_protocol": vocabulary["protocols"].get(row["protocol"]),
            "ref_reading": vocabulary["metrics"].get(row["metric"]),
            "ref_ipc": int(row["ipc"]) if row["ipc"].isdigit() else None,
            "ref_value": _number(row["value"], f"{where}: value"),
            "ref_std": _number(row["std"], f"{where}: std"),
            "ref_label": f"{source['label']} {table_short(row['table'])}",
            "ref_rank": int(source["rank"]),
            "ref_secondary": bool(source.get("secondary", False)),
        })
    extra = pd.DataFrame(rows, index=frame.index)
    extra["ref_ipc"] = extra["ref_ipc"].astype("Int64")
    return pd.concat([frame, extra], axis=1)


def unjoined_reason(row: pd.Series) -> str | None:
    """Why a reference row can never be joined (the first missing key), None if it can."""
    accuracy = row["ref_reading"] in ACCURACY_READINGS
    missing = {f"metric '{row['metric']}' not in the suite": pd.isna(row["ref_reading"]),
               f"IPC '{row['ipc']}' (the whole real training set)": pd.isna(row["ref_ipc"]),
               "method not in the suite (or an ablation row with no suite variant)": pd.isna(row["ref_method"]),
               "network not stated or not in the suite": accuracy and pd.isna(row["ref_network"]),
               "protocol not in the suite": accuracy and pd.isna(row["ref_protocol"])}
    return next((reason for reason, absent in missing.items() if absent), None)


# ---------------------------------------------------------------- variants → reference methods


def parse_method_map(items: Iterable[str]) -> dict[str, str]:
    """``["a=dmgd", "b=random,c=dit"]`` → {a: dmgd, b: random, c: dit}."""
    mapping = {}
    for item in items:
        for pair in filter(None, (part.strip() for part in item.split(","))):
            variant, sep, method = pair.partition("=")
            if not sep or not variant.strip() or not method.strip():
                raise InputError(f"--method-map: '{pair}' is not VARIANT=METHOD; write e.g. random-first-k=random")
            mapping[variant.strip()] = method.strip()
    return mapping


def variant_methods(variants: Iterable[str], method_map: dict[str, str] | None = None,
                    vocabulary: dict | None = None) -> VariantKeys:
    """Each variant's reference method and how it was found: ``--method-map``, its ``name`` (a
    known reference method), or none (None)."""
    vocabulary = vocabulary or load_vocabulary()
    known = reference_methods(vocabulary)
    method_map = method_map or {}
    unknown = sorted({target for target in method_map.values() if target not in known})
    if unknown:
        raise InputError(f"--method-map: unknown reference method '{unknown[0]}'; valid: {', '.join(sorted(known))}")
    return {variant: (method_map[variant], "--method-map") if variant in method_map
            else (variant, "name") if variant in known else (None, "none") for variant in variants}


# ---------------------------------------------------------------- reproduced cells


BLOCK = ["dataset", "protocol", "network"]


def reproduced_cells(runs: pd.DataFrame, reading: str = "best_top1", composites: Iterable[str] = ()) -> pd.DataFrame:
    """Cells (dataset, protocol, protocol_base, network, network_key, method, ipc: mean, std, n,
    provenance) of every (dataset, protocol, network) of ``runs``, and of every composite network key
    in ``composites`` whose member networks a (dataset, protocol) has (each member matched by
    arch + depth to exactly one of the profile's networks): per (variant, IPC, seed, repeat) the
    mean over the members, then the cell over those means. A cell with a null reading, or a
    composite cell missing a member for some (seed, repeat), is left out."""
    absent = pd.Series(None, index=runs.index)
    runs = runs.assign(  # a protocol without a recorded base is its own base (a reference protocol)
        network_key=[network_key(arch, depth)
                     for arch, depth in zip(runs.get(NETWORK_ARCH, absent), runs.get(NETWORK_DEPTH, absent))],
        protocol_base=[p if pd.isna(b) else b for p, b in zip(runs["protocol"], runs.get(PROTOCOL_BASE, absent))])
    blocks = runs.drop_duplicates(BLOCK)[BLOCK + ["protocol_base", "network_key"]]   # a block's first run
    frames = [summarise(runs, BLOCK + ["method", "ipc"], reading, mixed_provenance).merge(blocks, on=BLOCK)]
    for composite in sorted(set(composites)):
        members = composite_members(composite)
        for (dataset, protocol), pair in runs.groupby(["dataset", "protocol"], sort=True):
            found = [sorted(set(pair.loc[pair["network_key"] == member, "network"])) for member in members]
            if any(len(names) != 1 for names in found):
                continue
            shown = [names[0] for names in found]
            frames.append(_composite_cells(pair[pair["network"].isin(shown)], shown, reading).assign(
                dataset=dataset, protocol=protocol, protocol_base=pair["protocol_base"].iloc[0],
                network=f"mean({', '.join(shown)})", network_key=composite))
    return pd.concat(frames, ignore_index=True).astype({"ipc": int})


def _composite_cells(runs: pd.DataFrame, networks: list[str], reading: str) -> pd.DataFrame:
    # observed (seed, repeat) pairs only; a member network missing for one of them leaves a NaN
    means = (runs.groupby(["method", "ipc", "seed", "repeat", "network"], sort=False)[reading].mean()
             .unstack("network").reindex(columns=networks).mean(axis=1, skipna=False).rename(reading).reset_index())
    cells = summarise(means, ["method", "ipc"], reading)
    provenance = {key: tuple(f"{network}: {note}" for network in networks
                             for note in mixed_provenance(group[group["network"] == network]))
                  for key, group in runs.groupby(["method", "ipc"], sort=False)}
    return cells.assign(provenance=[provenance[key] for key in zip(cells["method"], cells["ipc"])])


# ---------------------------------------------------------------- comparison: one row per reproduced cell

# A family's rows: group ("" outside the ablations), the block (dataset, protocol, protocol_base,
# network, network_key), method (the variant), reference_method (None without one), ipc, metric,
# decimals, the reproduced mean, std, n, rank (among the rows shown, 1 = best) and provenance in the
# table's units; then, from :func:`join_reported`, the chosen reference row (``reported``,
# ``reported_std``, ``reported_text``, ``reported_table``, ``reported_method``, ``reported_source``,
# ``reported_secondary``, ``also_reported``, ``disagreeing``: NaN without one), ``difference``,
# ``two_sigma``, ``sigma_basis`` and ``flag`` (None when there is nothing to test).
JOIN_NAMES = {"reference_method": "ref_method", "ipc": "ref_ipc", "metric": "ref_reading",
              "network_key": "ref_network", "protocol_base": "ref_protocol"}
ACCURACY_JOIN = ["dataset", "ref_method", "ref_ipc", "ref_reading", "ref_network", "ref_protocol"]
QUALITY_JOIN = ACCURACY_JOIN[:4]   # quality metrics join on dataset, method, IPC and metric only


def choose_reported(candidates: pd.DataFrame, prefer: Sequence[str] = (), group: str | None = None) -> pd.Series | None:
    """The reference row a cell is compared with: the group's own table first, then the family's
    ``prefer`` order of table labels, then source rank, then CSV order; None without candidates."""
    chosen = _choose(candidates.reset_index(names="_row").assign(_cell=0, _group=group or ""), prefer)
    return chosen.iloc[0] if len(chosen) else None


def _choose(merged: pd.DataFrame, prefer: Sequence[str]) -> pd.DataFrame:
    """Per ``_cell`` of the reference rows ``merged`` (``_row``: their CSV order, ``_group``: the
    cell's group) the chosen row's reported columns; ``also_reported``: "label: value ± std" of the
    others in priority order, ``disagreeing``: those whose value, or std where both rows give one,
    differ from the chosen row's."""
    merged = merged.assign(
        _own=~((merged["_group"] != "") & (merged["table"] == merged["_group"])),
        _prefer=[prefer.index(label) if label in prefer else len(prefer) for label in merged["ref_label"]],
        _text=[f"{value} ± {std}" if std else str(value) for value, std in zip(merged["value"], merged["std"])],
    ).sort_values(["_cell", "_own", "_prefer", "ref_rank", "_row"])
    chosen = merged.drop_duplicates("_cell").set_index("_cell")
    rest = merged[merged.duplicated("_cell")]
    value, std = (rest["_cell"].map(chosen[column]) for column in ("ref_value", "ref_std"))
    disagree = (rest["ref_value"] != value) | (rest["ref_std"].notna() & std.notna() & (rest["ref_std"] != std))
    rest = rest.assign(_text=rest["ref_label"] + ": " + rest["_text"])
    others, disagreeing = (part.groupby("_cell")["_text"].agg(tuple) for part in (rest, rest[disagree]))
    return pd.DataFrame({
        "reported": chosen["ref_value"].astype(float), "reported_std": chosen["ref_std"].astype(float),
        "reported_text": chosen["_text"], "reported_table": chosen["ref_label"], "reported_method": chosen["method"],
        "reported_source": chosen["source"], "reported_secondary": chosen["ref_secondary"].astype(bool),
        "also_reported": [others.get(cell, ()) for cell in chosen.index],
        "disagreeing": [disagreeing.get(cell, ()) for cell in chosen.index]}, index=chosen.index)


def two_sigma(reported_std: float, std: float, n: int) -> tuple[float, str]:
    """2·sqrt(std_reported² + std_reproduced²) and which stds it uses (``both``, ``reproduced
    only``, ``reported only``); NaN and ``none`` when neither is known (the reproduced std of
    ``n`` runs needs two)."""
    known = {"reported": (reported_std, not pd.isna(reported_std)), "reproduced": (std, n > 1)}
    parts = {name: float(value) for name, (value, has) in known.items() if has}
    if not parts:
        return math.nan, "none"
    basis = "both" if len(parts) == 2 else f"{next(iter(parts))} only"
    return 2 * math.sqrt(sum(value ** 2 for value in parts.values())), basis


def join_reported(rows: pd.DataFrame, reference: pd.DataFrame, prefer: Sequence[str] = ()) -> pd.DataFrame:
    """``rows`` with their reported values: a merge of the rows' keys with the reference on the join
    keys (a null key, such as a variant without a reference method, joins nothing), the reference rows
    of each key chosen from as in :func:`choose_reported`; then Δ = reproduced − reported, the 2σ of
    :func:`two_sigma` and the flag |Δ| > 2σ."""
    rows = rows.reset_index(drop=True)
    keys = rows.rename(columns={**JOIN_NAMES, "group": "_group"})
    merged = []
    for accuracy, on in ((True, ACCURACY_JOIN), (False, QUALITY_JOIN)):
        part = keys[keys["ref_reading"].isin(ACCURACY_READINGS) == accuracy].dropna(subset=on)
        merged.append(part[on + ["_group"]].reset_index(names="_cell")
                      .merge(reference.dropna(subset=on).reset_index(names="_row"), on=on))
    rows = rows.join(_choose(pd.concat(merged), prefer))
    has = rows["reported_table"].notna()
    sigma = [two_sigma(s, std, n) if h else (math.nan, "") for h, s, std, n in
             zip(has, rows["reported_std"], rows["std"], rows["n"])]
    rows["two_sigma"], rows["sigma_basis"] = [t for t, _ in sigma], [b for _, b in sigma]
    rows["difference"] = rows["mean"] - rows["reported"]
    rows["flag"] = [None if not h or math.isnan(t) else abs(d) > t
                    for h, t, d in zip(has, rows["two_sigma"], rows["difference"])]
    return rows


def accuracy_family(spec: dict, cells: pd.DataFrame, reference: pd.DataFrame, keys: VariantKeys,
                    order: Sequence[str], vocabulary: dict) -> pd.DataFrame | None:
    """The rows of one accuracy family over the blocks of its datasets, or None if it has none: every
    variant but the ablation rows, or, in a family of row groups, each group's variants (in its rows'
    order) in the blocks that its table reports and where the results have one of its ablation
    variants (not for the DiT and full-method rows alone); ranked per (block, group, IPC)."""
    ablation_only = ablation_only_methods(vocabulary)
    composite = cells["network_key"].map(lambda key: bool(key and composite_members(key)))
    cells = cells[cells["dataset"].isin(spec["datasets"]) & (composite == bool(spec.get("composite_only")))]
    cells = cells.assign(reference_method=[keys[variant][0] for variant in cells["method"]], metric="best_top1",
                         decimals=DECIMALS, _position=cells["method"].map({v: i for i, v in enumerate(order)}))
    if spec.get("groups"):
        members = pd.DataFrame([(index, table, target, method) for index, table in enumerate(spec["groups"])
                                for target, method in enumerate(vocabulary["ablations"][table]["rows"].values())],
                               columns=["_group", "group", "_target", "reference_method"])
        reported = reference.dropna(subset=["ref_network", "ref_protocol"])
        reported = set(zip(reported["table"], reported["dataset"], reported["ref_network"], reported["ref_protocol"]))
        shown = cells.merge(members.drop_duplicates(["group", "reference_method"]), on="reference_method")
        shown = shown.groupby(BLOCK + ["group"]).filter(lambda part: part["reference_method"].isin(ablation_only).any()
                                                        and tuple(part[["group", "dataset", "network_key",
                                                                        "protocol_base"]].iloc[0]) in reported)
    else:
        shown = cells[~cells["reference_method"].isin(ablation_only)].assign(group="", _group=0, _target=0)
    if shown.empty:
        return None
    ranks = shown.groupby(BLOCK + ["group", "ipc"])["mean"].transform(lambda means: pd.Series(dense_ranks(dict(means))))
    shown = shown.assign(rank=ranks.astype(int)).sort_values(BLOCK + ["_group", "_target", "_position", "ipc"])
    return join_reported(shown.drop(columns=["_group", "_target", "_position"]), reference, spec.get("prefer", []))


def quality_family(spec: dict, metrics: pd.DataFrame, reference: pd.DataFrame,
                   keys: VariantKeys, order: Sequence[str], vocabulary: dict) -> pd.DataFrame | None:
    """The rows of a metrics family (Table 9): per (dataset, IPC), every method × metric the
    vocabulary maps; the reproduced mean ± std is over generation seeds, in the tables' units."""
    names = [metric for metric in QUALITY_METRICS if metric in set(vocabulary["metrics"].values())]
    frame = metrics[metrics["dataset"].isin(spec["datasets"])]
    if frame.empty:
        return None
    table = quality_table(frame, names, ordered_methods(frame, order)).dropna(subset=["mean"])
    ablation_only = ablation_only_methods(vocabulary)
    rows = table[[keys[variant][0] not in ablation_only for variant in table["method"]]]
    scale = rows["metric"].map(lambda metric: QUALITY_METRICS[metric].scale)
    rows = rows.assign(group="", protocol="", protocol_base="", network="IPC " + rows["ipc"].astype(str),
                       network_key=None, reference_method=[keys[variant][0] for variant in rows["method"]],
                       decimals=rows["metric"].map(lambda metric: QUALITY_METRICS[metric].decimals),
                       mean=rows["mean"] * scale, std=rows["std"] * scale)
    return join_reported(rows, reference, spec.get("prefer", [])) if len(rows) else None


def build_families(runs: pd.DataFrame | None, metrics: pd.DataFrame | None, keys: VariantKeys,
                   method_order: Sequence[str] | None, reference: pd.DataFrame, vocabulary: dict) -> dict:
    """The rows of every family of the vocabulary that ``runs`` (accuracy) or ``metrics`` (quality)
    have rows for; ``keys``: every variant's reference method (:func:`variant_methods`)."""
    has_runs, has_metrics = (frame is not None and not frame.empty for frame in (runs, metrics))
    if has_runs:
        cells = reproduced_cells(runs, "best_top1", filter(composite_members, reference["ref_network"].dropna()))
    families = {}
    for name, spec in vocabulary["families"].items():
        quality = spec.get("source") == "metrics"
        if quality and has_metrics:
            rows = quality_family(spec, metrics, reference, keys, method_order or list(keys), vocabulary)
        elif not quality and has_runs:
            rows = accuracy_family(spec, cells, reference, keys, ordered_methods(runs, method_order), vocabulary)
        else:
            rows = None
        if rows is not None:
            families[name] = rows
    return families


# ---------------------------------------------------------------- rendering


def _reported_cells(row) -> list[str]:
    """Reported, Source, Δ, 2σ and Flag entries of one row (empty without a reference row)."""
    if pd.isna(row.reported_table):
        return ["", "", "", "", ""]
    source = row.reported_table
    if row.reported_method.lower() != (row.reference_method or "").lower():
        source += f" ({row.reported_method})"
    if math.isnan(row.two_sigma):
        sigma, flag = NOT_TESTED, NOT_TESTED
    else:
        sigma = f"{row.two_sigma:.{row.decimals}f}" + (NO_REPORTED_STD if row.sigma_basis == "reproduced only" else "")
        flag = FLAG if row.flag else ""
    return [row.reported_text, pipe_escape(source), f"{row.difference:+.{row.decimals}f}", sigma, flag]


def family_title(rows: pd.DataFrame, accuracy: bool) -> str:
    what = ("Top-1 accuracy (%): the reported value ± std and its table beside the reproduced best test top-1 "
            "(the papers' number), mean ± std over generation seeds × evaluation repeats"
            if accuracy else
            "Generation quality: the reported value beside the reproduced mean ± std over generation seeds, "
            "in the units of generation.md (precision, recall and coverage in %)")
    runs = count_range(rows["n"])
    unit = "runs" if accuracy else "seeds"
    key = "method, IPC, network and protocol" if accuracy else "method, IPC and metric"
    return (f"{what} ({runs} {unit} per cell). Δ = reproduced − reported; {FLAG} where |Δ| > 2σ, "
            f"σ = sqrt(std_reported² + std_reproduced²). An empty reported cell: the reference has no row "
            f"for this {key}.")


def family_footnotes(rows: pd.DataFrame, spec: dict, notes: Sequence[str] = ()) -> list[str]:
    """The family's own notes, what the marks mean, rows that disagree, SECONDARY sources,
    mixed provenance, then ``notes``."""
    accuracy = spec.get("source") != "metrics"
    lines = list(spec.get("notes", []))
    if (rows["sigma_basis"] == "reproduced only").any():
        lines.append(f"{NO_REPORTED_STD} after 2σ: the reference gives no std, so σ is the reproduced std alone.")
    if (rows["sigma_basis"] == "none").any():
        lines.append(f"{NOT_TESTED}: neither a reported std nor two reproduced runs, so no flag.")
    if (rows["rank"] == 1).any():
        lines.append("Reproduced numbers: bold = best" + (", underlined = second" if accuracy else "")
                     + " among the rows shown (per IPC" + (" and block" if accuracy else " and metric") + ").")
    lines += [f"{_where(row)}: also reported as {'; '.join(row.disagreeing)} (compared with {row.reported_table})."
              for row in rows.itertuples() if pd.notna(row.reported_table) and row.disagreeing]
    secondary = rows["reported_secondary"].eq(True)
    lines += [f"Source of the rows marked SECONDARY: {source}."
              for source in sorted(set(rows["reported_source"][secondary]))]
    lines += [pooled(_where(row), row.provenance) for row in rows.itertuples() if row.provenance]
    unmapped = sorted(set(rows["method"][rows["reference_method"].isna()]))
    if unmapped:
        lines.append(f"No reference method for {', '.join(unmapped)} (not a reference method name); "
                     "compare one with --method-map VARIANT=METHOD.")
    return lines + list(notes)


def _where(row) -> str:
    return cell_name(row) if row.protocol else f"{row.dataset} · {row.method} · {row.metric} · IPC {row.ipc}"


def _heading(row) -> str:
    if not row.protocol:
        return f"### {row.dataset} · {row.network}"
    base = f" (base {row.protocol_base})" if row.protocol_base != row.protocol else ""
    return f"### {row.dataset} · {row.protocol}{base} · {row.network}"


def family_markdown(rows: pd.DataFrame, spec: dict, notes: Sequence[str] = (), vocabulary: dict | None = None) -> str:
    """Title, then per block (and row group) a table of Method, IPC (or Metric), Reported, Source,
    Reproduced, Δ, 2σ, Flag; then the footnotes."""
    vocabulary = vocabulary or load_vocabulary()
    quality = spec.get("source") == "metrics"
    header = ["Method", "Metric" if quality else "IPC", "Reported", "Source", "Reproduced", "Δ", "2σ", "Flag"]
    align = ["---", "---" if quality else "---:", "---:", "---", "---:", "---:", "---:", ":---:"]
    lines = [f"# Reported vs reproduced: {spec['title']}", "", family_title(rows, not quality), ""]
    previous = None
    for (block, group), part in groupby(rows.itertuples(), key=lambda row: ((row.dataset, row.protocol, row.network),
                                                                             row.group)):
        part = list(part)
        if block != previous:
            lines += [_heading(part[0]), ""]
            previous = block
        if group:
            lines += [f"#### {vocabulary['ablations'][group].get('title', group)}", ""]
        entries = [[pipe_escape(row.method), QUALITY_METRICS[row.metric].label() if quality else str(row.ipc),
                    *(reported := _reported_cells(row))[:2],
                    cell_text(row, lambda c: mean_std(c.mean, c.std, c.decimals), underline=not quality),
                    *reported[2:]] for row in part]
        lines += markdown_table(header, align, entries) + [""]
    return "\n".join(lines + render.notes(family_footnotes(rows, spec, notes)))


def family_csv(name: str, rows: pd.DataFrame) -> str:
    """Long format, one row per comparison, numbers at full precision in the tables' units."""
    has = rows["reported_table"].notna()
    text = lambda column: rows[column].where(has, "")
    return rows.assign(
        family=name, reference_method=rows["reference_method"].fillna(""),
        reported_std=rows["reported_std"].where(has & rows["reported_std"].notna(), None),
        reported_table=text("reported_table"), reported_method=text("reported_method"),
        reported_source=text("reported_source"),
        reported_secondary=rows["reported_secondary"].astype(object).where(has, None),
        also_reported=["; ".join(others) if h else "" for h, others in zip(has, rows["also_reported"])],
        reproduced_mean=rows["mean"], reproduced_std=rows["std"],
        two_sigma=rows["two_sigma"].where(has & rows["two_sigma"].notna(), None),
        mixed_provenance=rows["provenance"].map("; ".join),
    )[CSV_COLUMNS].to_csv(index=False, lineterminator="\n")


def index_markdown(families: dict[str, pd.DataFrame], keys: VariantKeys,
                   reference: pd.DataFrame) -> str:
    """``reported.md``: the families written, every variant's reference method, and how many
    reference rows the vocabulary cannot join, by reason."""
    source = (f"Reference: evaluation/report/reported_results.csv ({len(reference)} rows), mapped by "
              "evaluation/report/reported_vocabulary.yaml; see evaluation/report/reported.py for the join rules.")
    lines = ["# Reported vs reproduced", "", source, ""]
    if families:
        lines += markdown_table(["Table", "Rows", "With a reported value", "Flagged (\\|Δ\\| > 2σ)"],
                                ["---"] + ["---:"] * 3, [
            [f"reported_{name}.md", str(len(rows)), str(rows["reported_table"].notna().sum()),
             str(rows["flag"].eq(True).sum())] for name, rows in families.items()])
    else:
        lines.append("No family of the reference has results in this profile (its datasets are not the papers').")
    how = {"name": "its name", "--method-map": "--method-map", "none": "none: not a reference method name"}
    lines += [""] + markdown_table(["Variant", "Reference method", "From"], ["---"] * 3, [
        [variant, method or MISSING, how[source]] for variant, (method, source) in keys.items()])
    reasons = reference.apply(unjoined_reason, axis=1).dropna()
    if len(reasons):
        lines += ["", f"Reference rows the vocabulary never joins: {len(reasons)} of {len(reference)}.", ""]
        lines += markdown_table(["Reason", "Rows"], ["---", "---:"],
                                [[reason, str(count)] for reason, count in reasons.value_counts().sort_index().items()])
    return "\n".join(lines) + "\n"


def write_reported_tables(runs: pd.DataFrame | None, out_dir: Path, metrics: pd.DataFrame | None = None,
                          method_map: dict[str, str] | None = None, method_order: Sequence[str] | None = None,
                          protocol_notes: dict[str, Sequence[str]] | None = None, method_notes: Sequence[str] = (),
                          reference_path: str | Path = REFERENCE_FILE) -> list[Path]:
    """Write ``reported_<family>.{md,csv}`` for every family with results, and ``reported.md``. An
    accuracy family's footnotes end with ``protocol_notes`` of its protocols, the quality family's
    with the records' metric settings; both then with ``method_notes``."""
    vocabulary = load_vocabulary()
    reference = load_reference(reference_path, vocabulary)
    frames = [frame for frame in (runs, metrics) if frame is not None and not frame.empty]
    keys = variant_methods(dict.fromkeys(v for frame in frames for v in frame["method"]), method_map, vocabulary)
    families = build_families(runs, metrics, keys, method_order, reference, vocabulary)
    paths = []
    for name, rows in families.items():
        spec = vocabulary["families"][name]
        if spec.get("source") == "metrics":
            shown = list(dict.fromkeys(rows["metric"]))
            family_notes = metric_footnotes(metrics[metrics["dataset"].isin(set(rows["dataset"]))], shown)
        else:
            family_notes = [note for protocol in sorted(set(rows["protocol"]))
                            for note in (protocol_notes or {}).get(protocol, [])]
        paths += write_texts(out_dir, f"reported_{name}", {
            ".md": family_markdown(rows, spec, family_notes + list(method_notes), vocabulary),
            ".csv": family_csv(name, rows)})
    return paths + write_texts(out_dir, "reported", {".md": index_markdown(families, keys, reference)})
