"""LGM's linear-gradient-matching loss (methods/encoder/lgm.py) against independent computations: per-sample
gradients with torch.func, the closed form of the cross-entropy gradient, and finite differences."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from methods.encoder.distill import math_attention
from methods.encoder.images import extend_pyramid, init_pyramid, render
from methods.encoder.lgm import (
    LinearHead,
    gradient_matching_distance,
    head_gradient,
    lgm_loss,
    random_linear_head,
    real_head_gradient,
    repeat_for_augmentations,
)

CLASSES, FEATURES = 3, 6


def tiny_encoder(dtype=torch.float64) -> nn.Module:
    """A frozen 2-layer conv net with smooth activations (non-zero second derivatives), features (B, 6)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.Tanh(),
                        nn.Conv2d(4, FEATURES, 3, stride=2, padding=1), nn.Tanh(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return net.to(dtype).eval().requires_grad_(False)


def batch(seed: int, size: int, resolution: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(size, 3, resolution, resolution, generator=gen, dtype=torch.float64)
    return images, torch.arange(size) % CLASSES


def head(seed: int = 5, std: float = 0.5) -> LinearHead:
    return random_linear_head(FEATURES, CLASSES, torch.Generator().manual_seed(seed), std=std, dtype=torch.float64)


def per_sample_mean_gradient(weight, bias, features, labels) -> torch.Tensor:
    """Mean over the batch of each sample's own CE gradient (torch.func grad + vmap), flattened [W, b]."""
    def sample_loss(w, b, feature, label):
        return F.cross_entropy((feature @ w.T + b)[None], label[None])
    grad_w, grad_b = vmap(grad(sample_loss, argnums=(0, 1)), in_dims=(None, None, 0, 0))(weight, bias, features, labels)
    return torch.cat([grad_w.mean(0).flatten(), grad_b.mean(0).flatten()])


def test_random_head_draws_from_the_generator_with_the_official_scale():
    first = random_linear_head(512, 100, torch.Generator().manual_seed(0))
    again = random_linear_head(512, 100, torch.Generator().manual_seed(0))
    torch.testing.assert_close(first.weight, again.weight)
    assert first.weight.shape == (100, 512) and first.weight.std().item() == pytest.approx(0.01, rel=0.02)
    assert (first.bias == 0).all() and first.weight.requires_grad and first.bias.requires_grad


def test_head_gradient_is_the_mean_of_per_sample_gradients_and_the_closed_form():
    features, labels = torch.randn(7, FEATURES, dtype=torch.float64), torch.tensor([0, 1, 2, 2, 1, 0, 0])
    fc = head()
    ours = head_gradient(fc, features, labels, create_graph=False)
    torch.testing.assert_close(ours, per_sample_mean_gradient(fc.weight.detach(), fc.bias.detach(), features, labels))
    residual = torch.softmax(fc.logits(features), 1).detach() - F.one_hot(labels, CLASSES)   # ∂CE/∂logits
    closed = torch.cat([(residual.T @ features / 7).flatten(), residual.mean(0)])
    torch.testing.assert_close(ours, closed)


def test_distance_is_one_minus_cosine_zero_for_parallel_and_scale_free():
    g = torch.randn(20, dtype=torch.float64)
    assert gradient_matching_distance(g, 3 * g).item() == pytest.approx(0.0, abs=1e-12)
    assert gradient_matching_distance(g, -g).item() == pytest.approx(2.0)
    other = torch.randn(20, dtype=torch.float64)
    expected = 1 - (g @ other) / (g.norm() * other.norm())
    assert gradient_matching_distance(g, other).item() == pytest.approx(expected.item())


def test_loss_vanishes_when_the_synthetic_batch_is_the_real_batch():
    encoder, fc = tiny_encoder(), head()
    real, labels = batch(1, 6)
    g_real = real_head_gradient(encoder, fc, real, labels)
    assert not g_real.requires_grad
    assert lgm_loss(encoder, fc, real.clone(), labels, g_real).item() == pytest.approx(0.0, abs=1e-12)


def test_second_order_gradient_in_the_images_matches_torch_func():
    """The whole meta-gradient recomputed functionally: encoder by functional_call, the head gradient as the mean
    of vmap'd per-sample gradients, the images' gradient by torch.func.grad."""
    encoder, fc = tiny_encoder(), head()
    real, real_labels = batch(1, 6)
    synthetic, synthetic_labels = batch(2, 3)
    g_real = real_head_gradient(encoder, fc, real, real_labels)
    images = synthetic.clone().requires_grad_(True)
    lgm_loss(encoder, fc, images, synthetic_labels, g_real).backward()

    params = dict(encoder.named_parameters())
    weight, bias = fc.weight.detach(), fc.bias.detach()

    def meta_loss(x):
        features = functional_call(encoder, params, (x,))
        g_syn = per_sample_mean_gradient(weight, bias, features, synthetic_labels)
        return 1 - (g_real @ g_syn) / (g_real.norm() * g_syn.norm())
    expected = grad(meta_loss)(synthetic)
    assert expected.abs().sum() > 0
    torch.testing.assert_close(images.grad, expected)


def test_second_order_gradient_passes_finite_differences():
    encoder, fc = tiny_encoder(), head()
    real, real_labels = batch(3, 6, resolution=4)
    synthetic, synthetic_labels = batch(4, 3, resolution=4)
    g_real = real_head_gradient(encoder, fc, real, real_labels)
    assert torch.autograd.gradcheck(lambda x: lgm_loss(encoder, fc, x, synthetic_labels, g_real),
                                    (synthetic.requires_grad_(True),))


def test_gradient_reaches_the_pyramid_levels_and_not_the_frozen_encoder():
    encoder, fc = tiny_encoder(torch.float32), random_linear_head(FEATURES, CLASSES, torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(6)
    levels = extend_pyramid(init_pyramid(CLASSES, 4, 8, gen), 8, gen)
    real = torch.rand(2 * CLASSES, 3, 8, 8, generator=gen)
    g_real = real_head_gradient(encoder, fc, real, torch.arange(2 * CLASSES) % CLASSES)
    images, labels = repeat_for_augmentations(render(levels, 8), torch.arange(CLASSES), augs_per_batch=2)
    assert images.shape == (2 * CLASSES, 3, 8, 8) and labels.tolist() == [0, 1, 2, 0, 1, 2]
    lgm_loss(encoder, fc, images, labels, g_real).backward()
    assert all(level.grad is not None and level.grad.abs().sum() > 0 for level in levels)
    assert all(p.grad is None for p in encoder.parameters())


def test_loss_differentiates_through_a_tiny_timm_vit():
    """Attention and LayerNorm support the double backward (the math SDPA backend, as distill.math_attention
    forces on GPU)."""
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=16, patch_size=8, depth=1,
                            num_classes=0).eval().requires_grad_(False)
    fc = random_linear_head(vit.num_features, 2, torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(7)
    real_labels, synthetic_labels = torch.tensor([0, 1, 0, 1]), torch.tensor([0, 1])
    g_real = real_head_gradient(vit, fc, torch.rand(4, 3, 16, 16, generator=gen), real_labels)
    images = torch.rand(2, 3, 16, 16, generator=gen).requires_grad_(True)
    lgm_loss(math_attention(vit), fc, images, synthetic_labels, g_real).backward()
    assert images.grad.abs().sum() > 0 and torch.isfinite(images.grad).all()
