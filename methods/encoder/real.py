"""The real training images the encoder methods read (reference ims3_lgm_sfm.md §2.3 "Resolution", §3.2).

Images come from the prepared train split at the synthetic resolution, in [0, 1]: ImageNet files are resized (short
side) and centre-cropped to it (evaluation/data/datasets.py ``read_image``), tensor datasets (digits) resized
bilinearly when their size differs. Interpretation: the official real loader takes Resize(256) + RandomCrop(256); the
suite's centre crop is followed by the same random resized crop of the augmentation, which dominates.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from evaluation.data.datasets import load_split, split_labels

PIXEL_MAX = 255.0


def train_images(data_dir: Path, resolution: int, indices: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The train split's images (or ``indices``) as float (N, 3, R, R) in [0, 1], and their labels."""
    images, labels = load_split(data_dir, "train", image_size=resolution, indices=indices)
    return images.float() / PIXEL_MAX, labels


def ordered_batches(data_dir: Path, resolution: int, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The whole train split once, in stored order, ``batch_size`` images at a time (read batch by batch)."""
    count = len(split_labels(data_dir, "train"))
    for start in range(0, count, batch_size):
        yield train_images(data_dir, resolution, list(range(start, min(start + batch_size, count))))


def shuffled_batches(count: int, batch_size: int, generator: torch.Generator,
                     read: Callable[[list[int]], tuple[torch.Tensor, torch.Tensor]]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """LGM's real batches (§2.2 step 2): endless epochs over ``count`` training images, each a fresh permutation drawn
    from ``generator`` cut into batches of ``batch_size`` (the last incomplete batch dropped, as a shuffling loader with
    ``drop_last``); a split smaller than one batch gives the whole split in a new order each time. Each batch is
    ``read(indices)``, so only one batch of images is in memory (ImageNet-1K's train split is 1.28M files)."""
    size = min(batch_size, count)
    while True:
        order = torch.randperm(count, generator=generator, device=generator.device).cpu()
        for start in range(0, len(order) - size + 1, size):
            yield read(order[start:start + size].tolist())
