"""IMS3's inversion-matching term (methods/ims3_finetune.py): the reverse-DDIM step against diffusers'
DDIM schedulers, x_prev against the Gaussian posterior, the loss against explicit loops, where the
gradient flows."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import DDIMInverseScheduler

from methods.diffusion.backbone import dit_scheduler, load_backbone
from methods.diffusion.losses import DiffusionLoss, alphas_cumprod_dit
from methods.diffusion.randomness import SeededTraining
from methods.ims3_finetune import (
    ALL_PAIRS,
    PER_SAMPLE,
    invert_clean_latents,
    inversion_matching_loss,
    inversion_matching_term,
    reverse_ddim_step,
)

SCHEDULE = dict(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
TIMESTEPS = (0, 1, 37, 500, 998)


@pytest.fixture(scope="module")
def alphas_cumprod():
    return alphas_cumprod_dit(dit_scheduler())


def randn(*shape, seed=0, scale=1.0):
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_reverse_step_without_clipping_is_diffusers_inverse_ddim_step(alphas_cumprod):
    """DDIMInverseScheduler with 1000 inference steps: step(ε, t+1, x) takes x from t to t+1."""
    inverse = DDIMInverseScheduler(**SCHEDULE, clip_sample=False)
    inverse.set_timesteps(1000)
    x, eps = randn(1, 4, 8, 8, seed=1), randn(1, 4, 8, 8, seed=2)
    for t in TIMESTEPS:
        expected = inverse.step(eps, t + 1, x).prev_sample
        ours = reverse_ddim_step(x, eps, torch.tensor([t]), alphas_cumprod, clip_denoised=False)
        torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


def test_clipped_reverse_step_is_diffusers_inverse_step_from_the_clipped_prediction(alphas_cumprod):
    """DiT's clip_denoised re-derives ε from the clipped x̂0: that is diffusers' inverse DDIM step of a model
    predicting the sample, given clip(x̂0) (its ε = (x − √ᾱ_t·x̂0)/√(1 − ᾱ_t))."""
    inverse = DDIMInverseScheduler(**SCHEDULE, clip_sample=False, prediction_type="sample")
    inverse.set_timesteps(1000)
    x, eps = randn(1, 4, 8, 8, seed=3, scale=3.0), randn(1, 4, 8, 8, seed=4)
    for t in TIMESTEPS:
        a = alphas_cumprod[t].item()
        x0 = (x.double() - (1 - a) ** 0.5 * eps.double()) / a ** 0.5
        assert (x0.abs() > 1).any()   # the clip acts
        expected = inverse.step(x0.clamp(-1, 1).float(), t + 1, x).prev_sample
        ours = reverse_ddim_step(x, eps, torch.tensor([t]), alphas_cumprod)
        # float32: ε' divides a difference by √(1/ᾱ_t − 1), 0.01 at t = 0, so its rounding grows
        torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)


def test_reverse_step_from_the_last_timestep_returns_the_rederived_noise(alphas_cumprod):
    """ᾱ_next of t = 999 is 0 (DiT's alphas_cumprod_next): the result is ε' = (x/√ᾱ − clip(x̂0))/√(1/ᾱ − 1)."""
    x, eps = randn(2, 4, 8, 8, seed=5, scale=2.0), randn(2, 4, 8, 8, seed=6)
    a = alphas_cumprod[999].item()
    x0 = np.clip(x.double().numpy() / np.sqrt(a) - np.sqrt(1 / a - 1) * eps.double().numpy(), -1, 1)
    expected = (x.double().numpy() / np.sqrt(a) - x0) / np.sqrt(1 / a - 1)
    ours = reverse_ddim_step(x, eps, torch.tensor([999, 999]), alphas_cumprod)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_reverse_step_is_per_sample_timestep(alphas_cumprod):
    x, eps, t = randn(3, 4, 8, 8, seed=7), randn(3, 4, 8, 8, seed=8), torch.tensor([5, 400, 900])
    batched = reverse_ddim_step(x, eps, t, alphas_cumprod)
    for i in range(3):
        torch.testing.assert_close(batched[i:i + 1], reverse_ddim_step(x[i:i + 1], eps[i:i + 1], t[i:i + 1],
                                                                       alphas_cumprod))


def test_posterior_mean_is_the_gaussian_posterior_mean(tiny_backbone_dir, alphas_cumprod):
    """q(x_{t−1}|x0, x_t) ∝ N(x_{t−1}; √ᾱ_{t−1}·x0, 1−ᾱ_{t−1})·N(x_t; √α_t·x_{t−1}, β_t), in float64;
    at t = 0 (ᾱ_{−1} = 1) the mean is x0."""
    loss = DiffusionLoss(load_backbone(str(tiny_backbone_dir)))
    x0, x_t = randn(4, 4, 8, 8, seed=9), randn(4, 4, 8, 8, seed=10)
    t = torch.tensor([0, 1, 300, 999])
    ours = loss.posterior_mean(x0, x_t, t).double().numpy()
    ac = alphas_cumprod.numpy()
    np.testing.assert_allclose(ours[0], x0[0].numpy(), rtol=1e-5, atol=1e-6)
    for i in range(1, 4):
        s = int(t[i])
        alpha, prev = ac[s] / ac[s - 1], ac[s - 1]
        precision = 1 / (1 - prev) + alpha / (1 - alpha)
        mean = (np.sqrt(prev) * x0[i].double().numpy() / (1 - prev)
                + np.sqrt(alpha) * x_t[i].double().numpy() / (1 - alpha)) / precision
        np.testing.assert_allclose(ours[i], mean, rtol=1e-5, atol=1e-5)


def cosine(u: np.ndarray, v: np.ndarray) -> float:
    return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))


@pytest.mark.parametrize("pairing", [ALL_PAIRS, PER_SAMPLE])
def test_loss_is_the_explicit_loop(pairing):
    x_prev, x_inv = randn(5, 4, 3, 3, seed=11).double(), randn(5, 4, 3, 3, seed=12).double()
    a, b = x_prev.flatten(1).numpy(), x_inv.flatten(1).numpy()
    if pairing == ALL_PAIRS:
        mean = np.mean([cosine(a[i], b[j]) for i in range(5) for j in range(5)])
    else:
        mean = np.mean([cosine(a[i], b[i]) for i in range(5)])
    ours = inversion_matching_loss(x_prev, x_inv, 0.002, pairing)
    assert ours.shape == ()
    assert ours.item() == pytest.approx(0.002 * (1 - mean), rel=1e-12)


def test_pairings_differ_and_agree_where_they_should():
    x_prev, x_inv = randn(4, 8, seed=13), randn(4, 8, seed=14)
    order = torch.tensor([2, 0, 3, 1])
    shuffled = inversion_matching_loss(x_prev, x_inv[order], 1.0, ALL_PAIRS)
    torch.testing.assert_close(shuffled, inversion_matching_loss(x_prev, x_inv, 1.0, ALL_PAIRS))
    assert inversion_matching_loss(x_prev, x_inv, 1.0, PER_SAMPLE) != inversion_matching_loss(
        x_prev, x_inv[order], 1.0, PER_SAMPLE)
    scaled = x_prev * torch.tensor([0.5, 2.0, 3.0, 7.0])[:, None]   # cosine: per-row scale invariant
    torch.testing.assert_close(inversion_matching_loss(scaled, x_inv, 1.0, PER_SAMPLE),
                               inversion_matching_loss(x_prev, x_inv, 1.0, PER_SAMPLE))
    torch.testing.assert_close(inversion_matching_loss(x_prev, x_prev, 1.0, PER_SAMPLE), torch.tensor(0.0),
                               atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="pairing"):
        inversion_matching_loss(x_prev, x_inv, 1.0, "per_pair")


@pytest.mark.parametrize("pairing", [ALL_PAIRS, PER_SAMPLE])
def test_gradient_reaches_x_prev_only(pairing):
    x_prev = randn(3, 6, seed=15).double().requires_grad_(True)
    x_inv = randn(3, 6, seed=16).double().requires_grad_(True)
    inversion_matching_loss(x_prev, x_inv, 0.002, pairing).backward()
    assert x_inv.grad is None and x_prev.grad.abs().sum() > 0
    assert torch.autograd.gradcheck(lambda p: inversion_matching_loss(p, x_inv, 0.002, pairing), (x_prev,))


def test_the_term_trains_the_network_through_x_prev_and_not_through_the_inversion(tiny_backbone_dir,
                                                                                   alphas_cumprod):
    backbone = load_backbone(str(tiny_backbone_dir))
    dit = backbone.transformer.requires_grad_(True)
    x0, labels = randn(4, 4, 8, 8, seed=17), torch.tensor([0, 1, 2, 3])
    loss_fn = DiffusionLoss(backbone)
    terms = loss_fn.terms(x0, labels, SeededTraining(torch.Generator().manual_seed(0)))
    x_inv = invert_clean_latents(dit, x0, terms.t, labels, alphas_cumprod)
    assert not x_inv.requires_grad
    eps = dit(x0, timestep=terms.t, class_labels=labels).sample[:, :4].detach()
    torch.testing.assert_close(x_inv, reverse_ddim_step(x0, eps, terms.t, alphas_cumprod))
    x_prev = loss_fn.posterior_mean(terms.x0_pred, terms.x_t, terms.t)
    term = inversion_matching_term(loss_fn, terms, x0, labels, 0.002)
    torch.testing.assert_close(term, inversion_matching_loss(x_prev, x_inv, 0.002))
    term.backward()
    assert dit.proj_out_2.bias.grad.abs().sum() > 0
    dit.zero_grad()
    x_prev.detach_()   # without x_prev's graph nothing reaches the network
    assert not inversion_matching_loss(x_prev, x_inv, 0.002).requires_grad
