"""Entry point of the ``prepare_data`` rule: validate and prepare one dataset's splits.

Usage: ``python -m evaluation.data.prepare --dataset NAME --spec JSON(config 'data') --out DIR``
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from evaluation.core.artifacts import atomic_path, manifest, write_manifest
from evaluation.core.cli import entry_point, json_object
from .datasets import prepare


@entry_point
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--spec", required=True, type=json_object, help="JSON of the config's data block")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    started, data_cfg = time.time(), args.spec
    with atomic_path(args.out) as tmp:
        counts = prepare(args.dataset, tmp, data_cfg)
        write_manifest(tmp, manifest(
            {"dataset": args.dataset, **data_cfg}, seed=data_cfg.get("split_seed"), device="cpu",
            started=started, split_sizes=counts))


if __name__ == "__main__":
    main()
