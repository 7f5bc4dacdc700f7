"""IMS3's inversion-matching (IM) term, the kernel of its fine-tuning (Wang, Chen et al., CVPR 2026,
arXiv 2603.13960; official code Westlake-AGI-Lab/IMS3 ``train_dit.py``; shared/reference/ims3_lgm_sfm.md §1.3).

IM fine-tuning is Minimax's fine-tuning (methods/minimax_finetune.py: DiffFit parameters, γ, label dropout,
memories, representativeness and diversity terms, EMA; the official ``run.sh`` passes ``--condense``) with one
more term per step, built from the step's own draws (t, the noise, x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε):

* **x_prev** = the mean of q(x_{t−1} | x̂0, x_t) with the network's x̂0, gradient kept
  (:meth:`~methods.diffusion.losses.DiffusionLoss.posterior_mean` of ``LossTerms.x0_pred`` and ``LossTerms.x_t``);
  the reference's ``x_prev`` field of ``training_losses``.
* **x_inv** = **one** reverse-DDIM step (η = 0) applied to the **clean latent x0 as if it were x_t at the same
  timestep t**, with the network's ε̂(x0, t, y) under no_grad (:func:`invert_clean_latents`,
  :func:`reverse_ddim_step`): the reference's ``ddim_inversion_step`` → DiT's ``ddim_reverse_sample`` with
  ``clip_denoised=True``. The official model is in train mode there, so this forward has its own label dropout
  draw (p 0.1), independent of the loss's.
* **term** = λ_match·(1 − mean cos) (:func:`inversion_matching_loss`), λ_match = 0.002. The official code takes
  the mean over the **B×B matrix of all pairs** (x_prev_i, x_inv_j) (``ALL_PAIRS``, the default); the paper's
  Eq. (5) L_IM = 1 − cos(z_t^inv, z_t) pairs each sample with its own inversion (``PER_SAMPLE``, the labelled
  variant). The official value is 1 − λ·mean cos, which differs from λ·(1 − mean cos) by the constant 1 − λ:
  same gradient, different logged value. :func:`inversion_matching_term` is the whole term of one step.

Reference differences kept here, as the reference port note (§1.7) decides: both pairings use the code's
one-step inversion (the paper's multi-step Euler inversion, Eq. (3), is not in the code), compare x_prev at
t−1 with the inversion at t+1 (the paper writes both as z_t), and clip x̂0 to [−1, 1] inside the inversion step.
"""
from __future__ import annotations

import torch

from .diffusion.losses import DiffusionLoss, LossTerms, alphas_cumprod_dit

ALL_PAIRS, PER_SAMPLE = "all_pairs", "per_sample"
PAIRINGS = (ALL_PAIRS, PER_SAMPLE)


def _at(table: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``table[t]`` cast to float32 and shaped to broadcast over ``like`` (DiT ``_extract_into_tensor``)."""
    return table.to(like.device)[t].float().view(-1, *([1] * (like.dim() - 1)))


def reverse_ddim_step(x: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, alphas_cumprod: torch.Tensor,
                      clip_denoised: bool = True) -> torch.Tensor:
    """One deterministic reverse-DDIM step x at t → t+1 (DiT ``ddim_reverse_sample``, η = 0):

        x̂0 = √(1/ᾱ_t)·x − √(1/ᾱ_t − 1)·ε̂,  clipped to [−1, 1] when ``clip_denoised``
        ε' = (√(1/ᾱ_t)·x − x̂0) / √(1/ᾱ_t − 1)        (ε̂ itself when nothing was clipped)
        x_{t+1} = √ᾱ_{t+1}·x̂0 + √(1 − ᾱ_{t+1})·ε'

    ``alphas_cumprod``: the float64 ᾱ of the 1000-step chain (``alphas_cumprod_dit``); ᾱ_{t+1} of the last
    timestep is 0, as DiT's ``alphas_cumprod_next``, so t = T−1 returns ε'. ``t``: (B,) timesteps."""
    alphas_next = torch.cat([alphas_cumprod[1:], alphas_cumprod.new_zeros(1)])
    sqrt_recip = _at((1.0 / alphas_cumprod).sqrt(), t, x)
    sqrt_recipm1 = _at((1.0 / alphas_cumprod - 1.0).sqrt(), t, x)
    x0 = sqrt_recip * x - sqrt_recipm1 * eps
    if clip_denoised:
        x0 = x0.clamp(-1, 1)
    eps = (sqrt_recip * x - x0) / sqrt_recipm1
    alpha_next = _at(alphas_next, t, x)
    return x0 * alpha_next.sqrt() + (1 - alpha_next).sqrt() * eps


@torch.no_grad()
def invert_clean_latents(transformer: torch.nn.Module, x0: torch.Tensor, t: torch.Tensor, labels: torch.Tensor,
                         alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """x_inv: the reverse-DDIM step of the clean latents ``x0`` taken as x_t at timesteps ``t``, with the
    network's ε̂(x0, t, labels) (module docstring). No graph: the term's gradient flows through x_prev only.
    ``labels`` are what this forward sees (after its own label dropout, drawn by the caller)."""
    out = transformer(x0, timestep=t, class_labels=labels).sample
    return reverse_ddim_step(x0, out[:, :x0.shape[1]], t, alphas_cumprod)


def _unit_rows(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x.flatten(1), dim=1)


def inversion_matching_loss(x_prev: torch.Tensor, x_inv: torch.Tensor, weight: float,
                            pairing: str = ALL_PAIRS) -> torch.Tensor:
    """λ·(1 − mean cos) between the flattened rows of ``x_prev`` (with gradient) and ``x_inv`` (detached):
    over all B×B pairs (i, j) with ``ALL_PAIRS`` (official code), over the B pairs (i, i) with ``PER_SAMPLE``
    (paper Eq. (5)). Module docstring."""
    if pairing not in PAIRINGS:
        raise ValueError(f"pairing must be one of {PAIRINGS}, not {pairing!r}")
    a, b = _unit_rows(x_prev), _unit_rows(x_inv.detach())
    cosines = a @ b.T if pairing == ALL_PAIRS else (a * b).sum(dim=1)
    return weight * (1 - cosines.mean())


def inversion_matching_term(loss_fn: DiffusionLoss, terms: LossTerms, x0: torch.Tensor,
                            inversion_labels: torch.Tensor, weight: float, pairing: str = ALL_PAIRS) -> torch.Tensor:
    """The IM term of one fine-tuning step: x_prev from the step's loss evaluation ``terms`` (its t, x_t and
    x̂0) against the inversion of its clean latents ``x0`` by the same network (module docstring).
    ``inversion_labels``: the class ids the inversion forward sees, after its own label dropout."""
    x_prev = loss_fn.posterior_mean(terms.x0_pred, terms.x_t, terms.t)
    backbone = loss_fn.backbone
    x_inv = invert_clean_latents(backbone.transformer, x0, terms.t, inversion_labels,
                                 alphas_cumprod_dit(backbone.scheduler))
    return inversion_matching_loss(x_prev, x_inv, weight, pairing)
