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
from dataclasses import dataclass, replace
from itertools import groupby
from pathlib import Path

import pandas as pd
import yaml

from evaluation.core.errors import InputError
from . import render
from .render import (MISSING, Cell, cell_text, count_range, csv_text, dense_ranks, markdown_table, mean_std,
                     pipe_escape, pooled, summarise, write_texts)
from .quality_tables import METRICS as QUALITY_METRICS
from .quality_tables import metric_footnotes, quality_table
from .tables import NETWORK_ARCH, NETWORK_DEPTH, PROTOCOL_BASE, mixed_provenance, ordered_methods

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
        source = next((entry for entry in vocabulary["sources"] if row["source"].startswith(entry["match"])), None)
        if source is None:
            raise InputError(f"{path}: row {index + 2} has source {row['source']!r}, which no entry of "
                             f"{VOCABULARY_FILE.name} 'sources' matches; add one")
        ablation = vocabulary["ablations"].get(row["table"])
        method = (ablation["rows"] if ablation else vocabulary["methods"]).get(row["method"])
        networks = vocabulary["archs"].get(row["arch"])
        rows.append({
            "ref_method": method,
            "ref_network": arch_key(networks) if networks else None,
            "ref_protocol": vocabulary["protocols"].get(row["protocol"]),
            "ref_reading": vocabulary["metrics"].get(row["metric"]),
            "ref_ipc": int(row["ipc"]) if row["ipc"].isdigit() else None,
            "ref_value": _number(row["value"], f"{path}: row {index + 2}: value"),
            "ref_std": _number(row["std"], f"{path}: row {index + 2}: std"),
            "ref_label": f"{source['label']} {table_short(row['table'])}",
            "ref_rank": int(source["rank"]),
            "ref_secondary": bool(source.get("secondary", False)),
        })
    extra = pd.DataFrame(rows, index=frame.index)
    extra["ref_ipc"] = extra["ref_ipc"].astype("Int64")
    return pd.concat([frame, extra], axis=1)


def unjoined_reason(row: pd.Series) -> str | None:
    """Why a reference row can never be joined (the first missing key), None if it can."""
    if pd.isna(row["ref_reading"]):
        return f"metric '{row['metric']}' not in the suite"
    if pd.isna(row["ref_ipc"]):
        return f"IPC '{row['ipc']}' (the whole real training set)"
    if pd.isna(row["ref_method"]):
        return "method not in the suite (or an ablation row with no suite variant)"
    if row["ref_reading"] in ACCURACY_READINGS:
        if pd.isna(row["ref_network"]):
            return "network not stated or not in the suite"
        if pd.isna(row["ref_protocol"]):
            return "protocol not in the suite"
    return None


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
                    vocabulary: dict | None = None) -> dict[str, tuple[str | None, str]]:
    """Each variant's reference method and how it was found: ``--method-map``, its ``name`` (a
    known reference method), or none (None)."""
    vocabulary = vocabulary or load_vocabulary()
    known = reference_methods(vocabulary)
    method_map = method_map or {}
    unknown = sorted({target for target in method_map.values() if target not in known})
    if unknown:
        raise InputError(f"--method-map: unknown reference method '{unknown[0]}'; valid: {', '.join(sorted(known))}")
    resolved = {}
    for variant in variants:
        if variant in method_map:
            resolved[variant] = (method_map[variant], "--method-map")
        elif variant in known:
            resolved[variant] = (variant, "name")
        else:
            resolved[variant] = (None, "none")
    return resolved


# ---------------------------------------------------------------- reproduced cells


Reproduced = Cell  # mean, sample std (0 for one run), run count and provenance of a reproduced cell


@dataclass(frozen=True)
class BlockKey:
    """One (dataset, protocol, network) of the results, with the keys a reference row joins on."""

    dataset: str
    protocol: str
    protocol_base: str
    network: str            # the profile's network name (``mean(a, b)`` for a composite)
    network_key: str | None  # arch-depth from the manifest (``mean(...)`` for a composite)


def _with_keys(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with ``_network_key`` and ``_protocol_base`` (the protocol's name where no base is
    recorded: a reference protocol's own name is its base)."""
    runs = runs.copy()
    absent = pd.Series(None, index=runs.index)
    runs["_network_key"] = [network_key(a, d) for a, d in zip(runs.get(NETWORK_ARCH, absent),
                                                               runs.get(NETWORK_DEPTH, absent))]
    runs["_protocol_base"] = [p if b is None or pd.isna(b) else b
                              for p, b in zip(runs["protocol"], runs.get(PROTOCOL_BASE, absent))]
    return runs


def reproduced_blocks(runs: pd.DataFrame, reading: str = "best_top1",
                      composites: Iterable[str] = ()) -> dict[BlockKey, dict[tuple[str, int], Reproduced]]:
    """Cells of every (dataset, protocol, network) of ``runs``, and of every composite network key
    in ``composites`` whose member networks a (dataset, protocol) has (each member matched by
    arch + depth to exactly one of the profile's networks): per (variant, IPC, seed, repeat) the
    mean over the members, then the cell over those means. A cell with a null reading, or a
    composite cell missing a member for some (seed, repeat), is left out."""
    runs = _with_keys(runs)
    blocks: dict[BlockKey, dict[tuple[str, int], Reproduced]] = {}
    for (dataset, protocol, network), block in runs.groupby(["dataset", "protocol", "network"], sort=True):
        key = BlockKey(dataset, protocol, block["_protocol_base"].iloc[0], network, block["_network_key"].iloc[0])
        blocks[key] = {(row.method, int(row.ipc)): Reproduced(row.mean, row.std, row.n, provenance=row.provenance)
                       for row in summarise(block, ["method", "ipc"], reading, mixed_provenance).itertuples()}
    for composite in sorted(set(composites)):
        members = composite_members(composite)
        for (dataset, protocol), pair in runs.groupby(["dataset", "protocol"], sort=True):
            names = {}
            for member in members:
                found = sorted(set(pair.loc[pair["_network_key"] == member, "network"]))
                if len(found) == 1:
                    names[member] = found[0]
            if len(names) < len(members):
                continue
            shown = [names[member] for member in members]
            key = BlockKey(dataset, protocol, pair["_protocol_base"].iloc[0], f"mean({', '.join(shown)})", composite)
            blocks[key] = _composite_cells(pair[pair["network"].isin(shown)], shown, reading)
    return blocks


def _composite_cells(runs: pd.DataFrame, networks: list[str], reading: str) -> dict[tuple[str, int], Reproduced]:
    # observed (seed, repeat) pairs only; a member network missing for one of them leaves a NaN
    means = (runs.groupby(["method", "ipc", "seed", "repeat", "network"], sort=False)[reading].mean()
             .unstack("network").reindex(columns=networks).mean(axis=1, skipna=False).rename(reading).reset_index())
    provenance = {key: tuple(f"{network}: {note}" for network in networks
                             for note in mixed_provenance(group[group["network"] == network]))
                  for key, group in runs.groupby(["method", "ipc"], sort=False)}
    return {(row.method, int(row.ipc)): Reproduced(row.mean, row.std, row.n, provenance=provenance[row.method, row.ipc])
            for row in summarise(means, ["method", "ipc"], reading).itertuples()}


# ---------------------------------------------------------------- comparison


@dataclass(frozen=True)
class Reported:
    """The chosen reference row of a cell, and the other rows that report the same key."""

    value: float
    std: float
    text: str               # value ± std as the CSV writes them
    label: str              # short table name, e.g. "DMGD S5"
    method: str             # the row's reported method name
    source: str
    secondary: bool
    others: tuple[str, ...]  # "label: value ± std" of the other rows, in priority order
    disagreeing: tuple[str, ...]  # those whose value or std differ from the chosen row's


def _text(row: pd.Series) -> str:
    return f"{row['value']} ± {row['std']}" if row["std"] else str(row["value"])


def choose_reported(candidates: pd.DataFrame, prefer: Sequence[str] = (), group: str | None = None) -> Reported | None:
    """The reference row a cell is compared with: the group's own table first, then the family's
    ``prefer`` order of table labels, then source rank, then CSV order; None without candidates."""
    if candidates.empty:
        return None
    order = sorted(candidates.index, key=lambda i: (
        0 if group is not None and candidates.at[i, "table"] == group else 1,
        prefer.index(candidates.at[i, "ref_label"]) if candidates.at[i, "ref_label"] in prefer else len(prefer),
        candidates.at[i, "ref_rank"], i))
    chosen, rest = candidates.loc[order[0]], [candidates.loc[i] for i in order[1:]]
    others = tuple(f"{row['ref_label']}: {_text(row)}" for row in rest)
    disagreeing = tuple(f"{row['ref_label']}: {_text(row)}" for row in rest if _disagree(row, chosen))
    return Reported(float(chosen["ref_value"]), float(chosen["ref_std"]), _text(chosen), chosen["ref_label"],
                    chosen["method"], chosen["source"], bool(chosen["ref_secondary"]), others, disagreeing)


def _disagree(row: pd.Series, chosen: pd.Series) -> bool:
    """Another value, or another std where both rows give one (a row without a std agrees)."""
    if row["ref_value"] != chosen["ref_value"]:
        return True
    return not (pd.isna(row["ref_std"]) or pd.isna(chosen["ref_std"])) and row["ref_std"] != chosen["ref_std"]


def two_sigma(reported_std: float, reproduced: Reproduced) -> tuple[float, str]:
    """2·sqrt(std_reported² + std_reproduced²) and which stds it uses (``both``, ``reproduced
    only``, ``reported only``); NaN and ``none`` when neither is known (the reproduced std needs
    two runs)."""
    parts = {}
    if not pd.isna(reported_std):
        parts["reported"] = reported_std
    if reproduced.n > 1:
        parts["reproduced"] = reproduced.std
    if not parts:
        return math.nan, "none"
    basis = "both" if len(parts) == 2 else f"{next(iter(parts))} only"
    return 2 * math.sqrt(sum(value ** 2 for value in parts.values())), basis


@dataclass(frozen=True)
class Comparison:
    """One line of a reported-vs-reproduced table."""

    group: str | None
    block: BlockKey
    method: str
    reference_method: str | None
    ipc: int
    metric: str
    reported: Reported | None
    reproduced: Reproduced  # in the table's units; rank: among the rows shown (1 = best)
    decimals: int = DECIMALS

    @property
    def difference(self) -> float:
        return math.nan if self.reported is None else self.reproduced.mean - self.reported.value

    @property
    def sigma(self) -> tuple[float, str]:
        return (math.nan, "") if self.reported is None else two_sigma(self.reported.std, self.reproduced)

    @property
    def flag(self) -> bool | None:
        """True when |Δ| exceeds the combined 2σ, None when there is nothing to test."""
        threshold, _ = self.sigma
        return None if self.reported is None or math.isnan(threshold) else abs(self.difference) > threshold


@dataclass(frozen=True)
class Family:
    name: str
    title: str
    kind: str               # "accuracy" or "quality"
    rows: tuple[Comparison, ...]
    notes: tuple[str, ...]


ACCURACY_JOIN = ["dataset", "ref_method", "ref_ipc", "ref_reading", "ref_network", "ref_protocol"]
QUALITY_JOIN = ACCURACY_JOIN[:4]   # quality metrics join on dataset, method, IPC and metric only


def join_reported(rows: Sequence[Comparison], reference: pd.DataFrame, prefer: Sequence[str] = ()) -> tuple:
    """``rows`` with their reported values: a merge of the rows' keys with the reference on the join
    keys (a null key, such as a variant without a reference method, joins nothing), the reference rows
    of each key chosen from by :func:`choose_reported`."""
    keys = pd.DataFrame([(row.block.dataset, row.reference_method, row.ipc, row.metric, row.block.network_key,
                          row.block.protocol_base) for row in rows], columns=ACCURACY_JOIN)
    joined = {}
    for accuracy, on in ((True, ACCURACY_JOIN), (False, QUALITY_JOIN)):
        part = keys[keys["ref_reading"].isin(ACCURACY_READINGS) == accuracy].dropna(subset=on)
        merged = part[on].reset_index(names="_cell").merge(reference.dropna(subset=on).reset_index(names="_row"), on=on)
        joined.update({cell: group.set_index("_row") for cell, group in merged.groupby("_cell")})
    return tuple(replace(row, reported=choose_reported(joined.get(index, reference.iloc[0:0]), prefer, row.group))
                 for index, row in enumerate(rows))


def _reports_block(reference: pd.DataFrame, table: str, block: BlockKey) -> bool:
    """Whether reference table ``table`` has a row for ``block``'s dataset, network and protocol."""
    mask = ((reference["table"] == table) & (reference["dataset"] == block.dataset)
            & (reference["ref_network"] == block.network_key) & (reference["ref_protocol"] == block.protocol_base))
    return bool(mask.fillna(False).any())


def accuracy_family(name: str, spec: dict, blocks: dict[BlockKey, dict[tuple[str, int], Reproduced]],
                    reference: pd.DataFrame, keys: dict[str, tuple[str | None, str]], order: Sequence[str],
                    vocabulary: dict) -> Family | None:
    """The comparisons of one accuracy family over the blocks of its datasets, or None if it has none."""
    ablation_only = ablation_only_methods(vocabulary)
    prefer = spec.get("prefer", [])
    if spec.get("groups"):
        groups = []
        for table in spec["groups"]:
            targets = list(vocabulary["ablations"][table]["rows"].values())
            groups.append((table, lambda method, targets=targets: method in targets, targets))
    else:
        groups = [(None, lambda method: method not in ablation_only, None)]
    rows = []
    for block in sorted(blocks, key=lambda b: (b.dataset, b.protocol, b.network)):
        if block.dataset not in spec["datasets"]:
            continue
        if bool(spec.get("composite_only")) != bool(block.network_key and composite_members(block.network_key)):
            continue
        cells = blocks[block]
        present = [variant for variant in order if any(method == variant for method, _ in cells)]
        for table, wanted, targets in groups:
            variants = [variant for variant in present if wanted(keys[variant][0])]
            if targets is not None:
                # a group is shown where its table reports this block and the results have one of its
                # ablation variants (not for the DiT and full-method rows alone)
                if not _reports_block(reference, table, block) or not any(keys[v][0] in ablation_only
                                                                          for v in variants):
                    continue
                variants.sort(key=lambda v: targets.index(keys[v][0]))
            shown = {(v, ipc): cell for (v, ipc), cell in cells.items() if v in variants}
            ranks = {}
            for ipc in {ipc for _, ipc in shown}:
                ranks.update(dense_ranks({k: c.mean for k, c in shown.items() if k[1] == ipc}))
            for variant in variants:
                method = keys[variant][0]
                for ipc in sorted(ipc for v, ipc in shown if v == variant):
                    rows.append(Comparison(table, block, variant, method, ipc, "best_top1", None,
                                           replace(shown[(variant, ipc)], rank=ranks[(variant, ipc)])))
    if not rows:
        return None
    return Family(name, spec["title"], "accuracy", join_reported(rows, reference, prefer), tuple(spec.get("notes", [])))


def quality_family(name: str, spec: dict, metrics: pd.DataFrame, reference: pd.DataFrame,
                   keys: dict[str, tuple[str | None, str]], order: Sequence[str], vocabulary: dict) -> Family | None:
    """The comparisons of a metrics family (Table 9): per (dataset, IPC), every method × metric the
    vocabulary maps; the reproduced mean ± std is over generation seeds, in the tables' units."""
    names = [metric for metric in QUALITY_METRICS if metric in set(vocabulary["metrics"].values())]
    frame = metrics[metrics["dataset"].isin(spec["datasets"])]
    if frame.empty:
        return None
    table = quality_table(frame, names, ordered_methods(frame, order))
    rows = []
    for dataset in table.datasets:
        ablation_only = ablation_only_methods(vocabulary)
        variants = [v for v in table.methods[dataset] if keys[v][0] not in ablation_only]
        for ipc in table.ipcs[dataset]:
            block = BlockKey(dataset, "", "", f"IPC {ipc}", None)
            for variant in variants:
                for metric in names:
                    cell = table.cells.get((dataset, ipc, variant, metric))
                    if cell is None:
                        continue
                    scale = QUALITY_METRICS[metric].scale
                    rows.append(Comparison(None, block, variant, keys[variant][0], ipc, metric, None, Reproduced(
                        cell.mean * scale, cell.std * scale, cell.n, cell.rank, cell.provenance),
                        QUALITY_METRICS[metric].decimals))
    if not rows:
        return None
    return Family(name, spec["title"], "quality", join_reported(rows, reference, spec.get("prefer", [])),
                  tuple(spec.get("notes", [])))


def _variant_keys(runs: pd.DataFrame | None, metrics: pd.DataFrame | None, method_map: dict[str, str] | None,
                  vocabulary: dict) -> dict[str, tuple[str | None, str]]:
    """:func:`variant_methods` of every variant of ``runs`` then ``metrics``, in order of appearance."""
    frames = [frame for frame in (runs, metrics) if frame is not None and not frame.empty]
    return variant_methods(dict.fromkeys(v for frame in frames for v in frame["method"]), method_map, vocabulary)


def build_families(runs: pd.DataFrame | None, metrics: pd.DataFrame | None = None,
                   method_map: dict[str, str] | None = None, method_order: Sequence[str] | None = None,
                   reference: pd.DataFrame | None = None, vocabulary: dict | None = None) -> list[Family]:
    """Every family of the vocabulary that ``runs`` (accuracy) or ``metrics`` (quality) have rows for."""
    vocabulary = vocabulary or load_vocabulary()
    reference = load_reference(vocabulary=vocabulary) if reference is None else reference
    keys = _variant_keys(runs, metrics, method_map, vocabulary)
    families = []
    blocks = None
    for name, spec in vocabulary["families"].items():
        if spec.get("source") == "metrics":
            family = (quality_family(name, spec, metrics, reference, keys, method_order or list(keys), vocabulary)
                      if metrics is not None and not metrics.empty else None)
        else:
            if runs is None or runs.empty:
                continue
            if blocks is None:
                composites = {key for key in reference["ref_network"].dropna() if composite_members(key)}
                blocks = reproduced_blocks(runs, "best_top1", composites)
            family = accuracy_family(name, spec, blocks, reference, keys,
                                     ordered_methods(runs, method_order), vocabulary)
        if family is not None:
            families.append(family)
    return families


# ---------------------------------------------------------------- rendering


def _reproduced_text(row: Comparison) -> str:
    """The reproduced mean ± std in the table's units, bold best, underlined second (accuracy only), ``†``."""
    return cell_text(row.reproduced, lambda c: mean_std(c.mean, c.std, row.decimals),
                     underline=row.metric in ACCURACY_READINGS)


def _reported_cells(row: Comparison) -> list[str]:
    """Reported, Source, Δ, 2σ and Flag entries of one row (empty without a reference row)."""
    if row.reported is None:
        return ["", "", "", "", ""]
    reported = row.reported
    source = reported.label
    if reported.method.lower() != (row.reference_method or "").lower():
        source += f" ({reported.method})"
    threshold, basis = row.sigma
    if math.isnan(threshold):
        sigma, flag = NOT_TESTED, NOT_TESTED
    else:
        sigma = f"{threshold:.{row.decimals}f}" + (NO_REPORTED_STD if basis == "reproduced only" else "")
        flag = FLAG if row.flag else ""
    return [reported.text, pipe_escape(source), f"{row.difference:+.{row.decimals}f}", sigma, flag]


def family_title(family: Family) -> str:
    what = ("Top-1 accuracy (%): the reported value ± std and its table beside the reproduced best test top-1 "
            "(the papers' number), mean ± std over generation seeds × evaluation repeats"
            if family.kind == "accuracy" else
            "Generation quality: the reported value beside the reproduced mean ± std over generation seeds, "
            "in the units of generation.md (precision, recall and coverage in %)")
    runs = count_range(sorted({row.reproduced.n for row in family.rows}))
    unit = "runs" if family.kind == "accuracy" else "seeds"
    key = "method, IPC, network and protocol" if family.kind == "accuracy" else "method, IPC and metric"
    return (f"{what} ({runs} {unit} per cell). Δ = reproduced − reported; {FLAG} where |Δ| > 2σ, "
            f"σ = sqrt(std_reported² + std_reproduced²). An empty reported cell: the reference has no row "
            f"for this {key}.")


def family_footnotes(family: Family, notes: Sequence[str] = ()) -> list[str]:
    """The family's own notes, what the marks mean, rows that disagree, SECONDARY sources,
    mixed provenance, then ``notes``."""
    lines = list(family.notes)
    if any(row.sigma[1] == "reproduced only" for row in family.rows):
        lines.append(f"{NO_REPORTED_STD} after 2σ: the reference gives no std, so σ is the reproduced std alone.")
    if any(row.sigma[1] == "none" for row in family.rows):
        lines.append(f"{NOT_TESTED}: neither a reported std nor two reproduced runs, so no flag.")
    if any(row.reproduced.best for row in family.rows):
        lines.append("Reproduced numbers: bold = best" + (", underlined = second" if family.kind == "accuracy" else "")
                     + " among the rows shown (per IPC" + (" and block" if family.kind == "accuracy" else " and metric")
                     + ").")
    for row in family.rows:
        if row.reported is not None and row.reported.disagreeing:
            lines.append(f"{_where(row)}: also reported as {'; '.join(row.reported.disagreeing)} "
                         f"(compared with {row.reported.label}).")
    secondary = sorted({row.reported.source for row in family.rows if row.reported and row.reported.secondary})
    lines += [f"Source of the rows marked SECONDARY: {source}." for source in secondary]
    for row in family.rows:
        if row.reproduced.provenance:
            lines.append(pooled(_where(row), row.reproduced.provenance))
    unmapped = sorted({row.method for row in family.rows if row.reference_method is None})
    if unmapped:
        lines.append(f"No reference method for {', '.join(unmapped)} (not a reference method name); "
                     "compare one with --method-map VARIANT=METHOD.")
    return lines + list(notes)


def _where(row: Comparison) -> str:
    block = row.block
    if block.protocol:
        return f"{block.dataset} · {block.protocol} · {block.network} · {row.method} · IPC {row.ipc}"
    return f"{block.dataset} · {row.method} · {row.metric} · IPC {row.ipc}"


def _heading(block: BlockKey) -> str:
    if not block.protocol:
        return f"### {block.dataset} · {block.network}"
    base = f" (base {block.protocol_base})" if block.protocol_base != block.protocol else ""
    return f"### {block.dataset} · {block.protocol}{base} · {block.network}"


def family_markdown(family: Family, notes: Sequence[str] = (), vocabulary: dict | None = None) -> str:
    """Title, then per block (and row group) a table of Method, IPC (or Metric), Reported, Source,
    Reproduced, Δ, 2σ, Flag; then the footnotes."""
    vocabulary = vocabulary or load_vocabulary()
    quality = family.kind == "quality"
    header = ["Method", "Metric" if quality else "IPC", "Reported", "Source", "Reproduced", "Δ", "2σ", "Flag"]
    align = ["---", "---" if quality else "---:", "---:", "---", "---:", "---:", "---:", ":---:"]
    lines = [f"# Reported vs reproduced: {family.title}", "", family_title(family), ""]
    previous = None
    for (block, group), rows in groupby(family.rows, key=lambda row: (row.block, row.group)):
        if block != previous:
            lines += [_heading(block), ""]
            previous = block
        if group is not None:
            lines += [f"#### {vocabulary['ablations'][group].get('title', group)}", ""]
        entries = [[pipe_escape(row.method), QUALITY_METRICS[row.metric].label() if quality else str(row.ipc),
                    *(reported := _reported_cells(row))[:2], _reproduced_text(row), *reported[2:]] for row in rows]
        lines += markdown_table(header, align, entries) + [""]
    return "\n".join(lines + render.notes(family_footnotes(family, notes)))


def family_csv(family: Family) -> str:
    """Long format, one row per comparison, numbers at full precision in the tables' units."""
    records = []
    for row in family.rows:
        reported, threshold = row.reported, row.sigma
        records.append({
            "family": family.name, "group": row.group or "", "dataset": row.block.dataset,
            "protocol": row.block.protocol, "protocol_base": row.block.protocol_base,
            "network": row.block.network, "method": row.method, "reference_method": row.reference_method or "",
            "ipc": row.ipc, "metric": row.metric,
            "reported": reported.value if reported else None,
            "reported_std": reported.std if reported and not math.isnan(reported.std) else None,
            "reported_table": reported.label if reported else "",
            "reported_method": reported.method if reported else "",
            "reported_source": reported.source if reported else "",
            "reported_secondary": reported.secondary if reported else None,
            "also_reported": "; ".join(reported.others) if reported else "",
            "reproduced_mean": row.reproduced.mean, "reproduced_std": row.reproduced.std,
            "n": row.reproduced.n, "rank": row.reproduced.rank,
            "difference": None if reported is None else row.difference,
            "two_sigma": None if reported is None or math.isnan(threshold[0]) else threshold[0],
            "sigma_basis": threshold[1], "flag": row.flag,
            "mixed_provenance": "; ".join(row.reproduced.provenance),
        })
    return csv_text(records, CSV_COLUMNS)


def index_markdown(families: Sequence[Family], keys: dict[str, tuple[str | None, str]],
                   reference: pd.DataFrame) -> str:
    """``reported.md``: the families written, every variant's reference method, and how many
    reference rows the vocabulary cannot join, by reason."""
    source = (f"Reference: evaluation/report/reported_results.csv ({len(reference)} rows), mapped by "
              "evaluation/report/reported_vocabulary.yaml; see evaluation/report/reported.py for the join rules.")
    lines = ["# Reported vs reproduced", "", source, ""]
    if families:
        lines += markdown_table(["Table", "Rows", "With a reported value", "Flagged (\\|Δ\\| > 2σ)"],
                                ["---"] + ["---:"] * 3, [
            [f"reported_{family.name}.md", str(len(family.rows)),
             str(sum(row.reported is not None for row in family.rows)),
             str(sum(bool(row.flag) for row in family.rows if row.reported is not None))] for family in families])
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
    families = build_families(runs, metrics, method_map, method_order, reference, vocabulary)
    paths = []
    for family in families:
        if family.kind == "quality":
            shown = list(dict.fromkeys(row.metric for row in family.rows))
            datasets = {row.block.dataset for row in family.rows}
            family_notes = metric_footnotes(metrics[metrics["dataset"].isin(datasets)], shown)
        else:
            protocols = dict.fromkeys(row.block.protocol for row in family.rows)
            family_notes = [note for protocol in sorted(protocols) for note in (protocol_notes or {}).get(protocol, [])]
        family_notes += list(method_notes)
        paths += write_texts(out_dir, f"reported_{family.name}", {
            ".md": family_markdown(family, family_notes, vocabulary), ".csv": family_csv(family)})
    keys = _variant_keys(runs, metrics, method_map, vocabulary)
    return paths + write_texts(out_dir, "reported", {".md": index_markdown(families, keys, reference)})

