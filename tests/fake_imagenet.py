"""A fake ImageNet tree for tests: a few small deterministic JPEGs per class of the chosen subsets.

Layout (as ``evaluation.datasets`` expects, ``IMAGENET_LAYOUT``)::

    root/train/<wnid>/<wnid>_<i>.JPEG
    root/val/<wnid>/ILSVRC2012_val_<wnid>_<i>.JPEG

Every image is non-square (``size`` x ``size + 8``, portrait for even class positions, landscape for
odd ones): a centred ``size`` x ``size`` square of the class colour between two 4-pixel bands of
``BAND_COLOUR`` on the long axis, so a correct centre crop at ``size`` shows only the class colour
while a top/left crop would show the band. The class colour depends only on the class position
(first appearance of the wnid over ``dataset_names``, in their YAML order), see ``class_colour``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from evaluation.datasets import dataset_info

BAND = 4                      # band thickness in pixels on each end of the long axis
BAND_COLOUR = (250, 250, 250)  # far (>= 110 per channel) from every class colour below
JPEG_QUALITY = 95


def class_colour(position: int) -> tuple[int, int, int]:
    """Distinct-ish RGB colour of the class at ``position``; channels in [40, 140]."""
    return (40 + (position * 37) % 101, 40 + (position * 61 + 17) % 101, 40 + (position * 83 + 51) % 101)


def fake_wnids(dataset_names: list[str]) -> list[str]:
    """The wnids of the datasets, in order of first appearance (YAML list order within a dataset)."""
    wnids: list[str] = []
    for name in dataset_names:
        info = dataset_info(name)
        if info.wnids is None:
            raise ValueError(f"make_fake_imagenet: dataset {name} has no wnid list (imagenet_1k reads "
                             f"all sorted folders of the root); fake only listed subsets")
        wnids += [w for w in info.wnids if w not in wnids]
    return wnids


def fake_image(position: int, index: int, size: int) -> Image.Image:
    """Image ``index`` of the class at ``position``: class colour centred between two bands."""
    colour = np.array(class_colour(position), dtype=np.uint8)
    long_side = size + 2 * BAND
    pixels = np.empty((long_side, size, 3), dtype=np.uint8)  # portrait: H = size + 8, W = size
    pixels[:] = BAND_COLOUR
    pixels[BAND:BAND + size] = colour
    # a faint deterministic per-image mark in the centre so that images of a class are not identical
    centre = size // 2
    pixels[BAND + centre, centre] = (colour.astype(int) + 2 * (index % 5)).clip(0, 255)
    if position % 2:  # landscape
        pixels = pixels.transpose(1, 0, 2)
    return Image.fromarray(np.ascontiguousarray(pixels))


def make_fake_imagenet(root: Path, dataset_names: list[str], train_per_class: int = 3,
                       val_per_class: int = 2, size: int = 40) -> Path:
    """Write a fake ImageNet tree under ``root`` for the wnids of ``dataset_names``; returns root."""
    root = Path(root)
    for position, wnid in enumerate(fake_wnids(dataset_names)):
        for folder, count, stem in (("train", train_per_class, f"{wnid}_"),
                                    ("val", val_per_class, f"ILSVRC2012_val_{wnid}_")):
            class_dir = root / folder / wnid
            class_dir.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                fake_image(position, i, size).save(class_dir / f"{stem}{i}.JPEG", format="JPEG",
                                                   quality=JPEG_QUALITY)
    return root


def make_fake_imagenet_1k(root: Path, count: int = 1000, size: int = 8) -> Path:
    """A fake ImageNet-1K root: ``count`` sorted wnid folders with one train and one val image each
    (enough for config checks and dry runs, which read no pixel)."""
    root = Path(root)
    for position in range(count):
        wnid = f"n{position:08d}"
        for folder in ("train", "val"):
            (root / folder / wnid).mkdir(parents=True, exist_ok=True)
            fake_image(position, 0, size).save(root / folder / wnid / f"{wnid}_0.JPEG", format="JPEG")
    return root
