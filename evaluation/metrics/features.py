"""Entry point of the ``real_features`` rule: features of one real split, computed once per extractor.

``python workflow/scripts/real_features.py --spec JSON --data DIR --split {train,val,test} --extractor NAME
[--teacher DIR] --out FILE.pt --device cpu``

writes (atomically) a torch file ``{"features": float32 [N, D], "labels": int64 [N], "extractor",
"resize", "split", "manifest"}``; the manifest's ``weights`` is the weight file read. ``spec`` is the
job's config slice (``dataset``, ``extractor``, ``split``; optional ``image_size``: the side ImageNet
images are read at, default the extractor's input side; tensor datasets keep their stored size;
optional ``weights``: the extractor's weight file, ``metrics.inception_weights`` or
``metrics.vgg16_weights``, absent = where its library looks). Synthetic sets go through the same
``Extractor.features`` in memory (``evaluation.metrics.measure``).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from evaluation.core.artifacts import atomic_path, manifest, save_torch, seal
from evaluation.data.datasets import load_split, split_labels, split_paths
from .extractors import Extractor, create_extractor

CHUNK = 1024   # images decoded at once: ImageNet splits never sit in memory whole


def split_features(extractor: Extractor, data_dir: Path, split: str,
                   image_size: int | None = None) -> tuple[np.ndarray, torch.Tensor]:
    """Features and labels of a prepared real split; images are read ``CHUNK`` at a time."""
    labels = split_labels(data_dir, split)
    if split_paths(data_dir, split) is None:
        image_size = None                   # tensor (digits) splits keep their stored size
    elif image_size is None:
        image_size = extractor.input_size   # file-indexed (ImageNet) splits need a side to read at
    chunks = [np.zeros((0, extractor.dim), dtype=np.float32)]
    for start in range(0, len(labels), CHUNK):
        indices = list(range(start, min(start + CHUNK, len(labels))))
        images, _ = load_split(data_dir, split, image_size=image_size, indices=indices)
        chunks.append(extractor.features(images))
    return np.concatenate(chunks), labels


def write_features(spec: dict, data_dir: Path, split: str, extractor_name: str, out: Path, device: str,
                   teacher_dir: Path | None = None) -> dict:
    started = time.time()
    extractor = create_extractor(extractor_name, device, teacher_dir, spec.get("weights"))
    features, labels = split_features(extractor, data_dir, split, spec.get("image_size"))
    record = seal({"features": torch.from_numpy(features), "labels": labels.long(), "extractor": extractor.name,
                   "resize": extractor.resize, "split": split,
                   "manifest": manifest(spec, seed=None, device=device, started=started, count=len(labels),
                                        dim=extractor.dim, weights=extractor.weights)})
    with atomic_path(out) as tmp:
        save_torch(record, tmp)
    return record
