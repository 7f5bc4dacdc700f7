"""DiT's hybrid loss pieces against torch.distributions / scipy, and its invariants."""
from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import norm

from methods.diffusion.backbone import load_backbone
from methods.diffusion.losses import (
    DiffusionLoss,
    discretized_gaussian_log_likelihood,
    normal_kl,
)


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
                                   torch.Generator().manual_seed(0))
    assert math.isfinite(loss.item())
    loss.backward()
    assert backbone.transformer.proj_out_2.weight.grad.abs().sum() > 0
