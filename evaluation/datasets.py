"""Datasets of the suite: the embedded digits and the ImageNet subsets of the papers.

Class lists come from ``evaluation/data/imagenet_subsets.yaml`` (a copy of the reference list, file
order preserved): label k is the k-th class of the list, as in the Minimax/IDC/DMGD code, and the
backbone label of class k is its ImageNet-1k index (DiT's class id).

A prepared dataset is a directory with ``train``, ``val`` and ``test`` splits: for digits, uint8
tensors (``<split>.pt``); for ImageNet, an index of files (``<split>.csv``: path, label) read lazily,
the ImageNet ``val`` folder serving as the test split (the reference protocols test on val). The
suite's ``val`` split is held out from the real training data (seeded, stratified) for honest model
selection; it is never used to train anything, and ``train`` excludes it.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from PIL import Image, UnidentifiedImageError

from .errors import InputError
from .seeding import derive_seed

SUBSETS_FILE = Path(__file__).parent / "data" / "imagenet_subsets.yaml"
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")
SPLITS = ("train", "val", "test")
IMAGENET_FOLDER = {"train": "train", "test": "val"}
IMAGENET_LAYOUT = "expected <root>/train/<wnid>/*.JPEG and <root>/val/<wnid>/*.JPEG"


class DatasetError(InputError):
    """Bad or missing data; the message is one line naming the path and the expected layout."""


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    source: str                      # "digits" or "imagenet"
    class_names: tuple[str, ...]
    wnids: tuple[str, ...] | None    # None for digits and for imagenet_1k (all sorted wnids)
    backbone_labels: tuple[int, ...]  # class id of label k in the backbone's label table

    @property
    def num_classes(self) -> int:
        return len(self.backbone_labels)


def _imagenet_infos() -> dict[str, DatasetInfo]:
    subsets = yaml.safe_load(SUBSETS_FILE.read_text())
    infos = {}
    for name, entry in subsets.items():
        if name.endswith("_if_sorted_file"):  # a documented pitfall, not a dataset of the papers
            continue
        if "wnids" in entry:
            infos[name] = DatasetInfo(name, "imagenet", tuple(entry["names"]), tuple(entry["wnids"]),
                                      tuple(entry["indices"]))
        else:  # imagenet_1k: the sorted wnid folders of the root, labels 0..999
            count = entry["count"]
            infos[name] = DatasetInfo(name, "imagenet", tuple(str(i) for i in range(count)), None,
                                      tuple(range(count)))
    return infos


DATASETS: dict[str, DatasetInfo] = {
    "digits": DatasetInfo("digits", "digits", tuple(str(d) for d in range(10)), None, tuple(range(10))),
    **_imagenet_infos(),
}


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset '{name}'; valid: {', '.join(DATASETS)}")
    return DATASETS[name]


# ----------------------------------------------------------------------------- digits

def prepare_digits(out_dir: Path, image_size: int, test_fraction: float, split_seed: int,
                   val_fraction: float = 0.1) -> dict:
    """scikit-learn's bundled 8x8 digits resized to RGB ``image_size``, split by seeded stratified draws:
    ``test_fraction`` of the whole as test, then ``val_fraction`` of the rest as val."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    gray = torch.from_numpy(digits.images / 16.0).float().unsqueeze(1)  # N,1,8,8 in [0, 1]
    resized = F.interpolate(gray, size=(image_size, image_size), mode="bilinear", align_corners=False)
    images = (resized.clamp(0, 1) * 255).round().to(torch.uint8).repeat(1, 3, 1, 1)
    labels = torch.from_numpy(digits.target).long()
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split, idx in zip(SPLITS, digits_split(digits.target, test_fraction, split_seed, val_fraction)):
        idx_t = torch.from_numpy(idx)
        torch.save({"images": images[idx_t].contiguous(), "labels": labels[idx_t].contiguous()},
                   out_dir / f"{split}.pt")
        counts[split] = len(idx)
    return counts


def digits_split(targets: np.ndarray, test_fraction: float, split_seed: int,
                 val_fraction: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted indices of the train, val and test splits of :func:`prepare_digits`."""
    from sklearn.model_selection import train_test_split

    train_idx, test_idx = train_test_split(np.arange(len(targets)), test_size=test_fraction, stratify=targets,
                                           random_state=split_seed)
    train_idx, val_idx = train_test_split(train_idx, test_size=val_fraction, stratify=targets[train_idx],
                                          random_state=split_seed)
    return np.sort(train_idx), np.sort(val_idx), np.sort(test_idx)


# ----------------------------------------------------------------------------- ImageNet

def imagenet_class_folders(root: str | Path | None, info: DatasetInfo) -> list[str]:
    """The wnid folders of a subset, validated against the root's train/ and val/ layout."""
    if root is None:
        raise DatasetError(f"dataset {info.name} needs imagenet_root: set it in the config or pass "
                           f"--config imagenet_root=DIR; {IMAGENET_LAYOUT}")
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"ImageNet root {root} does not exist; {IMAGENET_LAYOUT}")
    for folder in IMAGENET_FOLDER.values():
        if not (root / folder).is_dir():
            raise DatasetError(f"ImageNet root {root} has no {folder}/ folder; {IMAGENET_LAYOUT}")
    wnids = info.wnids or tuple(sorted(p.name for p in (root / "train").iterdir() if p.is_dir()))
    if len(wnids) != info.num_classes:
        raise DatasetError(f"{root / 'train'} holds {len(wnids)} class folders, {info.name} needs "
                           f"{info.num_classes}; {IMAGENET_LAYOUT}")
    for wnid in wnids:
        for folder in IMAGENET_FOLDER.values():
            class_dir = root / folder / wnid
            if not class_dir.is_dir():
                raise DatasetError(f"missing class folder {class_dir} ({info.name}); {IMAGENET_LAYOUT}")
            if not any(_image_files(class_dir)):
                raise DatasetError(f"class folder {class_dir} holds no images (.JPEG/.jpg/.png); "
                                   f"{IMAGENET_LAYOUT}")
    return list(wnids)


def _image_files(class_dir: Path) -> list[Path]:
    return sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)


def hold_out(files: list[Path], count: int, seed: int) -> tuple[list[Path], list[Path]]:
    """(kept, held out): ``count`` files drawn without replacement by a seeded permutation, at most
    half of the class so that training keeps most of it; both lists stay in sorted order."""
    count = min(count, len(files) // 2)
    chosen = set(np.random.default_rng(seed).permutation(len(files))[:count].tolist())
    return ([f for i, f in enumerate(files) if i not in chosen], [f for i, f in enumerate(files) if i in chosen])


def _write_index(path: Path, rows: list[tuple[str, int]]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label"])
        writer.writerows(rows)


def prepare_imagenet(out_dir: Path, root: str | Path | None, info: DatasetInfo, val_per_class: int,
                     split_seed: int, max_per_class: int | None = None) -> dict:
    """Write ``train.csv``/``val.csv``/``test.csv`` (path, label) indexing the subset's folders in list
    order: ``val`` holds ``val_per_class`` seeded files of each class's train folder (per-class seed
    ``(split_seed, label)``), ``train`` the rest, ``test`` the ImageNet val folder; each split keeps at
    most the first ``max_per_class`` files of a class (None = all; smoke runs)."""
    wnids = imagenet_class_folders(root, info)
    root = Path(root).resolve()  # the index must stay valid from any working directory
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[tuple[str, int]]] = {split: [] for split in SPLITS}
    for label, wnid in enumerate(wnids):
        kept, held = hold_out(_image_files(root / IMAGENET_FOLDER["train"] / wnid), val_per_class,
                              seed=derive_seed(split_seed, label))
        test = _image_files(root / IMAGENET_FOLDER["test"] / wnid)
        for split, files in (("train", kept), ("val", held), ("test", test)):
            rows[split] += [(str(path), label) for path in files[:max_per_class]]
    for split, split_rows in rows.items():
        _write_index(out_dir / f"{split}.csv", split_rows)
    return {split: len(split_rows) for split, split_rows in rows.items()}


def read_image(path: str | Path, size: int) -> torch.Tensor:
    """One RGB image as uint8 3xSxS: resize the short side to ``size``, centre crop (ADM/DiT style)."""
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            scale = size / min(img.size)
            img = img.resize((max(size, round(img.width * scale)), max(size, round(img.height * scale))),
                             Image.BICUBIC)
            left, top = (img.width - size) // 2, (img.height - size) // 2
            img = img.crop((left, top, left + size, top + size))
            return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).contiguous()
    except (UnidentifiedImageError, OSError) as err:
        raise DatasetError(f"unreadable image {path} ({type(err).__name__}); replace or remove the "
                           f"file, {IMAGENET_LAYOUT}") from err


def read_index(data_dir: Path, split: str) -> tuple[list[str], torch.Tensor]:
    with open(Path(data_dir) / f"{split}.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [r["path"] for r in rows], torch.tensor([int(r["label"]) for r in rows], dtype=torch.long)


# ----------------------------------------------------------------------------- common API

def digits_train_class_sizes(data_cfg: dict) -> list[int]:
    """Images of each digit (label order) in the train split that :func:`prepare_digits` writes with
    the config's ``data`` block, i.e. without the val and test splits; recomputed from the seeded
    split, with no data prepared. (ImageNet's are known only from its folders: a method that
    draws more images than a class has fails at its distill job instead.)"""
    from sklearn.datasets import load_digits

    targets = load_digits().target
    train = digits_split(targets, data_cfg["digits_test_fraction"], data_cfg["split_seed"],
                         data_cfg["digits_val_fraction"])[0]
    return np.bincount(targets[train], minlength=len(DATASETS["digits"].class_names)).tolist()


def prepare(name: str, out_dir: Path, data_cfg: dict) -> dict:
    """Prepare dataset ``name`` into ``out_dir``; returns the split sizes."""
    info = dataset_info(name)
    if info.source == "digits":
        return prepare_digits(out_dir, data_cfg["digits_image_size"], data_cfg["digits_test_fraction"],
                              data_cfg["split_seed"], data_cfg["digits_val_fraction"])
    return prepare_imagenet(out_dir, data_cfg.get("imagenet_root"), info, data_cfg["imagenet_val_per_class"],
                            data_cfg["split_seed"], data_cfg.get("imagenet_max_per_class"))


def load_split(data_dir: Path, split: str, image_size: int | None = None,
               indices: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (uint8 Nx3xSxS) and labels of a prepared split, optionally only ``indices``.

    ``image_size`` resizes tensor datasets (bilinear) and sets the side of ImageNet crops.
    """
    data_dir = Path(data_dir)
    if (data_dir / f"{split}.pt").exists():
        blob = torch.load(data_dir / f"{split}.pt")
        images, labels = blob["images"], blob["labels"]
        if indices is not None:
            images, labels = images[indices], labels[indices]
        if image_size is not None and image_size != images.shape[-1]:
            images = resize_uint8(images, image_size)
        return images, labels
    paths, labels = read_index(data_dir, split)
    if indices is not None:
        paths, labels = [paths[i] for i in indices], labels[indices]
    if image_size is None:
        raise DatasetError(f"{data_dir}: ImageNet splits need an image size (protocol image_size)")
    return torch.stack([read_image(p, image_size) for p in paths]), labels


def split_labels(data_dir: Path, split: str) -> torch.Tensor:
    """Labels of a prepared split without reading any image."""
    data_dir = Path(data_dir)
    if (data_dir / f"{split}.pt").exists():
        return torch.load(data_dir / f"{split}.pt")["labels"]
    return read_index(data_dir, split)[1]


def split_paths(data_dir: Path, split: str) -> list[str] | None:
    """Source file of each item of a file-indexed split (None for tensor datasets)."""
    data_dir = Path(data_dir)
    return None if (data_dir / f"{split}.pt").exists() else read_index(data_dir, split)[0]


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    resized = F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False,
                            antialias=True)
    return resized.round().clamp(0, 255).to(torch.uint8)


def has_split(data_dir: Path, split: str) -> bool:
    """Whether a prepared dataset holds ``split`` (datasets prepared before the val split lack it)."""
    return any((Path(data_dir) / f"{split}{suffix}").exists() for suffix in (".pt", ".csv"))
