"""Minimax fine-tuning: only DiffFit's parameters change, γ folds exactly, no steps is plain DiT."""
from __future__ import annotations

import torch

from evaluation.datasets import dataset_info
from methods.diffusion.backbone import open_backbone
from methods.minimax_finetune import (
    Memories,
    finetune,
    minimax_terms,
    trainable_parameters,
)
from methods.registry import DistillContext, get_method
from tests.conftest import SAMPLER, method_params


def tuned(tiny_backbone_dir, latents_path, **params):
    settings = method_params("minimax", **{"steps": 3, "batch_size": 8, "ema_decay": 0.0, **params})
    return finetune(open_backbone(tiny_backbone_dir), torch.load(latents_path), settings, "cpu")


def test_only_difffit_parameters_change(tiny_backbone_dir, latents_path):
    before = open_backbone(tiny_backbone_dir).transformer
    after = tuned(tiny_backbone_dir, latents_path).transformer
    allowed = {name for name, p in before.named_parameters()
               if any(p is q for q in trainable_parameters(before))}
    half = len(before.transformer_blocks) // 2
    folded = {f"transformer_blocks.{i}.{layer}.weight" for i in range(half) for layer in ("attn1.to_out.0", "ff.net.2")}
    old, new = dict(before.named_parameters()), dict(after.named_parameters())
    changed = {name for name in old if not torch.equal(old[name], new[name])}
    assert changed and changed <= allowed | folded
    assert any(name.endswith("embedding_table.weight") for name in changed)
    for name in folded & changed:  # γ folds as a per-output-channel scale of the weight rows
        ratio = new[name] / old[name]
        torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio), rtol=1e-4, atol=1e-4)


def test_no_steps_is_dit_bit_for_bit(tmp_path, digits_dir, tiny_backbone_dir, latents_path):
    backbone = tuned(tiny_backbone_dir, latents_path, steps=0)
    backbone.save(tmp_path / "minimax")
    ctx = lambda path: DistillContext(dataset_info("digits"), digits_dir, 2, 0, {}, SAMPLER, {}, path)
    assert torch.equal(get_method("minimax").distill(ctx(tmp_path / "minimax")).images,
                       get_method("dit").distill(ctx(tiny_backbone_dir)).images)


def test_minimax_terms_against_a_direct_computation():
    gen = torch.Generator().manual_seed(0)
    memories = Memories(2, 4)
    real, fake = torch.randn(4, 3, generator=gen), torch.randn(2, 3, generator=gen)
    memories.push(memories.real, torch.tensor([0, 0, 1, 1]), real)
    memories.push(memories.generated, torch.tensor([0, 0]), fake)
    x0, labels = torch.randn(3, 3, generator=gen), torch.tensor([0, 0, 1])
    rep, div = minimax_terms(x0, labels, memories)
    cos = lambda a, b: torch.nn.functional.cosine_similarity(a[:, None], b[None], dim=-1)
    rep0 = (1 - cos(x0[:2], real[:2]).max(1).values).mean()
    rep1 = (1 - cos(x0[2:], real[2:]).max(1).values).mean()
    torch.testing.assert_close(rep, (rep0 + rep1) / 2)
    torch.testing.assert_close(div, cos(x0[:2], fake).max(1).values.mean())  # class 1 has no memory yet
