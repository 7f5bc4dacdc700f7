"""The capped, seeded samples the figures draw, chosen from indices and labels before any pixel.

A figure's cost must not grow with the dataset: the t-SNE embeds at most ``max_real`` real features
(a seeded subset of the stored rows) and, per (method, IPC), at most ``max_synthetic`` synthetic
images, a seeded class-stratified subset of the sets' pooled ``labels.csv`` rows; a sample grid
shows the first images of its first classes. Both are picked from the index (``index_synset``,
which decodes nothing), and only the picked images are read (``read_images``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from evaluation.data.datasets import image_tensor, load_rgb


def stratified_sample(labels: np.ndarray, cap: int, seed: int) -> np.ndarray:
    """Sorted indices of at most ``cap`` of ``labels``' rows (all of them when fewer), spread over the
    classes: a seeded random order inside each class, then one row per class in turn (in a seeded
    class order), so that class counts differ by at most one wherever a class has rows to give."""
    labels = np.asarray(labels)
    if len(labels) <= cap:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes, inverse = np.unique(labels, return_inverse=True)
    rank = np.empty(len(labels), dtype=np.int64)
    for c in range(len(classes)):
        rows = np.flatnonzero(inverse == c)
        rank[rng.permutation(rows)] = np.arange(len(rows))
    class_order = rng.permutation(len(classes))
    chosen = np.lexsort((class_order[inverse], rank))[:cap]
    return np.sort(chosen)


def grid_rows(labels: np.ndarray, num_classes: int, max_classes: int, max_samples: int) -> np.ndarray:
    """Sorted indices of the images a sample grid shows: the first ``max_samples`` rows (stored
    order) of each of the first ``max_classes`` classes, as ``samples.select`` takes them."""
    labels = np.asarray(labels)
    return np.sort(np.concatenate([np.flatnonzero(labels == c)[:max_samples]
                                   for c in range(min(max_classes, num_classes))]).astype(np.int64))


def read_images(directory: Path, paths: list[str]) -> torch.Tensor:
    """uint8 Nx3xSxS images of ``paths`` (relative to ``directory``), decoded in that order; the only
    place the figures read pixels."""
    images = []
    for path in paths:
        images.append(image_tensor(load_rgb(Path(directory) / path)))
    return torch.stack(images)
