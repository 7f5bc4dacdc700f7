"""Minimax's fine-tuning settings (methods/minimax_finetune.py), apart from the method module so that the
fine-tuning job and the methods extending it (methods/ims3.py) import them without importing the registry."""
from __future__ import annotations

from dataclasses import dataclass

from .params import param


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
