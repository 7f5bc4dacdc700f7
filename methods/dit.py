"""``dit``: plain class-conditional sampling from the backbone (the "DiT" rows of the tables).

DiT's ``sample.py`` as used by Minimax/MGD³/DMGD baselines: 50 respaced DDPM steps with the
learned-range variance and CFG 4 (methods_and_protocols.md §2). Sample i of class k draws its noise
from a seed derived from (seed, k, i), so the set does not depend on the sampler batch size, and
all classes advance together in one batch.
"""
from __future__ import annotations

import torch

from evaluation.seeding import derive_seed

from .diffusion.backbone import open_backbone
from .diffusion.sampler import Hook, Sampler
from .registry import DistillContext, SyntheticSet, register_method


def generation_order(num_classes: int, ipc: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Dataset labels and per-class sample indices, grouped by class."""
    labels = torch.arange(num_classes).repeat_interleave(ipc)
    return labels, torch.arange(ipc).repeat(num_classes)


def sample_synthetic_set(ctx: DistillContext, hooks: list[Hook] = ()) -> SyntheticSet:
    """Sample ipc images per class with the shared sampler (guided methods pass hooks)."""
    backbone = open_backbone(ctx.backbone_dir, device=ctx.device)
    sampler = Sampler(backbone, ctx.sampler["steps"], ctx.sampler["cfg_scale"], ctx.sampler["cfg_channels"])
    labels, index = generation_order(ctx.dataset.num_classes, ctx.ipc)
    backbone_labels = torch.tensor(ctx.dataset.backbone_labels)[labels]
    seeds = [derive_seed(ctx.seed, int(c), int(i)) for c, i in zip(labels, index)]
    images = []
    batch = ctx.sampler["batch_size"]
    for start in range(0, len(labels), batch):
        latents = sampler.sample(backbone_labels[start:start + batch], seeds[start:start + batch], hooks)
        images.append(backbone.decode(latents))
    return SyntheticSet(torch.cat(images), labels)


@register_method("dit", needs_backbone=True)
def distill(ctx: DistillContext) -> SyntheticSet:
    return sample_synthetic_set(ctx)
