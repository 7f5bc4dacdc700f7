"""``minimax``: sampling from the Minimax-fine-tuned backbone (Gu et al., CVPR 2024).

The fine-tuning is its own DAG job (``methods/minimax_finetune.py``: DiffFit-style parameters,
representativeness and diversity terms over memories, EMA), whose artifact this method receives as
its backbone; generation is then the same DDPM loop as ``dit`` (the reference ``sample.py``).
"""
from __future__ import annotations

from .diffusion.generation import Generation
from .registry import DistillContext, SyntheticSet, register_method


@register_method("minimax", needs_backbone=True, needs_latents=False, finetune="methods.minimax_finetune")
def distill(ctx: DistillContext) -> SyntheticSet:
    return SyntheticSet(*Generation.from_context(ctx).generate())
