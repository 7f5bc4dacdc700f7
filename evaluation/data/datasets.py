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
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from PIL import Image, UnidentifiedImageError

from evaluation.core.artifacts import save_torch, verify_folder
from evaluation.core.errors import InputError
from evaluation.core.seeding import derive_seed

SUBSETS_FILE = Path(__file__).parent / "imagenet_subsets.yaml"
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
        save_torch({"images": images[idx_t].contiguous(), "labels": labels[idx_t].contiguous()},
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


MAX_IMAGE_PIXELS = 89_478_485   # Pillow's default value: 256 MiB once decoded as RGB
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
FULL_SCALE = {"I;16": 65535, "I;16B": 65535, "I;16L": 65535, "I;16N": 65535, "I": 65535, "F": 1.0}


def to_rgb8(img: Image.Image, source: object) -> Image.Image:
    """``img`` of any mode as 8-bit RGB, each mode scaled from its own full range (``source`` names the
    file in errors):

    * 16-bit grey (``I;16``, ``I;16B``, ``I;16L``, ``I;16N``, and ``I``, as Pillow opens 16-bit PNGs in
      some versions): ``round(v / 257)``, so 65535 -> 255 and 32768 -> 128, where Pillow's own
      ``convert`` clips every value above 255 to white; ``F`` (32-bit float): ``round(v * 255)`` from
      [0, 1]. A value outside its mode's range (or not finite) is refused: its scale is unknown.
    * every 8-bit mode by Pillow's ``convert("RGB")``: ``1`` -> 0/255, ``L``/``LA`` grey repeated, ``P``
      through its palette, ``CMYK`` and ``YCbCr`` by Pillow's formulas. 16-bit RGB(A) PNGs arrive as
      ``RGB``/``RGBA``, Pillow keeping each sample's high byte.
    * transparency (``RGBA``, ``LA``, ``PA``, a palette or grey colour marked transparent) is dropped and
      the colour under it kept, as torchvision's ``default_loader`` (the reference protocols' reader).
    """
    if img.mode in FULL_SCALE:
        full = FULL_SCALE[img.mode]
        values = np.asarray(img, dtype=np.float64)
        if not (np.isfinite(values).all() and values.min() >= 0 and values.max() <= full):
            raise DatasetError(f"image {source}: mode {img.mode} values outside 0..{full}, of unknown scale; "
                               f"save it as an 8- or 16-bit PNG")
        return Image.fromarray(np.rint(values * (255 / full)).astype(np.uint8), "L").convert("RGB")
    if "transparency" in img.info:   # Pillow warns when it converts a palette with transparency to RGB
        img = img.convert("RGBA")
    return img.convert("RGB")


def load_rgb(path: str | Path | io.BytesIO) -> Image.Image:
    """The image at ``path`` decoded as 8-bit RGB (:func:`to_rgb8`), the one reader of every image
    the suite opens; an unreadable file or an image above ``MAX_IMAGE_PIXELS`` (a decompression bomb:
    a few KB of PNG can decode to gigabytes) is one :class:`DatasetError` line naming the file."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)   # refuse at the limit, not twice it
            with Image.open(path) as img:
                img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DatasetError(f"image {path} has more than {MAX_IMAGE_PIXELS:,} pixels (MAX_IMAGE_PIXELS of "
                           f"evaluation/data/datasets.py, the decompression-bomb guard); downscale it or "
                           f"remove it") from None
    except (UnidentifiedImageError, OSError) as err:
        raise DatasetError(f"unreadable image {path} ({type(err).__name__}); replace or remove the file") from err
    return to_rgb8(img, path)


def image_tensor(img: Image.Image) -> torch.Tensor:
    """An RGB image as a uint8 3xHxW tensor."""
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).contiguous()


def read_image(path: str | Path | io.BytesIO, size: int) -> torch.Tensor:
    """One image (:func:`load_rgb`) as uint8 3xSxS: resize the short side to ``size``, centre crop (ADM/DiT style)."""
    img = load_rgb(path)
    scale = size / min(img.size)
    img = img.resize((max(size, round(img.width * scale)), max(size, round(img.height * scale))), Image.BICUBIC)
    left, top = (img.width - size) // 2, (img.height - size) // 2
    return image_tensor(img.crop((left, top, left + size, top + size)))


def prepared(data_dir: str | Path) -> Path:
    """``data_dir`` once its files match its manifest's digests (the index files of an ImageNet
    subset, not the images they name: hashing the user's ImageNet per job would cost more than the
    job); checked once per process (evaluation.core.artifacts.verify_folder)."""
    verify_folder(data_dir, "prepare_data")
    return Path(data_dir)


def read_index(data_dir: Path, split: str) -> tuple[list[str], torch.Tensor]:
    with open(prepared(data_dir) / f"{split}.csv", newline="") as fh:
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
    data_dir = prepared(data_dir)
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
    data_dir = prepared(data_dir)
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
