"""The synthetic-set artifact: ImageFolder PNGs + ``labels.csv`` + ``manifest.json``.

Layout of ``synsets/<dataset>/<method>/ipc<k>/seed<s>/``: one folder per class named by its
zero-padded label (``00000``, ``00001``, ... so that sorted order is label order, as RDED's
folders), files ``0000.png, 0001.png, ...`` in generation order, and ``labels.csv`` with columns
``path,label,class_name``. The reader checks ``labels.csv`` against the folders.

A *chunk* (methods/chunks.py) has the same layout with only a range of classes, still named and
labelled by their global labels; ``read_synset(dir, num_classes, classes=range(a, b))`` reads one,
and ``python workflow/scripts/merge_chunks.py`` joins chunks into the full set.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import torch
from PIL import Image

from evaluation.core.artifacts import atomic_path, read_json_object, verify_folder, write_manifest
from evaluation.core.errors import InputError
from .datasets import image_tensor, load_rgb


class SynsetError(InputError):
    """A synthetic-set folder that does not follow the contract; one line naming the problem."""


def class_folder(label: int) -> str:
    return f"{label:05d}"


def write_synset(out_dir: Path, images: torch.Tensor, labels: torch.Tensor,
                 class_names: tuple[str, ...], manifest: dict) -> None:
    """Write the artifact atomically: the directory appears complete or not at all."""
    with atomic_path(out_dir) as tmp:
        rows, counters = [], {}
        for image, label in zip(images, labels.tolist()):
            index = counters.get(label, 0)
            counters[label] = index + 1
            rel = f"{class_folder(label)}/{index:04d}.png"
            (tmp / class_folder(label)).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(tmp / rel, optimize=False)
            rows.append((rel, label, class_names[label]))
        write_labels(tmp, rows)
        write_manifest(tmp, manifest)


def write_labels(directory: Path, rows: list[tuple[str, int, str]]) -> None:
    """``labels.csv`` of ``(path, label, class_name)`` rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "label", "class_name"])
    writer.writerows(rows)
    (Path(directory) / "labels.csv").write_text(buffer.getvalue())


def synset_provenance(directory: Path) -> dict:
    """Where a set came from, for the records made from it: its manifest's config slice (the method
    spec, see ``methods.distill``), seed and code version; ``None`` values for a set without a
    manifest (an ``external`` folder made elsewhere)."""
    path = Path(directory) / "manifest.json"
    record = read_json_object(path, "distillation", "the set's manifest", rule="distill") if path.exists() else {}
    return {key: record.get(key) for key in ("config", "seed", "code_version")}


def index_synset(directory: Path, num_classes: int, classes: range | None = None) -> list[tuple[str, int, str]]:
    """The ``(path, label, class_name)`` rows of a set, checked against its files and classes
    without decoding an image. A full set (``classes`` None) must hold every one of the dataset's
    ``num_classes`` classes; a chunk (methods/chunks.py) exactly the classes of ``classes``."""
    directory = Path(directory)
    index = directory / "labels.csv"
    if not index.exists():
        raise SynsetError(f"{directory}: no labels.csv; a synthetic set needs labels.csv (path,label,class_name)")
    with open(index, newline="") as fh:
        rows = list(csv.DictReader(fh))
    listed = {r["path"] for r in rows}
    on_disk = {str(p.relative_to(directory)) for p in directory.glob("*/*.png")}
    if listed != on_disk:
        diff = min(listed ^ on_disk)
        where = "listed in labels.csv but missing" if diff in listed else "on disk but not in labels.csv"
        raise SynsetError(f"{directory}: {diff} is {where}; regenerate the set or fix labels.csv")
    out = []
    for r in rows:
        label = int(r["label"])
        if r["path"].split("/")[0] != class_folder(label):
            raise SynsetError(f"{directory}: labels.csv gives {r['path']} label {label} but its folder "
                              f"is {r['path'].split('/')[0]}; fix labels.csv or move the file")
        out.append((r["path"], label, r["class_name"]))
    labels = {label for _, label, _ in out}
    wanted = set(range(num_classes) if classes is None else classes)
    stray = sorted(labels - wanted)
    if stray and classes is None:
        raise SynsetError(f"{directory}: class folder {class_folder(stray[0])} is beyond the dataset's "
                          f"{num_classes} classes; remove it or evaluate on the right dataset")
    if stray:
        raise SynsetError(f"{directory}: class folder {class_folder(stray[0])} is outside the chunk's classes "
                          f"{classes.start}:{classes.stop}; remove it or read the chunk with its own range")
    missing = sorted(wanted - labels)
    if missing:
        raise SynsetError(f"{directory}: no images of class {class_folder(missing[0])} "
                          f"({len(missing)} classes missing); every class needs at least one image")
    verify_folder(directory, "distill")   # after the layout checks, whose messages say more for a hand-made set
    return out


def read_synset(directory: Path, num_classes: int, classes: range | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (uint8 Nx3xSxS) and labels of a synthetic set, validated against the contract
    (``classes``: read a chunk holding exactly these dataset labels; see ``index_synset``)."""
    images, labels = [], []
    for path, label, _ in index_synset(directory, num_classes, classes):
        images.append(image_tensor(load_rgb(Path(directory) / path)))
        labels.append(label)
    return torch.stack(images), torch.tensor(labels, dtype=torch.long)
