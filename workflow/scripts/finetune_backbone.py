"""Rule ``finetune_backbone``: the backbone fine-tuned for one method variant on one dataset.

``--module`` is the method's registry ``finetune`` entry: a module with a ``finetune_backbone(params,
backbone_dir, latents_path, dataset, out, device)`` function (``methods.minimax_finetune``).
"""
import argparse
import importlib
from pathlib import Path

import torch

from evaluation.core.artifacts import resolve_device
from evaluation.core.cli import entry_point, json_object, positive_int


@entry_point
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", required=True, help="the method's fine-tuning module (registry 'finetune')")
    parser.add_argument("--spec", required=True, type=json_object, help="JSON: the variant's params")
    parser.add_argument("--backbone", required=True, type=Path)
    parser.add_argument("--latents", required=True, type=Path)
    parser.add_argument("--dataset", required=True, help="dataset name: its backbone class ids condition the DiT")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=positive_int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    finetune_backbone = importlib.import_module(args.module).finetune_backbone
    finetune_backbone(args.spec, args.backbone, args.latents, args.dataset, args.out, resolve_device(args.device))


if __name__ == "__main__":
    main()
