"""What each method costs, from Snakemake's ``benchmark:`` files: the efficiency claim, measured.

Reads, under a profile's benchmarks folder (``results/<profile>/benchmarks``, the ``benchmark:``
paths of ``workflow/rules/distill.smk`` and ``backbone.smk``):

- ``distill/<dataset>/<method>/ipc<k>-seed<s>.tsv``: one distillation job (one synthetic set), or
  ``ipc<k>-seed<s>-<start>-<stop>.tsv``: one class chunk of it (``distill_chunk_classes``); a set's
  seconds are then the sum over its chunks plus its merge (``merge_chunks/<dataset>/<method>/
  ipc<k>-seed<s>.tsv``; compute, not wall time of chunks run in parallel), and a set whose chunks do
  not cover its classes is left out and named.
  When a set has both kinds of file (a profile that switched modes), the newer kind is used;
- ``finetune_backbone/<method>-<dataset>.tsv`` (or ``finetune_backbone/<method>/<dataset>.tsv``):
  a method's backbone fine-tuning (Minimax), once per dataset;
- ``encode_latents/<dataset>.tsv``: the real images' VAE latents, shared by the methods that need them.

The number is column ``s`` (wall seconds; the mean over the lines when a job was benchmarked with
repeats). Per (dataset, method): its synthetic sets (IPC × seed), seconds per set (mean ± sample std
over them, so it mixes IPCs: see ``s_per_set_by_ipc``), seconds per image (mean over sets of s / (IPC
× classes)), fine-tune seconds (– when the method has no fine-tuning job), and total = fine-tune + the
sum over its sets (all the method cost on that dataset in this profile). Wall seconds
depend on the machine and on what ran beside a job: compare methods within one profile's run.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation.core import layout
from evaluation.core.errors import InputError
from evaluation.data.datasets import DATASETS
from . import render
from .render import MISSING, markdown_table

CSV_COLUMNS = ["dataset", "method", "sets", "ipcs", "distill_s_per_set", "distill_s_per_set_std",
               "distill_s_per_image", "distill_s_total", "finetune_s", "total_s", "s_per_set_by_ipc"]
# a distill job's benchmark under benchmarks/distill/: a whole set's, or a class chunk's (START-STOP)
NAMES = {"dataset": "[^/]+", "method": "[^/]+", "ipc": r"\d+", "seed": r"\d+"}
DISTILL_SET = layout.regex(f"{layout.SET_JOB}.tsv", **NAMES)
DISTILL_CHUNK = layout.regex(f"{layout.CHUNK_JOB}.tsv", **NAMES, chunk=r"\d+-\d+")
REFERENCE_COSTS = ("sec_per_image", "hours_total_generation", "hours_finetune_approx")


def benchmark_seconds(path: Path) -> float:
    """Wall seconds of one benchmark file: column ``s``, averaged over its lines."""
    frame = pd.read_csv(path, sep="\t")
    if "s" not in frame.columns or frame.empty:
        raise InputError(f"{path}: no 's' column or no line; expected a Snakemake benchmark TSV")
    return float(pd.to_numeric(frame["s"]).mean())


def load_benchmarks(root: str | Path) -> tuple[pd.DataFrame, dict[tuple[str, str], float], dict[str, float]]:
    """Distilled sets (dataset, method, ipc, seed, seconds, chunks, note), fine-tuning seconds by
    (dataset, method) and latent-encoding seconds by dataset, from the benchmarks folder ``root``."""
    root = Path(root)
    files: dict[tuple[str, str, int, int], dict[bool, list[tuple[Path, tuple[int, int] | None]]]] = {}
    for path in sorted((root / "distill").glob("*/*/*.tsv")):
        name = path.relative_to(root / "distill").as_posix()
        match = DISTILL_CHUNK.fullmatch(name) or DISTILL_SET.fullmatch(name)
        if match:
            key = (match["dataset"], match["method"], int(match["ipc"]), int(match["seed"]))
            chunk = tuple(map(int, match["chunk"].split("-"))) if "chunk" in match.re.groupindex else None
            files.setdefault(key, {}).setdefault(chunk is not None, []).append((path, chunk))
    sets = [_distill_set(key, kinds, root) for key, kinds in sorted(files.items())]
    frame = pd.DataFrame(sets, columns=["dataset", "method", "ipc", "seed", "seconds", "chunks", "note"])
    datasets = set(frame["dataset"]) | set(DATASETS)
    finetune = {}
    for path in sorted((root / "finetune_backbone").glob("*/*.tsv")):
        finetune[(path.stem, path.parent.name)] = benchmark_seconds(path)
    for path in sorted((root / "finetune_backbone").glob("*.tsv")):
        dataset = next((d for d in sorted(datasets, key=len, reverse=True) if path.stem.endswith(f"-{d}")), None)
        if dataset is None:
            raise InputError(f"{path}: name is not <method>-<dataset>.tsv for a known dataset; "
                             "expected the finetune_backbone rule's benchmark")
        finetune[(dataset, path.stem[: -len(dataset) - 1])] = benchmark_seconds(path)
    latents = {path.stem: benchmark_seconds(path) for path in sorted((root / "encode_latents").glob("*.tsv"))}
    return frame, finetune, latents


def _distill_set(key: tuple[str, str, int, int], kinds: dict[bool, list], root: Path) -> dict:
    """One set's seconds from its unchunked file or the sum over its chunk files and its merge (the newer kind)."""
    dataset, method, ipc, seed = key
    name = f"{dataset}/{method}/ipc{ipc}-seed{seed}"
    chunked = max(kinds, key=lambda kind: max(path.stat().st_mtime for path, _ in kinds[kind]))
    note = (f"{name}: both an unchunked and chunked benchmarks; the newer ({'chunked' if chunked else 'unchunked'}) "
            "is used" if len(kinds) > 1 else "")
    entries = kinds[chunked]
    seconds = sum(benchmark_seconds(path) for path, _ in entries)
    merge = root / "merge_chunks" / f"{layout.SET_JOB.format(dataset=dataset, method=method, ipc=ipc, seed=seed)}.tsv"
    if chunked and merge.is_file():
        seconds += benchmark_seconds(merge)
    if chunked and dataset in DATASETS:
        covered = sorted(chunk for _, chunk in entries)
        contiguous = all(a[1] == b[0] for a, b in pairwise(covered))
        if not (contiguous and covered[0][0] == 0 and covered[-1][1] == DATASETS[dataset].num_classes):
            seconds = math.nan
            note = f"{name}: chunks {', '.join(f'{a}-{b}' for a, b in covered)} do not cover its classes; left out"
    return {"dataset": dataset, "method": method, "ipc": ipc, "seed": seed, "seconds": seconds,
            "chunks": len(entries) if chunked else 0, "note": note}


def cost_table(jobs: pd.DataFrame, finetune: dict[tuple[str, str], float],
               method_order: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per (dataset, method) with distillation sets (and fine-tuning-only methods too);
    methods in ``method_order`` (others dropped) or sorted; sets without seconds (incomplete
    chunks) are left out."""
    pairs = set(zip(jobs["dataset"], jobs["method"])) | set(finetune)
    if method_order is not None:
        pairs = {pair for pair in pairs if pair[1] in method_order}
    rank = {m: i for i, m in enumerate(method_order)} if method_order is not None else {}
    rows = []
    jobs = jobs[jobs["seconds"].notna()]
    for dataset, method in sorted(pairs, key=lambda p: (p[0], rank.get(p[1], 0), p[1])):
        group = jobs[(jobs["dataset"] == dataset) & (jobs["method"] == method)]
        seconds = group["seconds"].to_numpy(dtype=float)
        classes = DATASETS[dataset].num_classes if dataset in DATASETS else math.nan
        per_image = seconds / (group["ipc"].to_numpy(dtype=float) * classes)
        tuned = finetune.get((dataset, method), math.nan)
        by_ipc = group.groupby("ipc")["seconds"].mean()
        rows.append({
            "dataset": dataset, "method": method, "sets": len(group),
            "ipcs": ", ".join(str(ipc) for ipc in by_ipc.index),
            "distill_s_per_set": float(seconds.mean()) if len(seconds) else math.nan,
            "distill_s_per_set_std": float(np.std(seconds, ddof=1)) if len(seconds) > 1 else math.nan,
            "distill_s_per_image": float(per_image.mean()) if len(seconds) else math.nan,
            "distill_s_total": float(seconds.sum()),
            "finetune_s": tuned,
            "total_s": float(seconds.sum()) + (0.0 if math.isnan(tuned) else tuned),
            "s_per_set_by_ipc": "; ".join(f"{ipc}: {value:.1f}" for ipc, value in by_ipc.items()),
        })
    return pd.DataFrame(rows, columns=CSV_COLUMNS)


def _seconds(value: float, decimals: int = 1) -> str:
    return MISSING if math.isnan(value) else f"{value:.{decimals}f}"


def reference_cost_notes(datasets: Sequence[str], reference: pd.DataFrame | None) -> list[str]:
    """The reference's cost rows (papernotes, SECONDARY) of ``datasets``, as one note each."""
    if reference is None:
        return []
    rows = reference[reference["metric"].isin(REFERENCE_COSTS) & reference["dataset"].isin(datasets)]
    return [f"Reported ({row['source']}): {row['dataset']} {row['method']} IPC {row['ipc']}: "
            f"{row['metric']} = {row['value']}." for _, row in rows.iterrows()]


def costs_markdown(table: pd.DataFrame, latents: dict[str, float], notes: Sequence[str] = ()) -> str:
    """Title, one pipe table per dataset, then the footnotes."""
    lines = ["# Distillation cost", "",
             ("Wall seconds from Snakemake's benchmark files: per set, mean ± std over the method's "
              "synthetic sets (IPC × seed; they mix IPCs, see costs.csv; a class-chunked set counts the sum "
              "of its chunks), per image the mean over sets of s / (IPC × classes); fine-tune: the method's "
              "backbone fine-tuning, once per dataset; total = fine-tune + all its sets. Machine-dependent: "
              "compare methods within one run."), ""]
    for dataset, group in table.groupby("dataset", sort=True):
        rows = [[row["method"], str(row["sets"]), row["ipcs"],
                 _seconds(row["distill_s_per_set"]) + ("" if math.isnan(row["distill_s_per_set_std"])
                                                       else f" ± {row['distill_s_per_set_std']:.1f}"),
                 _seconds(row["distill_s_per_image"], 3), _seconds(row["finetune_s"]), _seconds(row["total_s"])]
                for _, row in group.iterrows()]
        lines += [f"### {dataset}", ""] + markdown_table(
            ["Method", "Sets", "IPCs", "Distill s per set", "s per image", "Fine-tune s", "Total s"],
            ["---", "---:", "---", "---:", "---:", "---:", "---:"], rows) + [""]
    shared = [f"encode_latents on {dataset}: {seconds:.1f} s, shared by the methods that need latents "
              "(and by fine-tuning); in no method's total." for dataset, seconds in sorted(latents.items())
              if dataset in set(table["dataset"])]
    notes = shared + [f"{MISSING} in Fine-tune s: the method has no fine-tuning job."] + list(notes)
    return "\n".join(lines + render.notes(notes))


def write_costs(benchmarks: str | Path, out_dir: Path, method_order: Sequence[str] | None = None,
                reference: pd.DataFrame | None = None) -> list[Path]:
    """Write ``costs.md`` and ``costs.csv`` into ``out_dir``. A missing folder is an error (a wrong
    ``--benchmarks``); a folder without distillation or fine-tuning benchmarks gives empty tables
    that say so (results copied without their benchmarks)."""
    if not Path(benchmarks).is_dir():
        raise InputError(f"--benchmarks {benchmarks}: no such folder; pass the profile's results/<profile>/benchmarks")
    jobs, finetune, latents = load_benchmarks(benchmarks)
    table = cost_table(jobs, finetune, method_order)
    notes = [note for note in jobs["note"] if note] + reference_cost_notes(sorted(set(table["dataset"])), reference)
    if table.empty:
        notes.insert(0, f"No distill/<dataset>/<method>/ipc<k>-seed<s>.tsv or finetune_backbone benchmark under "
                        f"{benchmarks}.")
    return render.write_texts(out_dir, "costs", {".md": costs_markdown(table, latents, notes),
                                                 ".csv": table.to_csv(index=False, lineterminator="\n")})
