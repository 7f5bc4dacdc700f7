"""DMGD semantic matching: stage boundaries, blend weights, rescaling, and the model patch."""
from __future__ import annotations

import math

import pytest
import torch
from diffusers.models.embeddings import LabelEmbedding

from methods.diffusion.backbone import load_backbone
from methods.diffusion.randomness import seeded
from methods.diffusion.semantic import (
    DynamicLabels,
    SemanticSchedule,
    StepLabels,
    dynamic_label_embedding,
    label_embedders,
    rescale,
)
from methods.dmgd_fidelity import resolve_fidelity

T = {i: round(i * 999 / 49) for i in range(50)}  # DiT's respaced timesteps


BLEND = {"official": "timestep_lambda", "paper": "step_sigma"}


def schedule(fidelity, window=(25, 45), beta_n=0.06, beta_s=0.01):
    return SemanticSchedule(BLEND[fidelity], window[0], window[1], beta_n, beta_s, steps=50)


@pytest.mark.parametrize("index, expected", [
    (49, (0.0, 0.06, 0.0)), (45, (0.0, 0.06, 0.0)),           # t = 917 > 900: exploration, no y*
    (44, (math.sqrt(3 / 400), 0.06 * math.sqrt(397 / 400), 0.01 * math.sqrt(397 / 400))),  # t = 897
    (30, (math.sqrt(288 / 400), 0.06 * math.sqrt(112 / 400), 0.01 * math.sqrt(112 / 400))),  # t = 612
    (25, (math.sqrt(390 / 400), 0.06 * math.sqrt(10 / 400), 0.01 * math.sqrt(10 / 400))),   # t = 510
    (24, None), (0, None)])                                    # t < 500: plain label
def test_official_stages_follow_the_original_timestep(index, expected):
    weights = schedule("official").weights(index, T[index])
    assert weights == (None if expected is None else pytest.approx(expected))


@pytest.mark.parametrize("index, expected", [
    (49, (0.0, 1.0, 0.0)), (45, (0.0, 1.0, 0.0)),                      # i >= t1: y = n
    (35, (math.sqrt(0.5), (1 - math.sqrt(0.5)) * 0.06, (1 - math.sqrt(0.5)) * 0.01)),  # σ = 10/20
    (26, (math.sqrt(19 / 20), (1 - math.sqrt(19 / 20)) * 0.06, (1 - math.sqrt(19 / 20)) * 0.01)),
    (25, None), (3, None)])                                             # i <= t2: y
def test_paper_stages_follow_eq_40_on_the_step_index(index, expected):
    weights = schedule("paper").weights(index, T[index])
    assert weights == (None if expected is None else pytest.approx(expected))


def test_windows_without_exploration_or_refinement():
    no_exploration = schedule("paper", window=(25, 50))
    assert no_exploration.weights(49, T[49])[0] == pytest.approx(math.sqrt(1 / 25))
    no_refinement = schedule("paper", window=(-1, 45))
    assert no_refinement.weights(0, T[0]) is not None
    assert not schedule("official", beta_n=0.0, beta_s=0.0).active


def test_rescale_matches_target_statistics():
    gen = torch.Generator().manual_seed(0)
    vectors, target = torch.randn(3, 64, generator=gen) * 5 + 2, torch.randn(3, 64, generator=gen)
    out = rescale(vectors, target, dims=(1,))
    torch.testing.assert_close(out.mean(1), target.mean(1))
    torch.testing.assert_close(out.std(1), target.std(1))
    # an affine image of the target is mapped back onto it (eq. 42 is invariant to scale and shift)
    torch.testing.assert_close(rescale(3 * target - 1, target, dims=(1,)), target, atol=1e-5, rtol=1e-5)


TIMESTEPS = [(i, T[i]) for i in range(49, -1, -1)]


def dynamic(fidelity, labels=(1, 2), seeds=(11, 12), dataset=tuple(range(10)), **overrides):
    return DynamicLabels(schedule(fidelity), resolve_fidelity({"preset": fidelity, **overrides}), torch.tensor(labels),
                         torch.tensor(dataset), seeded(seeds), embed_dim=16, timesteps=TIMESTEPS)


@pytest.mark.parametrize("fidelity", ["official", "paper"])
@pytest.mark.parametrize("other_class", ["per_sample", "per_step"])
def test_other_class_is_another_class_of_the_dataset(fidelity, other_class):
    dataset = (193, 182, 258, 162)
    labels = dataset * 5
    d = dynamic(fidelity, labels=labels, seeds=range(20), dataset=dataset, other_class=other_class)
    steps = [d.for_step(i, T[i]).other[:20] for i in range(26, 50) if d.for_step(i, T[i]) is not None]
    for other in steps:
        assert (other != torch.tensor(labels)).all() and set(other.tolist()) <= set(dataset)
    varies = any(not torch.equal(steps[0], o) for o in steps[1:])
    # both presets keep one y* per sample (the official random.choice before the loop; Algorithm 1)
    assert varies == (other_class == "per_step")


def embed_step(fidelity):
    return dynamic(fidelity).for_step(35, T[35])


def test_official_embedding_pools_statistics_over_the_cfg_pair():
    table = torch.randn(11, 16, generator=torch.Generator().manual_seed(3))
    step = embed_step("official")
    rows = torch.tensor([1, 2, 10, 10])  # [cond_0, cond_1, null_0, null_1]
    out = step.embed(table, rows)
    for b in range(2):
        pair_out, pair_y = out[[b, b + 2]], table[rows[[b, b + 2]]]
        torch.testing.assert_close(pair_out.mean(), pair_y.mean())
        torch.testing.assert_close(pair_out.std(), pair_y.std())
    assert (step.noise >= 0).all() and (step.noise < 1).all()   # torch.rand_like
    assert not torch.allclose(out[2], out[3])                    # each null row has its own noise


def test_paper_embedding_rescales_each_vector_to_its_label():
    table = torch.randn(11, 16, generator=torch.Generator().manual_seed(4))
    rows = torch.tensor([1, 2, 10, 10])
    out = embed_step("paper").embed(table, rows)
    torch.testing.assert_close(out.mean(1), table[rows].mean(1))
    torch.testing.assert_close(out.std(1), table[rows].std(1))


def test_dynamic_labels_are_per_sample_streams():
    a, b = dynamic("official"), dynamic("official", labels=(2,), seeds=(12,))
    step_a, step_b = a.for_step(40, T[40]), b.for_step(40, T[40])
    torch.testing.assert_close(step_a.noise[[1, 3]], step_b.noise)  # sample 2's noise, alone or batched
    assert a.for_step(10, T[10]) is None


def test_context_manager_patches_every_block_and_always_restores(tiny_backbone_dir):
    backbone = load_backbone(str(tiny_backbone_dir))
    dit = backbone.transformer
    embedders = [m for m in dit.modules() if isinstance(m, LabelEmbedding)]
    assert len(embedders) == dit.config.num_layers  # diffusers: one embedder per block (official numerics: one table)
    x, t, y = torch.randn(2, 4, 8, 8), torch.tensor([500, 500]), torch.tensor([1, 10])
    plain = dit(x, timestep=t, class_labels=y).sample
    step = StepLabels("per_vector", (0.0, 1.0, 0.0), torch.randn(2, dit.inner_dim), torch.tensor([3, 3]))
    with dynamic_label_embedding(label_embedders(dit), step):
        patched = dit(x, timestep=t, class_labels=y).sample
        assert all("forward" in m.__dict__ for m in embedders)
    assert not torch.allclose(plain, patched)
    with pytest.raises(RuntimeError):
        with dynamic_label_embedding(label_embedders(dit), step):
            raise RuntimeError("interrupted sampling")
    assert all("forward" not in m.__dict__ for m in embedders)
    torch.testing.assert_close(dit(x, timestep=t, class_labels=y).sample, plain)


def test_a_shared_table_gets_the_same_embedding_in_every_block(tiny_backbone_dir):
    backbone = load_backbone(str(tiny_backbone_dir))
    embedders = [m for m in backbone.transformer.modules() if isinstance(m, LabelEmbedding)]
    for m in embedders[1:]:
        m.embedding_table = embedders[0].embedding_table  # the original DiT's single shared table
    step = StepLabels("pooled_pair", (0.5, 0.06, 0.01), torch.rand(2, backbone.transformer.inner_dim),
                      torch.tensor([2, 2]))
    with dynamic_label_embedding(embedders, step):
        outs = [m(torch.tensor([1, 10])) for m in embedders]
    assert all(torch.equal(outs[0], o) for o in outs[1:])


@pytest.mark.parametrize("steps", [50, 12, 10, 7, 2])
def test_respaced_timesteps_equal_the_schedulers(steps):
    """The config-time copy of DiT's respacing (no diffusers import) equals the sampler's scheduler."""
    from methods.diffusion.backbone import dit_scheduler
    from methods.diffusion.semantic import respaced_timesteps

    scheduler = dit_scheduler()
    scheduler.set_timesteps(steps)
    assert respaced_timesteps(steps) == list(zip(range(steps - 1, -1, -1), (int(t) for t in scheduler.timesteps)))
