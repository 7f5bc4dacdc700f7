"""Minimax fine-tuning: only DiffFit's parameters change, γ folds exactly, no steps is plain DiT, the
reference's minimax terms and memories, tied and untied label tables.

The one-step agreement with the official code is tests/test_golden_minimax.py; the conditioning on
an ImageNet subset's class ids is tests/test_imagenet_conditioning.py.
"""
from __future__ import annotations

import pytest
import torch

from evaluation.core.errors import InputError
from evaluation.data.datasets import dataset_info
from methods.diffusion.backbone import load_backbone, open_backbone
from methods.diffusion.official_dit import shared_parameters_tied
from methods.minimax_finetune import (
    Memories,
    batch_indices,
    finetune,
    minimax_terms,
    trainable_named_parameters,
)
from methods.minimax import MinimaxParams
from methods.registry import DistillContext, get_method
from tests.conftest import SAMPLER, method_params, typed_params
from tests.workflow_run import load_script

DIGITS = range(10)   # the digits' backbone class ids


def tuned(tiny_backbone_dir, latents_path, backbone=None, **params):
    settings = typed_params("minimax", **{"steps": 3, "batch_size": 8, "ema_decay": 0.0, **params})
    return finetune(backbone or open_backbone(tiny_backbone_dir), torch.load(latents_path), settings, "cpu",
                    backbone_labels=DIGITS)


def gamma_folded(transformer, blocks: int) -> set[str]:
    layers = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "ff.net.2")
    return {f"transformer_blocks.{i}.{layer}.weight" for i in range(blocks) for layer in layers}


@pytest.mark.parametrize("gamma_blocks", [14, 1, 0])
def test_only_difffit_parameters_change(tiny_backbone_dir, latents_path, gamma_blocks):
    before = open_backbone(tiny_backbone_dir).transformer
    after = tuned(tiny_backbone_dir, latents_path, gamma_blocks=gamma_blocks).transformer
    allowed = set(trainable_named_parameters(before))
    folded = gamma_folded(before, min(gamma_blocks, len(before.transformer_blocks)))
    old, new = dict(before.named_parameters()), dict(after.named_parameters())
    changed = {name for name in old if not torch.equal(old[name], new[name])}
    assert changed <= allowed | folded
    assert folded <= changed   # every γ moved, so every folded weight changed
    assert any(name.endswith("embedding_table.weight") for name in changed)
    assert not any(name.startswith("pos_embed") and name.endswith("weight") for name in changed)
    for name in folded:  # γ folds as a per-output-channel scale of the weight rows
        ratio = new[name] / old[name]
        torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio), rtol=1e-4, atol=1e-4)


def test_no_steps_is_dit_bit_for_bit(tmp_path, digits_dir, tiny_backbone_dir, latents_path):
    backbone = tuned(tiny_backbone_dir, latents_path, steps=0)
    backbone.save(tmp_path / "minimax")
    ctx = lambda path: DistillContext(dataset_info("digits"), digits_dir, 2, 0, MinimaxParams(), SAMPLER, {}, path)
    assert torch.equal(get_method("minimax").distill(ctx(tmp_path / "minimax")).images,
                       get_method("dit").distill(ctx(tiny_backbone_dir)).images)


def test_tied_label_table_stays_one_parameter_and_saves(tmp_path, tiny_backbone_dir, latents_path):
    """numerics official: one shared table and t-MLP, trained once, saved untied and tied again on load."""
    backbone = tuned(tiny_backbone_dir, latents_path)
    assert shared_parameters_tied(backbone.transformer)
    backbone.save(tmp_path / "tuned")
    loaded = open_backbone(tmp_path / "tuned")
    assert loaded.numerics == "official" and shared_parameters_tied(loaded.transformer)
    for key, value in backbone.transformer.state_dict().items():
        assert torch.equal(value, loaded.transformer.state_dict()[key]), key


def test_untied_copies_are_fine_tuned_independently(tmp_path, tiny_backbone_dir, latents_path):
    """numerics diffusers (a named variant): each block's copy is its own trainable parameter."""
    stock = load_backbone(str(tiny_backbone_dir), numerics="diffusers")
    assert not shared_parameters_tied(stock.transformer)
    tables = [n for n in trainable_named_parameters(stock.transformer) if n.endswith("embedding_table.weight")]
    assert len(tables) == len(stock.transformer.transformer_blocks)
    backbone = tuned(tiny_backbone_dir, latents_path, backbone=stock)
    blocks = backbone.transformer.transformer_blocks
    first, second = (b.norm1.emb.class_embedder.embedding_table.weight for b in blocks[:2])
    assert not torch.equal(first, second)   # each copy got its own block's gradient
    backbone.save(tmp_path / "tuned")
    assert open_backbone(tmp_path / "tuned").numerics == "diffusers"


def test_minimax_terms_are_the_references():
    """1 − min over the whole (class rows × real memory) cosine matrix and the global max over the pseudo
    memory, weighted by λ / (distinct classes of the batch), only for classes with a pseudo memory."""
    gen = torch.Generator().manual_seed(0)
    memories = Memories(3, 4)
    real, fake = torch.randn(4, 3, generator=gen), torch.randn(2, 3, generator=gen)
    memories.push(torch.tensor([0, 0, 2, 2]), real, torch.randn(4, 3, generator=gen))
    memories.generated[0] = fake
    x0, labels = torch.randn(4, 3, generator=gen), torch.tensor([0, 0, 1, 2])
    pos, neg = minimax_terms(x0, labels, memories, 0.002, 0.008)
    cos = lambda a, b: torch.nn.functional.cosine_similarity(a[:, None], b[None], dim=-1)
    num = 3   # classes 0, 1, 2 in the batch; class 1 has no memory and adds no term
    pos_expected = (1 - cos(x0[:2], real[:2]).min()) + (1 - cos(x0[3:], real[2:]).min())
    neg_expected = cos(x0[:2], fake).max() + cos(x0[3:], memories.generated[2]).max()
    torch.testing.assert_close(pos, pos_expected * 0.002 / num)
    torch.testing.assert_close(neg, neg_expected * 0.008 / num)
    empty = Memories(3, 4)
    assert minimax_terms(x0, labels, empty, 0.002, 0.008) == (0, 0)   # the first batch: no terms


def test_memories_are_fifos_of_raw_vectors():
    memories = Memories(2, 3)
    for step in range(3):
        real = torch.full((2, 2, 2), float(step)) + torch.arange(2.0)[:, None, None]
        memories.push(torch.tensor([0, 1]), real, -real)
    assert memories.real[0].shape == (3, 4) and memories.generated[1].shape == (3, 4)
    memories.push(torch.tensor([0, 0]), torch.full((2, 2, 2), 7.0), torch.full((2, 2, 2), 8.0))
    assert memories.real[0][:, 0].tolist() == [2.0, 7.0, 7.0]            # oldest dropped, raw (not unit) rows
    assert memories.generated[0][:, 0].tolist() == [-2.0, 8.0, 8.0]
    assert memories.real[1][:, 0].tolist() == [1.0, 2.0, 3.0]            # a class absent from the batch is untouched


def test_batches_walk_seeded_epoch_permutations():
    steps = [batch_indices(s, 10, 4, seed=0) for s in range(4)]
    assert torch.cat(steps[:2]).unique().numel() == 8             # one epoch: two batches, no repeat, 2 dropped
    assert not torch.equal(torch.cat(steps[:2]), torch.cat(steps[2:]))   # a new permutation per epoch
    assert torch.equal(batch_indices(3, 10, 4, seed=0), steps[3])   # a function of (seed, step): resumable


def test_bad_inputs_fail_before_any_step(tiny_backbone_dir, latents_path):
    with pytest.raises(InputError, match="label table"):
        finetune(open_backbone(tiny_backbone_dir), torch.load(latents_path), typed_params("minimax", steps=1),
                 "cpu", backbone_labels=dataset_info("imagenet_woof").backbone_labels)
    with pytest.raises(InputError, match="batch_size"):
        tuned(tiny_backbone_dir, latents_path, batch_size=100000)


def test_entry_point_conditions_on_the_named_dataset(tmp_path, tiny_backbone_dir, latents_path):
    import json

    spec = json.dumps(method_params("minimax", steps=1, batch_size=4))
    load_script("finetune_backbone").main(
        ["--spec", spec, "--module", "methods.minimax_finetune", "--backbone", str(tiny_backbone_dir),
         "--latents", str(latents_path), "--dataset", "digits", "--out", str(tmp_path / "out")])
    record = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert record["dataset"] == "digits" and record["backbone_labels"] == list(DIGITS)
    assert open_backbone(tmp_path / "out").num_classes == 10
