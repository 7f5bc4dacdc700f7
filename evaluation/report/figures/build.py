"""Entry point of the ``figures`` rule: every figure of a profile, and ``index.md`` captioning them.

``python workflow/scripts/figures.py --results RESULTS --methods a,b,c --datasets d1,d2 --ipcs 1,10
--seeds 0,1 --extractor NAME [--features | --no-features] [--teacher-root DIR] [--real-split train]
[--max-real 1000] [--max-synthetic 200] [--perplexity 30] [--max-classes 10] [--max-samples 10]
[--tile 128] [--seed 0] [--out DIR] [--device cpu] [--threads 1]``

reads only stored results under ``RESULTS`` (``results/<profile>``), never recomputing a set or an
evaluation (the synthetic sets' features are computed with ``--extractor``, as the metrics do):

- ``synsets/<dataset>/<method>/ipc<k>/seed<s>/``: sample grids, t-SNE, OT loss (its manifest);
- ``features/<dataset>/<extractor>-<real-split>.pt``: the real side of the t-SNE;
- ``teachers/<dataset>/`` (or ``--teacher-root``), extractor ``teacher`` only;
- ``tables/runs.csv``: accuracy against IPC;

The t-SNE works on capped, seeded samples (``sampling``): at most ``--max-real`` rows of the real
features and ``--max-synthetic`` images per (method, IPC), so that its cost does not grow with the
dataset; only the images a figure shows or embeds are decoded. ``--no-features`` (the workflow's
``metrics.enabled: false``) draws no t-SNE and reads neither real features nor a teacher.

and writes, atomically, under ``--out`` (default ``RESULTS/figures``): ``samples/<dataset>/<method>-
ipc<k>-seed<s>.png``, ``tsne/<dataset>-ipc<k>.png``, ``ot_loss/<dataset>-ipc<k>.png`` (only where
some variant records ``final_ot_loss``), ``accuracy/<dataset>-<protocol>-<network>.png`` and
``index.md``. Every random choice derives from ``--seed`` (the config's ``metrics.seed``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from evaluation.core import layout
from evaluation.core.artifacts import atomic_path, manifest, write_manifest, write_text_atomic
from evaluation.core.errors import InputError
from evaluation.core.seeding import SubsetStream, derive_seed
from evaluation.data.datasets import dataset_info
from evaluation.data.synsets import index_synset
from evaluation.metrics.extractors import create_extractor, list_extractors
from evaluation.metrics.measure import load_real_features
from evaluation.metrics.ot_distance import real_subset
from .accuracy import READINGS, draw_accuracy
from .ot_loss import RECORD, draw_ot_loss, read_ot_losses
from .render import method_colors
from .samples import draw_sample_grid
from .sampling import grid_rows, read_images, stratified_sample
from .tsne import draw_tsne, joint_embedding

RUNS_COLUMNS = ["dataset", "method", "ipc", "seed", "protocol", "network", "repeat", "best_top1"]
SECTIONS = {"samples": "Sample grids", "tsne": "t-SNE of real and synthetic features",
            "ot_loss": "Final OT loss per sample", "accuracy": "Accuracy against IPC"}


class FigureInputError(InputError):
    """A stored result the figures need is missing or does not fit the request; one line."""


@dataclass(frozen=True)
class FigureSpec:
    """What to draw, from which results; the CLI's arguments."""

    results: Path
    out: Path
    methods: list[str]
    datasets: list[str]
    ipcs: list[int]
    seeds: list[int]
    extractor: str
    weights: Path | None = None           # the extractor's weight file (metrics.<extractor>_weights)
    features: bool = True                 # the t-SNE and its real features (metrics.enabled)
    teacher_root: Path | None = None      # default: results/teachers
    real_split: str = "train"
    max_real: int = 1000                  # real points of the t-SNE (metrics.figure_max_real)
    max_synthetic: int = 200              # synthetic points per (method, IPC) (metrics.figure_max_synthetic)
    perplexity: float = 30.0
    max_classes: int = 10
    max_samples: int = 10
    tile: int = 128
    seed: int = 0
    device: str = "cpu"

    def synset_dir(self, dataset: str, method: str, ipc: int, seed: int) -> Path:
        return self.results / layout.SYNSET.format(dataset=dataset, method=method, ipc=ipc, seed=seed)

    def real_features(self, dataset: str) -> Path:
        return self.results / layout.FEATURES.format(dataset=dataset, extractor=self.extractor, split=self.real_split)

    def teacher_dir(self, dataset: str) -> Path:
        return (self.teacher_root / dataset if self.teacher_root
                else self.results / layout.TEACHER.format(dataset=dataset))

    @property
    def runs(self) -> Path:
        return self.results / layout.TABLES / "runs.csv"


@dataclass(frozen=True)
class Entry:
    """One line of the index: a figure (``path`` relative to the output) or a figure not drawn."""

    section: str
    path: str | None
    caption: str


# ----------------------------------------------------------------------------- inputs

def check_inputs(spec: FigureSpec) -> pd.DataFrame:
    """Fail fast, in one line, on any missing input; returns the runs of the requested cells."""
    for option in ("methods", "datasets", "ipcs", "seeds"):
        if not getattr(spec, option):
            raise FigureInputError(f"--{option} is empty; give at least one, comma-separated")
    if spec.extractor not in list_extractors():
        raise FigureInputError(f"unknown feature extractor '{spec.extractor}'; valid: {', '.join(list_extractors())}")
    for dataset in spec.datasets:
        dataset_info(dataset)
        root = spec.results / layout.DATASET_SETS.format(dataset=dataset)
        for method in spec.methods:
            if not (root / method).is_dir():
                found = ", ".join(sorted(p.name for p in root.iterdir() if p.is_dir())) if root.is_dir() else "none"
                raise FigureInputError(f"unknown method '{method}': no {root / method}/ (methods there: {found}); "
                                       "fix --methods or run its distill jobs")
            for ipc in spec.ipcs:
                for seed in spec.seeds:
                    if not spec.synset_dir(dataset, method, ipc, seed).is_dir():
                        raise FigureInputError(f"missing synthetic set {spec.synset_dir(dataset, method, ipc, seed)}"
                                               "; run its distill job or fix --ipcs/--seeds")
        if not spec.features:
            continue
        if not spec.real_features(dataset).is_file():
            raise FigureInputError(f"missing real features {spec.real_features(dataset)}; run the real_features "
                                   "job of this extractor and split first, or pass --no-features")
        if spec.extractor == "teacher" and not (spec.teacher_dir(dataset) / "model.pt").is_file():
            raise FigureInputError(f"extractor teacher needs {spec.teacher_dir(dataset) / 'model.pt'}; train the "
                                   "teacher first or pass --teacher-root")
    return read_runs(spec)


def read_runs(spec: FigureSpec) -> pd.DataFrame:
    """The rows of ``runs.csv`` of the requested datasets, methods, IPCs and seeds."""
    if not spec.runs.is_file():
        raise FigureInputError(f"no {spec.runs}; build the tables first (snakemake tables)")
    runs = pd.read_csv(spec.runs)
    missing = [c for c in RUNS_COLUMNS if c not in runs.columns]
    if missing:
        raise FigureInputError(f"{spec.runs} lacks columns {missing}; rebuild it with evaluation.report")
    if "val_selected_top1" not in runs.columns:
        runs["val_selected_top1"] = np.nan
    if runs.empty:   # a profile that evaluates nothing (evaluation.enabled false): no accuracy figures
        return runs
    runs = runs[runs["dataset"].isin(spec.datasets) & runs["method"].isin(spec.methods)
                & runs["ipc"].isin(spec.ipcs) & runs["seed"].isin(spec.seeds)]
    for dataset in spec.datasets:
        for method in spec.methods:
            if not ((runs["dataset"] == dataset) & (runs["method"] == method)).any():
                raise FigureInputError(f"{spec.runs} has no run of method '{method}' on {dataset} at IPC "
                                       f"{spec.ipcs}, seeds {spec.seeds}; evaluate it or drop it from --methods")
    return runs


# ----------------------------------------------------------------------------- figures

def draw_all(spec: FigureSpec) -> list[Entry]:
    """Draw every figure and write the index; returns the index entries."""
    runs = check_inputs(spec)
    colors = method_colors(spec.methods)
    entries = []
    for dataset in spec.datasets:
        entries += dataset_figures(spec, dataset, colors)
        entries += accuracy_figures(spec, dataset, runs[runs["dataset"] == dataset], colors)
    write_text_atomic(spec.out / "index.md", index_markdown(spec, entries))
    return entries


def dataset_figures(spec: FigureSpec, dataset: str, colors: dict[str, tuple]) -> list[Entry]:
    """Sample grids, t-SNE and OT loss of one dataset, decoding only the images they use, once."""
    info = dataset_info(dataset)
    if spec.features:
        real, real_total = real_sample(spec, dataset)
        teacher = spec.teacher_dir(dataset) if spec.extractor == "teacher" else None
        extractor = create_extractor(spec.extractor, spec.device, teacher, spec.weights)
    entries = []
    for ipc in spec.ipcs:
        synthetic, losses = {}, {}
        for method in spec.methods:
            directories = [spec.synset_dir(dataset, method, ipc, seed) for seed in spec.seeds]
            grids, sample = read_samples(spec, directories, info.num_classes,
                                         derive_seed(spec.seed, SubsetStream.SYNTHETIC_SUBSET, ipc))
            for seed, (images, labels) in zip(spec.seeds, grids):
                entries.append(sample_grid(spec, info.class_names, images, labels, dataset, method, ipc, seed))
            if spec.features:
                images, labels = sample
                synthetic[method] = (extractor.features(images), labels)
            method_losses = [loss for d in directories if (loss := read_ot_losses(d)) is not None]
            if method_losses:
                losses[method] = np.concatenate(method_losses)
        if spec.features:
            entries.append(tsne_figure(spec, info.class_names, real, real_total, synthetic, dataset, ipc))
        entries.append(ot_loss_figure(spec, losses, colors, dataset, ipc, info.num_classes))
    if not spec.features:
        entries.append(Entry("tsne", None, f"{dataset}: not drawn: feature figures are off (--no-features: "
                             "metrics.enabled is false, so no real features are computed)"))
    return entries


def real_sample(spec: FigureSpec, dataset: str) -> tuple[np.ndarray, int]:
    """The t-SNE's real features: a seeded subset of at most ``max_real`` stored rows, and the row count."""
    record = load_real_features(spec.real_features(dataset), spec.extractor, spec.real_split)
    total = len(record["features"])
    keep = real_subset(total, spec.max_real, derive_seed(spec.seed, SubsetStream.REAL_SUBSET))
    return record["features"][torch.from_numpy(keep)].numpy(), total


def read_samples(spec: FigureSpec, directories: list[Path], num_classes: int, seed: int
                 ) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], tuple[torch.Tensor, np.ndarray] | None]:
    """The sample-grid images and labels of each set, and the t-SNE sample of the sets pooled (a
    seeded class-stratified subset of at most ``max_synthetic`` rows; None with ``--no-features``).
    Rows are chosen from ``labels.csv``; each image is decoded at most once, none outside both."""
    indices = [index_synset(d, num_classes) for d in directories]
    labels = [np.array([label for _, label, _ in rows], dtype=np.int64) for rows in indices]
    offsets = np.cumsum([0] + [len(set_labels) for set_labels in labels])
    pooled = (stratified_sample(np.concatenate(labels), spec.max_synthetic, seed) if spec.features
              else np.empty(0, dtype=np.int64))
    grids, sample_images = [], []
    for k, (directory, rows, set_labels) in enumerate(zip(directories, indices, labels)):
        grid = grid_rows(set_labels, num_classes, spec.max_classes, spec.max_samples)
        chosen = pooled[(pooled >= offsets[k]) & (pooled < offsets[k + 1])] - offsets[k]
        wanted = np.union1d(grid, chosen)
        images = read_images(directory, [rows[i][0] for i in wanted])
        grids.append((images[torch.from_numpy(np.searchsorted(wanted, grid))], torch.from_numpy(set_labels[grid])))
        sample_images.append(images[torch.from_numpy(np.searchsorted(wanted, chosen))])
    if not spec.features:
        return grids, None
    return grids, (torch.cat(sample_images), np.concatenate(labels)[pooled])


def sample_grid(spec: FigureSpec, class_names: tuple[str, ...], images: torch.Tensor, labels: torch.Tensor,
                dataset: str, method: str, ipc: int, seed: int) -> Entry:
    rel = f"samples/{dataset}/{method}-ipc{ipc}-seed{seed}.png"
    layout = draw_sample_grid(images, labels, class_names, f"{dataset} · {method} · IPC {ipc} · seed {seed}",
                              spec.out / rel, max_classes=spec.max_classes, max_samples=spec.max_samples,
                              tile=spec.tile)
    return Entry("samples", rel, f"{dataset} · {method} · IPC {ipc} · seed {seed}: first {layout.rows} of "
                 f"{len(class_names)} classes (rows) x first {layout.columns} of {ipc} samples per class "
                 "(columns, generation order)")


def tsne_figure(spec: FigureSpec, class_names: tuple[str, ...], real: np.ndarray, real_total: int,
                synthetic: dict[str, tuple[np.ndarray, np.ndarray]], dataset: str, ipc: int) -> Entry:
    rel = f"tsne/{dataset}-ipc{ipc}.png"
    real_xy, points = joint_embedding(real, {m: f for m, (f, _) in synthetic.items()}, spec.perplexity,
                                      derive_seed(spec.seed, SubsetStream.TSNE, ipc))
    draw_tsne(real_xy, {m: (points[m], labels) for m, (_, labels) in synthetic.items()}, class_names,
              f"{dataset} · IPC {ipc} · {spec.extractor} features · grey: {len(real)} real", spec.out / rel)
    per_method = _join(sorted({len(features) for features, _ in synthetic.values()}))
    return Entry("tsne", rel, f"{dataset} · IPC {ipc}: one joint t-SNE (perplexity {spec.perplexity:g}, seed "
                 f"{spec.seed}) of {len(real)} real {spec.real_split} features (seeded subset of {real_total}) "
                 f"and {per_method} synthetic per method (seeded class-stratified subset of at most "
                 f"{spec.max_synthetic} of seeds {_join(spec.seeds)}), extractor {spec.extractor}; "
                 "one panel per method, real in grey, synthetic coloured by class")


def ot_loss_figure(spec: FigureSpec, losses: dict[str, np.ndarray], colors: dict[str, tuple], dataset: str,
                   ipc: int, num_classes: int) -> Entry:
    if not losses:
        return Entry("ot_loss", None, f"{dataset} · IPC {ipc}: not drawn: no variant among "
                     f"{_join(spec.methods)} records {RECORD} in its manifest (DMGD with distribution matching does)")
    rel = f"ot_loss/{dataset}-ipc{ipc}.png"
    draw_ot_loss(losses, colors, f"{dataset} · IPC {ipc} · final OT loss per sample", spec.out / rel)
    counts = ", ".join(f"{m} n={len(v)}" for m, v in losses.items())
    return Entry("ot_loss", rel, f"{dataset} · IPC {ipc}: final OT loss (eq. 49) of each sample in generation "
                 f"order, mean ± std over classes x seeds ({counts}; {num_classes} classes); variants without "
                 f"the records: {_join([m for m in spec.methods if m not in losses]) or 'none'}")


def accuracy_figures(spec: FigureSpec, dataset: str, runs: pd.DataFrame, colors: dict[str, tuple]) -> list[Entry]:
    entries = []
    for (protocol, network), block in runs.groupby(["protocol", "network"], sort=True):
        rel = f"accuracy/{dataset}-{protocol}-{network}.png"
        counts = draw_accuracy(block, spec.methods, colors, f"{dataset} · {protocol} · {network}", spec.out / rel)
        readings = "; ".join(f"{name} ({'solid' if style == '-' else 'dashed'}) n = {_join(counts[metric])}"
                             if counts[metric] else f"{name}: none recorded" for metric, style, name in READINGS)
        entries.append(Entry("accuracy", rel, f"{dataset} · {protocol} · {network}: test top-1 against IPC, "
                             f"mean ± std over seeds x repeats of each method; {readings}"))
    return entries


def _join(values) -> str:
    return ", ".join(str(v) for v in values)


def index_markdown(spec: FigureSpec, entries: list[Entry]) -> str:
    source = (f"Drawn by `python workflow/scripts/figures.py` from the stored results in `{spec.results}` "
              f"(seed {spec.seed}; methods {_join(spec.methods)}; feature extractor {spec.extractor}).")
    lines = ["# Figures", "", source, ""]
    for section, heading in SECTIONS.items():
        lines += [f"## {heading}", ""]
        chosen = [e for e in entries if e.section == section]
        lines += [f"- [{e.path}]({e.path}): {e.caption}" if e.path else f"- {e.caption}" for e in chosen]
        lines += ["- none"] if not chosen else []
        lines.append("")
    return "\n".join(lines)


def build_figures(spec: FigureSpec, options: dict) -> None:
    """The figures folder ``spec.out`` with its manifest (``options``: the arguments it was drawn with),
    appearing whole or not at all."""
    started = time.time()
    with atomic_path(spec.out) as tmp:
        tmp.mkdir()
        draw_all(replace(spec, out=tmp))
        write_manifest(tmp, manifest({k: str(v) if isinstance(v, Path) else v for k, v in options.items()},
                                     seed=spec.seed, device=spec.device, started=started))
