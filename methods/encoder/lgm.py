"""LGM's loss: linear gradient matching through a frozen encoder (reference ims3_lgm_sfm.md §2.2, official
``distillation/linear_gm.py``).

Each iteration draws a **fresh random linear classifier** on the encoder's features, W ~ N(0, 0.01²) of shape
(C, F) and b = 0. Its cross-entropy gradient with respect to (W, b) is computed twice:

* on a real batch (ipc × augs_per_batch × C real images, each augmented once), without a graph: g_real;
* on the synthetic batch (the C·ipc images repeated augs_per_batch times, each copy augmented differently), with
  ``create_graph=True``: g_syn, a differentiable function of the synthetic images through the frozen encoder.

The meta-loss is 1 − cos(g_real, g_syn) over the flattened (W, b) gradients; backpropagating it differentiates
through the first gradient (second order) and the encoder into the image parameters. The official code multiplies
it by 1024 before backward and divides the parameters' gradients by 1024 before Adam's step (manual AMP scaling,
since ``GradScaler`` does not cover second-order gradients): a guard against float16 underflow under autocast with no
effect on the step, so it is the caller's business, not part of this loss. The cross-entropy is the batch mean, as
``F.cross_entropy``; the cosine does not depend on that 1/B factor.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

Encoder = Callable[[torch.Tensor], torch.Tensor]   # normalised images (B, 3, H, W) -> features (B, F)


@dataclass(frozen=True)
class LinearHead:
    """A linear classifier logits = features · Wᵀ + b, its parameters leaves that require grad."""
    weight: torch.Tensor   # (C, F)
    bias: torch.Tensor     # (C,)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return features @ self.weight.T + self.bias


def random_linear_head(feature_dim: int, num_classes: int, generator: torch.Generator, std: float = 0.01,
                       device=None, dtype: torch.dtype = torch.float32) -> LinearHead:
    """A fresh head as the official ``LinearClassifier``: W ~ N(0, std²) (std 0.01) drawn from ``generator``, b = 0
    (§2.2 step 1)."""
    weight = torch.randn(num_classes, feature_dim, generator=generator, dtype=dtype).to(device) * std
    bias = torch.zeros(num_classes, dtype=dtype, device=device)
    return LinearHead(weight.requires_grad_(True), bias.requires_grad_(True))


def head_gradient(head: LinearHead, features: torch.Tensor, labels: torch.Tensor,
                  create_graph: bool) -> torch.Tensor:
    """∂CE(head(features), labels)/∂(W, b), the batch-mean cross-entropy, flattened as [vec(W), b]."""
    loss = F.cross_entropy(head.logits(features), labels)
    grad_weight, grad_bias = torch.autograd.grad(loss, (head.weight, head.bias), create_graph=create_graph)
    return torch.cat([grad_weight.flatten(), grad_bias.flatten()])


def gradient_matching_distance(real_gradient: torch.Tensor, synthetic_gradient: torch.Tensor) -> torch.Tensor:
    """1 − cos(g_real, g_syn) of the flattened gradients (§2.2 step 4)."""
    return 1.0 - F.cosine_similarity(real_gradient.flatten(), synthetic_gradient.flatten(), dim=0)


def real_head_gradient(encoder: Encoder, head: LinearHead, real_images: torch.Tensor,
                       real_labels: torch.Tensor) -> torch.Tensor:
    """g_real: the head's gradient on the (augmented, normalised) real batch, no graph to the encoder or images
    (§2.2 step 2)."""
    with torch.no_grad():
        features = encoder(real_images)
    return head_gradient(head, features, real_labels, create_graph=False).detach()


def lgm_loss(encoder: Encoder, head: LinearHead, synthetic_images: torch.Tensor, synthetic_labels: torch.Tensor,
             real_gradient: torch.Tensor) -> torch.Tensor:
    """LGM's meta-loss 1 − cos(g_real, g_syn), differentiable in ``synthetic_images`` (the augmented, normalised
    copies) through the head's gradient and the frozen ``encoder`` (§2.2 steps 3–4). The encoder's own parameters
    should not require grad (frozen, eval mode)."""
    features = encoder(synthetic_images)
    synthetic_gradient = head_gradient(head, features, synthetic_labels, create_graph=True)
    return gradient_matching_distance(real_gradient, synthetic_gradient)


def repeat_for_augmentations(images: torch.Tensor, labels: torch.Tensor,
                             augs_per_batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The synthetic batch before augmentation: every image and label repeated ``augs_per_batch`` times
    (copy-major: all images once, then all again), each copy to be augmented differently (§2.2 step 3)."""
    return images.repeat(augs_per_batch, 1, 1, 1), labels.repeat(augs_per_batch)
