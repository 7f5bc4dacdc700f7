"""SFM's loss: statistical flow matching through a frozen encoder (reference ims3_lgm_sfm.md §3.2, official
``distillation/linear_gm.py`` ``match_flow`` and ``baselines/statistic.py``).

**Class statistics, once per dataset and encoder.** μ_c, the mean feature of *all* training images of class c
(centre crop, no augmentation), a pure function of the real features: :func:`class_feature_sums` over batches (sums
add up across batches and chunks), then :func:`class_means`. The official per-class k-means (k = ipc) is stored
but unused by ``match_flow``, so it is not computed here.

**Flow.** The relative flow of class centres t_c is n_c − t_c, where n_c = (Σ_{c'} t_{c'} − t_c) / d is the centre
of the other classes:

* real: flow_real[c] = (Σ μ − μ_c) / (C − 1) − μ_c, a constant C × D matrix;
* synthetic, per iteration: the features of the augs_per_batch (default 1) augmented copies of every image, t_c
  their class mean (= the mean over copies, then over the ipc images of the class), and d = N − 1 with N = C·ipc:
  the official quirk, which for ipc > 1 divides a sum of C − 1 centres by C·ipc − 1 (:func:`synthetic_denominator`
  with ``official=False`` gives C − 1; both agree at ipc 1).

**Loss** (``--method sfm``): 1 − cos(vec(flow_real), vec(flow_syn)), one cosine over the whole flattened C × D
matrix (the official ×1024 / ÷1024 around backward is AMP's business, as in LGM). Variant ``sfm_decouple``:
α·MSE(μ_real, t_syn) + (1 − α)·MSE(n_real, n_syn), α = 1 by default. No linear head and no real images in the loop.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def class_feature_sums(features: torch.Tensor, labels: torch.Tensor,
                       num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class feature sums (C, D) in float64 and counts (C,) of one batch; batches combine by addition."""
    one_hot = F.one_hot(labels, num_classes).to(torch.float64)
    return one_hot.T @ features.to(torch.float64), one_hot.sum(0)


def class_means(sums: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """μ_c = sums_c / counts_c (C, D); every class must have features."""
    empty = (counts == 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"classes {empty} have no features: the statistics need every class's training images")
    return sums / counts[:, None].to(sums.dtype)


def class_centres(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """t_c, the mean of the rows of class c, differentiable in ``features`` and in their dtype (C, D)."""
    one_hot = F.one_hot(labels, num_classes).to(features.dtype)
    counts = one_hot.sum(0)
    if (counts == 0).any():
        raise ValueError("every class needs at least one synthetic image in the batch")
    return (one_hot.T @ features) / counts[:, None]


def other_class_centres(centres: torch.Tensor, denominator: float) -> torch.Tensor:
    """n_c = (Σ_{c'} t_{c'} − t_c) / denominator (C, D)."""
    return (centres.sum(0, keepdim=True) - centres) / denominator


def relative_flow(centres: torch.Tensor, denominator: float) -> torch.Tensor:
    """flow[c] = n_c − t_c: from the class's centre to the centre of the other classes (C, D)."""
    return other_class_centres(centres, denominator) - centres


def real_flow(real_means: torch.Tensor) -> torch.Tensor:
    """The constant target flow of the real class means μ (C, D), denominator C − 1."""
    return relative_flow(real_means, real_means.shape[0] - 1)


def synthetic_denominator(num_classes: int, images_per_class: int, official: bool = True) -> int:
    """The synthetic other-class denominator: C·ipc − 1 as the official code (``official``), else C − 1."""
    return num_classes * images_per_class - 1 if official else num_classes - 1


def sfm_loss(target_flow: torch.Tensor, synthetic_features: torch.Tensor, synthetic_labels: torch.Tensor,
             denominator: float) -> torch.Tensor:
    """1 − cos(vec(flow_real), vec(flow_syn)) over the flattened C × D matrices, differentiable in the synthetic
    features (all augmented copies, with their labels)."""
    centres = class_centres(synthetic_features, synthetic_labels, target_flow.shape[0])
    synthetic = relative_flow(centres, denominator)
    target = target_flow.to(synthetic.dtype)
    return 1.0 - F.cosine_similarity(target.flatten(), synthetic.flatten(), dim=0)


def sfm_decouple_loss(real_means: torch.Tensor, synthetic_features: torch.Tensor, synthetic_labels: torch.Tensor,
                      denominator: float, alpha: float = 1.0) -> torch.Tensor:
    """The ``sfm_decouple`` variant: α·MSE(μ_real, t_syn) + (1 − α)·MSE(n_real, n_syn), element means."""
    num_classes = real_means.shape[0]
    centres = class_centres(synthetic_features, synthetic_labels, num_classes)
    real = real_means.to(centres.dtype)
    own = F.mse_loss(centres, real)
    others = F.mse_loss(other_class_centres(centres, denominator), other_class_centres(real, num_classes - 1))
    return alpha * own + (1.0 - alpha) * others
