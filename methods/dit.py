"""``dit``: plain class-conditional sampling from the backbone (the "DiT" rows of the tables).

DiT's ``sample.py`` as used by the Minimax/MGD³/DMGD baselines: 50 respaced DDPM steps with the
learned-range variance and CFG 4 (methods_and_protocols.md §2), all classes advancing together in
one batch (the reference scripts sample one image at a time; the result is the same, per-sample
noise streams make it independent of batching).
"""
from __future__ import annotations

from .diffusion.generation import Generation
from .params import NoParams
from .registry import DistillContext, SyntheticSet, register_method


@register_method("dit", needs_backbone=True, params=NoParams)
def distill(ctx: DistillContext) -> SyntheticSet:
    return SyntheticSet(*Generation.from_context(ctx).generate())
