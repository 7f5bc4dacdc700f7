"""The sampler step against diffusers' DDPMScheduler and against DiT's formulas in float64."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from methods.diffusion.backbone import dit_scheduler, load_backbone
from methods.diffusion.randomness import seeded
from methods.diffusion.sampler import (
    Sampler,
    guided_output,
    posterior,
    step_coefficients,
)

STEPS = 50


def dit_respaced_chain(steps: int):
    """DiT's GaussianDiffusion on space_timesteps(1000, [steps]), written from its equations."""
    betas = np.linspace(1e-4, 0.02, 1000, dtype=np.float64)
    alphas_cumprod = np.cumprod(1.0 - betas)
    stride = (1000 - 1) / (steps - 1)
    use = sorted({round(i * stride) for i in range(steps)})
    new_betas, last = [], 1.0
    for i, ac in enumerate(alphas_cumprod):
        if i in use:
            new_betas.append(1.0 - ac / last)
            last = ac
    b = np.array(new_betas)
    ac = np.cumprod(1.0 - b)
    ac_prev = np.append(1.0, ac[:-1])
    post_var = b * (1.0 - ac_prev) / (1.0 - ac)
    return {"timesteps": use, "betas": b, "ac": ac, "ac_prev": ac_prev,
            "log_var_clipped": np.log(np.append(post_var[1], post_var[1:])),
            "coef1": b * np.sqrt(ac_prev) / (1.0 - ac),
            "coef2": (1.0 - ac_prev) * np.sqrt(1.0 - b) / (1.0 - ac)}


def test_timesteps_are_dits_respacing():
    coefs = step_coefficients(dit_scheduler(), STEPS)
    assert [c.t for c in coefs] == [round(i * 999 / 49) for i in range(49, -1, -1)]
    assert {45: 917, 44: 897, 30: 612, 25: 510, 24: 489} == {i: coefs[49 - i].t for i in (45, 44, 30, 25, 24)}


def test_step_matches_dit_formulas_in_float64():
    chain = dit_respaced_chain(STEPS)
    coefs = step_coefficients(dit_scheduler(), STEPS)
    gen = torch.Generator().manual_seed(0)
    for k, c in enumerate(coefs):
        i = STEPS - 1 - k  # DiT's loop index on the respaced chain
        x = torch.randn(2, 4, 4, 4, generator=gen, dtype=torch.float64)
        eps = torch.randn(x.shape, generator=gen, dtype=torch.float64)
        v = torch.rand(x.shape, generator=gen, dtype=torch.float64) * 2 - 1
        x0, mean, sigma = posterior(c, x, eps, v)
        ref_x0 = np.sqrt(1 / chain["ac"][i]) * x.numpy() - np.sqrt(1 / chain["ac"][i] - 1) * eps.numpy()
        ref_mean = chain["coef1"][i] * ref_x0 + chain["coef2"][i] * x.numpy()
        frac = (v.numpy() + 1) / 2
        ref_log_var = frac * np.log(chain["betas"][i]) + (1 - frac) * chain["log_var_clipped"][i]
        np.testing.assert_allclose(x0.numpy(), ref_x0, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(mean.numpy(), ref_mean, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(sigma.numpy(), np.exp(0.5 * ref_log_var), rtol=1e-6)


def test_step_matches_diffusers_scheduler_step():
    scheduler = dit_scheduler()
    coefs = step_coefficients(scheduler, STEPS)
    gen = torch.Generator().manual_seed(1)
    for k, c in enumerate(coefs):
        x = torch.randn(3, 4, 8, 8, generator=gen)
        eps = torch.randn(x.shape, generator=gen)
        v = torch.rand(x.shape, generator=gen) * 2 - 1
        expected = scheduler.step(torch.cat([eps, v], 1), c.t, x,
                                  generator=torch.Generator().manual_seed(k)).prev_sample
        _, mean, sigma = posterior(c, x, eps, v)
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(k))
        ours = mean if k == len(coefs) - 1 else mean + sigma * noise  # no noise at t = 0 in both
        torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)


def test_cfg_guides_all_channels_or_only_the_first_three():
    gen = torch.Generator().manual_seed(2)
    cond, uncond = torch.randn(2, 8, 4, 4, generator=gen), torch.randn(2, 8, 4, 4, generator=gen)
    out = torch.cat([cond, uncond])
    eps_all, var_all = guided_output(out, 4, 4.0, None)
    torch.testing.assert_close(eps_all, uncond[:, :4] + 4.0 * (cond[:, :4] - uncond[:, :4]))
    eps3, var3 = guided_output(out, 4, 4.0, 3)
    torch.testing.assert_close(eps3[:, :3], eps_all[:, :3])
    torch.testing.assert_close(eps3[:, 3], cond[:, 3])  # DiT's forward_with_cfg: 4th channel conditional
    torch.testing.assert_close(var3, cond[:, 4:])
    torch.testing.assert_close(var_all, cond[:, 4:])


def test_cfg_scale_one_runs_only_the_conditional_branch(tiny_backbone_dir):
    backbone = load_backbone(str(tiny_backbone_dir))
    out = Sampler(backbone, 5, cfg_scale=1.0).model_output(torch.zeros(3, 4, 8, 8), 500, torch.tensor([0, 1, 2]))
    assert out.shape == (3, 8, 8, 8)


@pytest.fixture(scope="module")
def sampler(tiny_backbone_dir):
    return Sampler(load_backbone(str(tiny_backbone_dir)), steps=8, cfg_scale=4.0)


def test_sampling_is_independent_of_batch_composition(sampler):
    labels, seeds = torch.tensor([0, 1, 2, 3]), [10, 11, 12, 13]
    batched = sampler.sample(labels, seeded(seeds))
    alone = torch.cat([sampler.sample(labels[i:i + 1], seeded(seeds[i:i + 1])) for i in range(4)])
    torch.testing.assert_close(batched, alone, rtol=1e-3, atol=2e-4)  # float32 batched matmuls


def test_same_seed_same_latents_other_seed_other_latents(sampler):
    labels = torch.tensor([4, 5])
    a, b = sampler.sample(labels, seeded([1, 2])), sampler.sample(labels, seeded([1, 2]))
    assert torch.equal(a, b)
    assert not torch.allclose(a, sampler.sample(labels, seeded([3, 4])))


def test_hook_sees_every_step_and_its_shift_reaches_the_sample(sampler):
    seen = []

    def record(state):
        seen.append((state.index, state.t))
        expected_x0 = (state.x_t - (1 - state.alpha_bar) ** 0.5 * state.eps) / state.alpha_bar ** 0.5
        torch.testing.assert_close(state.x0, expected_x0)
        assert state.sigma.shape == state.x_t.shape and state.labels.tolist() == [6, 7]

    delta = 0.25

    def shift_last(state):
        return state.mean + delta if state.index == 0 else None

    labels, seeds = torch.tensor([6, 7]), [5, 6]
    plain = sampler.sample(labels, seeded(seeds), hooks=[record])
    assert [i for i, _ in seen] == list(range(7, -1, -1))
    assert [t for _, t in seen] == [c.t for c in sampler.coefficients]
    shifted = sampler.sample(labels, seeded(seeds), hooks=[shift_last])
    torch.testing.assert_close(shifted, plain + delta)


def test_sampler_needs_a_learned_sigma_model(tiny_backbone_dir):
    backbone = load_backbone(str(tiny_backbone_dir))
    backbone.transformer.register_to_config(out_channels=4)
    with pytest.raises(ValueError, match="learned sigma"):
        Sampler(backbone)
