"""``minimax``: sampling from the Minimax-fine-tuned backbone (Gu et al., CVPR 2024).

The fine-tuning is its own DAG job (``methods/minimax_finetune.py``, one per dataset: DiffFit-style
parameters with the reference's four γ per block folded into the saved weights, label dropout,
representativeness and diversity terms over FIFO memories, EMA), conditioned, like this sampling, on
the dataset's backbone class ids (ImageWoof: 193, 182, …); its artifact, an ordinary diffusers DiT,
is this method's backbone. Generation is then the same DDPM loop as ``dit`` (the reference
``sample.py``, which loads the EMA weights).
"""
from __future__ import annotations

from .diffusion.generation import Generation
from .minimax_params import MinimaxParams
from .registry import DistillContext, SyntheticSet, register_method


@register_method("minimax", needs_backbone=True, needs_latents=False, finetune="methods.minimax_finetune",
                 params=MinimaxParams)
def distill(ctx: DistillContext) -> SyntheticSet:
    return SyntheticSet(*Generation.from_context(ctx).generate())
