"""A fake ImageNet tree for tests: a few small deterministic JPEGs per class of the chosen subsets.

Layout (as ``evaluation.data.datasets`` expects, ``IMAGENET_LAYOUT``)::

    root/train/<wnid>/<wnid>_<i>.JPEG
    root/val/<wnid>/ILSVRC2012_val_<wnid>_<i>.JPEG

Every image is non-square (``size`` x ``size + 8``, portrait for even class positions, landscape for
odd ones): a centred ``size`` x ``size`` square of the class colour between two 4-pixel bands of
``BAND_COLOUR`` on the long axis, so a correct centre crop at ``size`` shows only the class colour
while a top/left crop would show the band. The class colour depends only on the class position
(first appearance of the wnid over ``dataset_names``, in their YAML order), see ``class_colour``.

The second half draws the smoke kit's tree (tests/smoke_kit.py): a full 1000-class ImageNet-1K with
every subset at its class id (``imagenet_1k_wnids``), of varied shape images (``shape_image``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from evaluation.data.datasets import DATASETS, dataset_info

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


# ----------------------------------------------------------------------------- a full ImageNet-1K with shapes
# The smoke kit (tests/smoke_kit.py) needs every subset *inside* a 1000-class tree, and images that a
# network can tell apart: a class-dependent shape and colour on a class-dependent background, with
# per-image noise, jitter, size and orientation, so that resize-short-side + centre crop is exercised.

SHAPES = ("disc", "square", "triangle", "stripes")   # shape of the class at position p: SHAPES[p % 4]
SHORT_SIDE = (40, 96)                                # short side of an image, pixels (inclusive)
LONG_SIDE_MAX = 120
NOISE_STD = 8.0                                      # per-pixel Gaussian noise, uint8 units
FIRST_WNID, LAST_WNID = 1440764, 15075141            # numbers of ImageNet's first and last sorted wnids


def imagenet_1k_wnids() -> list[str]:
    """1000 sorted wnids in which every listed subset's wnid sits at its ImageNet-1K index.

    The repository holds the subsets' wnids and indices but not the 1000-line sorted list
    (``imagenet_subsets.yaml``: ``wnids_file``), so the other classes get synthetic ``n…`` ids spread
    evenly, as integers, between the known neighbours: sorted, distinct, 9 characters like a real wnid.
    """
    known: dict[int, int] = {}
    for name in subset_names():
        info = dataset_info(name)
        for wnid, index in zip(info.wnids, info.backbone_labels):
            if known.setdefault(index, int(wnid[1:])) != int(wnid[1:]):
                raise ValueError(f"imagenet_subsets.yaml: index {index} names two wnids")
    anchors = sorted({-1: FIRST_WNID - 1, **known, 1000: LAST_WNID + 1}.items())
    numbers = []
    for (i0, n0), (i1, n1) in zip(anchors, anchors[1:]):
        if n1 - n0 < i1 - i0:
            raise ValueError(f"imagenet_subsets.yaml: wnids of indices {i0} and {i1} leave no room between them")
        numbers += [n0 + (i - i0) * (n1 - n0) // (i1 - i0) for i in range(i0 + 1, i1)] + [n1]
    wnids = [f"n{n:08d}" for n in numbers[:-1]]   # drop the end sentinel
    assert len(wnids) == 1000 and wnids == sorted(set(wnids))
    return wnids


def subset_names() -> list[str]:
    """The ImageNet datasets with a wnid list (every subset of the papers; not imagenet_1k)."""
    return [name for name, info in DATASETS.items() if info.source == "imagenet" and info.wnids is not None]


def _background(position: int) -> np.ndarray:
    """A light colour (channels in [160, 250]) that differs from the dark class colour."""
    return np.array([160 + (position * 29 + 7) % 91, 160 + (position * 53 + 31) % 91,
                     160 + (position * 71 + 59) % 91], dtype=np.float32)


def shape_image(position: int, split: int, index: int, seed: int = 0, max_side: int = LONG_SIDE_MAX) -> Image.Image:
    """Image ``index`` of ``split`` (0 train, 1 val) of the class at ``position``, deterministic.

    Class: shape ``SHAPES[position % 4]``, its colour (:func:`class_colour`), the background, the stripes'
    period and direction. Image (seeded by all four arguments): size in ``SHORT_SIDE`` x up to
    ``max_side``, portrait or landscape (alternating with ``index``), shape size and position jitter,
    Gaussian noise.
    """
    rng = np.random.default_rng([seed, position, split, index])
    short = int(rng.integers(SHORT_SIDE[0], min(SHORT_SIDE[1], max_side) + 1))
    long = int(rng.integers(short + short // 8, max(short + short // 8, min(max_side, 2 * short)) + 1))
    height, width = (long, short) if (position + index) % 2 else (short, long)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cy, cx = height / 2 + rng.uniform(-0.1, 0.1) * short, width / 2 + rng.uniform(-0.1, 0.1) * short
    radius = short * rng.uniform(0.25, 0.35)
    shape = SHAPES[position % len(SHAPES)]
    if shape == "disc":
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2
    elif shape == "square":
        mask = (abs(yy - cy) <= radius) & (abs(xx - cx) <= radius)
    elif shape == "triangle":   # apex up, base at cy + radius
        mask = (yy <= cy + radius) & (abs(xx - cx) <= (yy - (cy - radius)) / 2)
    else:                       # stripes over the whole image, period and direction from the class
        period = 6 + (position // 4) % 7
        mask = (((xx if (position // 4) % 2 else yy) + rng.uniform(0, period)) % period) < period / 2
    pixels = np.where(mask[..., None], np.array(class_colour(position), dtype=np.float32), _background(position))
    pixels = pixels + rng.normal(0.0, NOISE_STD, pixels.shape).astype(np.float32)
    return Image.fromarray(pixels.round().clip(0, 255).astype(np.uint8))


def write_shape_class(root: Path, wnid: str, position: int, train_count: int, val_count: int,
                      max_side: int = LONG_SIDE_MAX, quality: int = 90) -> None:
    """The ``train/`` and ``val/`` JPEGs of one class (``IMAGENET_LAYOUT``), from :func:`shape_image`."""
    for split, (folder, count, stem) in enumerate((("train", train_count, f"{wnid}_"),
                                                   ("val", val_count, f"ILSVRC2012_val_{wnid}_"))):
        class_dir = Path(root) / folder / wnid
        class_dir.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            shape_image(position, split, i, max_side=max_side).save(class_dir / f"{stem}{i}.JPEG", format="JPEG",
                                                                     quality=quality)
