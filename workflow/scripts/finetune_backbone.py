"""Rule ``finetune_backbone``: the backbone fine-tuned for one method variant on one dataset.

``--module`` is the method's registry ``finetune`` entry: a module with a ``finetune_backbone(params,
backbone_dir, latents_path, dataset, out, device)`` function (``methods.minimax_finetune``).
"""
import argparse
import importlib
from pathlib import Path

from evaluation.core.cli import add_job_arguments, apply_job_arguments, entry_point, job_spec

# none: the spec is the variant's params, each read with its default (methods.params)
SPEC = job_spec()


@entry_point
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", required=True, help="the method's fine-tuning module (registry 'finetune')")
    parser.add_argument("--spec", required=True, type=SPEC, help="JSON: the variant's params")
    parser.add_argument("--backbone", required=True, type=Path)
    parser.add_argument("--latents", required=True, type=Path)
    parser.add_argument("--dataset", required=True, help="dataset name: its backbone class ids condition the DiT")
    add_job_arguments(parser)
    args = parser.parse_args(argv)
    device = apply_job_arguments(args)
    finetune_backbone = importlib.import_module(args.module).finetune_backbone
    finetune_backbone(args.spec, args.backbone, args.latents, args.dataset, args.out, device)


if __name__ == "__main__":
    main()
