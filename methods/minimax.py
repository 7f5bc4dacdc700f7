"""``minimax``: sampling from the Minimax-fine-tuned backbone (Gu et al., CVPR 2024).

The fine-tuning is its own DAG job (``methods/minimax_finetune.py``, one per dataset: DiffFit-style
parameters with the reference's four γ per block folded into the saved weights, label dropout,
representativeness and diversity terms over FIFO memories, EMA), conditioned, like this sampling, on
the dataset's backbone class ids (ImageWoof: 193, 182, …); its artifact, an ordinary diffusers DiT,
is this method's backbone. Generation is then the same DDPM loop as ``dit`` (the reference
``sample.py``, which loads the EMA weights).
"""
from __future__ import annotations

from dataclasses import dataclass

from .diffusion.generation import Generation
from .params import param
from .registry import DistillContext, SyntheticSet, register_method


@dataclass(frozen=True)
class MinimaxParams:
    """The fine-tuning's settings (read by methods/minimax_finetune.py; sampling has none)."""
    steps: int = param(12000, minimum=0)             # Fine-tuning steps (reference: checkpoint at 12000, global batch 8).
    batch_size: int = param(8, minimum=1)            # Batch size.
    lr: float = param(0.001, exclusiveMinimum=0)     # AdamW learning rate.
    weight_decay: float = param(0.0, minimum=0)      # AdamW weight decay.
    lambda_pos: float = param(0.002, minimum=0)      # Weight of the representativeness term.
    lambda_neg: float = param(0.008, minimum=0)      # Weight of the diversity term.
    memory_size: int = param(64, minimum=1)          # Per-class size of the real and generated memories.
    ema_decay: float = param(0.9999, minimum=0, maximum=1)  # EMA decay of the weights used for sampling.
    label_dropout: float = param(0.1, minimum=0, maximum=1)  # Probability that a training row sees the null
    # label (reference: DiT's class_dropout_prob 0.1 in train mode; 0 = none).
    gamma_blocks: int = param(14, minimum=0)         # DiffFit scales gamma (four per block) in the blocks with
    # index below this (reference: 14 of DiT-XL's 28; every block of a shallower DiT).
    seed: int = param(0, minimum=0)                  # Seed of batches, latent samples and training draws.


@register_method("minimax", needs_backbone=True, needs_latents=False, finetune="methods.minimax_finetune",
                 params=MinimaxParams)
def distill(ctx: DistillContext) -> SyntheticSet:
    return SyntheticSet(*Generation.from_context(ctx).generate())
