"""DiT's hybrid loss pieces against torch.distributions / scipy, and its invariants."""
from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import norm

from methods.diffusion.backbone import dit_scheduler, load_backbone
from methods.diffusion.losses import (
    DiffusionLoss,
    alphas_cumprod_dit,
    discretized_gaussian_log_likelihood,
    normal_kl,
)
from methods.diffusion.randomness import SeededTraining


def test_normal_kl_matches_torch_distributions():
    gen = torch.Generator().manual_seed(0)
    m1, m2 = torch.randn(50, generator=gen, dtype=torch.float64), torch.randn(50, generator=gen, dtype=torch.float64)
    lv1, lv2 = torch.randn(50, generator=gen, dtype=torch.float64), torch.randn(50, generator=gen, dtype=torch.float64)
    expected = torch.distributions.kl_divergence(torch.distributions.Normal(m1, (0.5 * lv1).exp()),
                                                 torch.distributions.Normal(m2, (0.5 * lv2).exp()))
    torch.testing.assert_close(normal_kl(m1, lv1, m2, lv2), expected)


def test_discretized_likelihood_matches_the_gaussian_bin_mass():
    x = torch.tensor([-0.5, 0.0, 0.3], dtype=torch.float64)
    means = torch.tensor([-0.45, 0.1, 0.3], dtype=torch.float64)
    log_scales = torch.tensor([-2.0, -1.0, -3.0], dtype=torch.float64)
    scale = log_scales.exp().numpy()
    mass = norm.cdf((x + 1 / 255).numpy(), means.numpy(), scale) - norm.cdf((x - 1 / 255).numpy(), means.numpy(), scale)
    ours = discretized_gaussian_log_likelihood(x, means, log_scales).exp().numpy()
    assert ours == pytest.approx(mass, rel=2e-3)  # DiT uses a tanh approximation of the normal CDF


def test_vb_term_vanishes_for_the_true_posterior(tiny_backbone_dir):
    loss = DiffusionLoss(load_backbone(str(tiny_backbone_dir)))
    gen = torch.Generator().manual_seed(1)
    x0, noise = torch.randn(4, 4, 8, 8, generator=gen), torch.randn(4, 4, 8, 8, generator=gen)
    t = torch.tensor([1, 200, 600, 999])
    x_t = loss._at("sqrt_ac", t, x0) * x0 + loss._at("sqrt_1m_ac", t, x0) * noise
    at_min_variance = -torch.ones_like(x0)  # v = -1: model variance = the true posterior variance β̃
    vb = loss.vb_term(x0, x_t, t, noise, at_min_variance)
    torch.testing.assert_close(vb, torch.zeros(4), atol=1e-4, rtol=0)
    wrong = loss.vb_term(x0, x_t, t, noise + 0.5, at_min_variance)
    assert (wrong > 0).all()


def test_loss_is_finite_and_trains_every_parameter_group(tiny_backbone_dir):
    backbone = load_backbone(str(tiny_backbone_dir))
    backbone.transformer.requires_grad_(True)
    loss = DiffusionLoss(backbone)(torch.randn(4, 4, 8, 8), torch.tensor([0, 1, 2, 10]),
                                   SeededTraining(torch.Generator().manual_seed(0)))
    assert math.isfinite(loss.item())
    loss.backward()
    assert backbone.transformer.proj_out_2.weight.grad.abs().sum() > 0


class Logged(SeededTraining):
    """SeededTraining that records the order of its draws."""

    def __init__(self, seed: int):
        super().__init__(torch.Generator().manual_seed(seed))
        self.calls = []

    def timesteps(self, batch, num_timesteps):
        self.calls.append("timesteps")
        return super().timesteps(batch, num_timesteps)

    def noise(self, shape):
        self.calls.append("noise")
        return super().noise(shape)

    def dropout_uniform(self, batch):
        self.calls.append("dropout_uniform")
        return super().dropout_uniform(batch)


def test_draws_follow_the_official_order_and_dropout_uses_the_seam(tiny_backbone_dir):
    """t, then the noise (a plain loss draws nothing else: train_tiny's stream is unchanged), then, only
    with label dropout, the uniforms; rows with u < p see the null label."""
    loss = DiffusionLoss(load_backbone(str(tiny_backbone_dir)))
    x0, labels = torch.randn(6, 4, 8, 8), torch.arange(6)
    plain = Logged(3)
    terms = loss.terms(x0, labels, plain)
    assert plain.calls == ["timesteps", "noise"] and torch.equal(terms.labels, labels)
    gen = torch.Generator().manual_seed(3)
    assert torch.equal(terms.t, torch.randint(0, 1000, (6,), generator=gen))
    assert torch.equal(terms.noise, torch.randn(x0.shape, generator=gen))
    dropped = Logged(3)
    terms = loss.terms(x0, labels, dropped, label_dropout=0.5)
    assert dropped.calls == ["timesteps", "noise", "dropout_uniform"]
    u = torch.rand(6, generator=gen)
    assert torch.equal(terms.labels, torch.where(u < 0.5, 10, labels))
    torch.testing.assert_close(terms.loss, terms.per_sample.mean())


def test_x0_prediction_inverts_the_forward_process(tiny_backbone_dir):
    loss = DiffusionLoss(load_backbone(str(tiny_backbone_dir)))
    gen = torch.Generator().manual_seed(2)
    x0, noise = torch.randn(3, 4, 8, 8, generator=gen), torch.randn(3, 4, 8, 8, generator=gen)
    t = torch.tensor([0, 400, 999])
    x_t = loss._at("sqrt_ac", t, x0) * x0 + loss._at("sqrt_1m_ac", t, x0) * noise
    torch.testing.assert_close(loss.predict_x0(x_t, t, noise), x0, atol=2e-4, rtol=1e-4)


def test_schedule_is_dits_float64_linspace():
    """DiT builds β with np.linspace in float64; diffusers' float32 betas differ by up to 2e-7 in ᾱ."""
    import numpy as np

    betas = np.linspace(1e-4, 0.02, 1000, dtype=np.float64)
    expected = torch.from_numpy(np.cumprod(1.0 - betas))
    torch.testing.assert_close(alphas_cumprod_dit(dit_scheduler()), expected, rtol=1e-15, atol=0)
