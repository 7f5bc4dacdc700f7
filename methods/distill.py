"""Entry point of the ``distill`` rule: run one method variant and write its synthetic set.

Usage: ``python -m methods.distill --spec JSON --data DIR --ipc K --seed S --out DIR
[--backbone DIR] [--device cpu]``, where the spec holds the variant ({method, params}), the
dataset name and the config's ``sampler`` and ``data`` blocks.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from evaluation.artifacts import manifest
from evaluation.datasets import dataset_info
from evaluation.synsets import write_synset

from .registry import DistillContext, get_method


def distill(spec: dict, data_dir: Path, ipc: int, seed: int, out_dir: Path,
            backbone_dir: Path | None = None, latents_path: Path | None = None, device: str = "cpu") -> None:
    started = time.time()
    method = get_method(spec["method"])
    if method.needs_backbone and backbone_dir is None:
        raise ValueError(f"method '{method.name}' needs a backbone; pass --backbone DIR")
    if method.needs_latents and latents_path is None:
        raise ValueError(f"method '{method.name}' needs the real latents; pass --latents FILE")
    info = dataset_info(spec["dataset"])
    ctx = DistillContext(dataset=info, data_dir=Path(data_dir), ipc=ipc, seed=seed,
                         params=spec.get("params", {}), sampler=spec.get("sampler", {}),
                         data=spec.get("data", {}), backbone_dir=backbone_dir,
                         latents_path=latents_path, device=device)
    synset = method.distill(ctx)
    expected = torch.arange(info.num_classes).repeat_interleave(ipc)
    if not torch.equal(synset.labels.cpu(), expected):
        raise RuntimeError(f"method '{method.name}' returned labels that are not {ipc} per class in "
                           f"class order; a method must return ipc images per class, grouped by class")
    write_synset(out_dir, synset.images, synset.labels, info.class_names,
                 manifest(spec, seed=seed, device=device, started=started, ipc=ipc,
                          num_images=len(synset.labels), records=synset.records))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, help="JSON: method, params, dataset, sampler, data")
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--ipc", required=True, type=int)
    parser.add_argument("--seed", required=True, type=int)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--backbone", type=Path, default=None)
    parser.add_argument("--latents", type=Path, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    distill(json.loads(args.spec), args.data, args.ipc, args.seed, args.out, args.backbone, args.latents,
            args.device)


if __name__ == "__main__":
    main()
