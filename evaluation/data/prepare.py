"""Entry point of the ``prepare_data`` rule: validate and prepare one dataset's splits.

Usage: ``python workflow/scripts/prepare_data.py --dataset NAME --spec JSON(config 'data') --out DIR``
"""
from __future__ import annotations

import time
from pathlib import Path

from evaluation.core.artifacts import atomic_path, manifest, write_manifest
from .datasets import prepare


def prepare_data(dataset: str, data_cfg: dict, out: Path) -> None:
    """Prepare ``dataset`` under ``out`` with the config's data block ``data_cfg`` and its manifest."""
    started = time.time()
    with atomic_path(out) as tmp:
        counts = prepare(dataset, tmp, data_cfg)
        write_manifest(tmp, manifest(
            {"dataset": dataset, **data_cfg}, seed=data_cfg.get("split_seed"), device="cpu",
            started=started, split_sizes=counts))
