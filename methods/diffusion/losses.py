"""DiT's training loss for a learned-sigma model: L_simple + L_vlb (Nichol & Dhariwal's hybrid).

Follows facebookresearch/DiT ``GaussianDiffusion.training_losses`` with ``loss_type=MSE`` and
``learn_sigma=True`` (and MinimaxDiffusion's copy of it, which also returns x̂0 as ``output``):

* the schedule tables are float64 (a linear schedule is rebuilt as DiT's ``np.linspace`` in float64
  rather than taken from the scheduler's float32 betas); each is indexed at t and cast to float32
  before it multiplies a float32 tensor, as DiT's ``_extract_into_tensor``;
* x_t = √ᾱ·x + √(1−ᾱ)·ε (``q_sample``); x̂0 = √(1/ᾱ)·x_t − √(1/ᾱ−1)·ε̂ (``_predict_xstart_from_eps``),
  with gradient (Minimax's terms backpropagate through it);
* the MSE on ε plus the variational bound term in bits per dimension, computed with the model mean
  frozen (stop-gradient on ε̂) so that the bound trains only the variance; at t = 0 the bound is the
  discretised-Gaussian decoder NLL.

Every random value (t, then the forward-process noise, then the label-dropout uniforms, in the
official order) is drawn through a :class:`~methods.diffusion.randomness.TrainingRandomness`, so
that golden tests can replay the values the official code consumed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .backbone import Backbone
from .randomness import TrainingRandomness
from .sampler import alphas_cumprod_float64


def normal_kl(mean1, logvar1, mean2, logvar2):
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)), elementwise."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2)
                  + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def _approx_standard_normal_cdf(x):
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def discretized_gaussian_log_likelihood(x, means, log_scales):
    """Log-likelihood of data in [-1, 1] discretised to 256 bins (DiT ``diffusion_utils``)."""
    centered = x - means
    inv_stdv = torch.exp(-log_scales)
    cdf_plus = _approx_standard_normal_cdf(inv_stdv * (centered + 1.0 / 255.0))
    cdf_min = _approx_standard_normal_cdf(inv_stdv * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_cdf_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus,
                       torch.where(x > 0.999, log_one_minus_cdf_min, log_cdf_delta))


def alphas_cumprod_dit(scheduler) -> torch.Tensor:
    """ᾱ in float64 as DiT builds it: a linear schedule from ``np.linspace(β_start, β_end, T, float64)``,
    any other schedule from the scheduler's betas."""
    cfg = scheduler.config
    if cfg.beta_schedule == "linear" and cfg.trained_betas is None:
        betas = torch.linspace(cfg.beta_start, cfg.beta_end, cfg.num_train_timesteps, dtype=torch.float64)
        return torch.cumprod(1.0 - betas, dim=0)
    return alphas_cumprod_float64(scheduler)


@dataclass
class LossTerms:
    """One evaluation of the loss: the drawn values, the per-sample terms and x̂0 (official names)."""
    t: torch.Tensor             # (B,) timesteps
    noise: torch.Tensor         # forward-process noise
    labels: torch.Tensor        # (B,) the labels the network saw (after label dropout)
    mse: torch.Tensor           # (B,) mean over dims of (ε − ε̂)²
    vb: torch.Tensor            # (B,) variational-bound term, bits/dim, ε̂ detached
    x0_pred: torch.Tensor       # x̂0 with gradient
    x_t: torch.Tensor           # the noised input √ᾱ·x + √(1−ᾱ)·ε the network saw

    @property
    def per_sample(self) -> torch.Tensor:
        return self.mse + self.vb

    @property
    def loss(self) -> torch.Tensor:
        """The diffusion loss: mean over the batch of mse + vb."""
        return self.per_sample.mean()


class DiffusionLoss:
    """Hybrid loss over the full 1000-step chain of the backbone's scheduler."""

    def __init__(self, backbone: Backbone):
        ac = alphas_cumprod_dit(backbone.scheduler)
        ac_prev = torch.cat([torch.ones(1, dtype=torch.float64), ac[:-1]])
        betas = 1.0 - ac / ac_prev
        post_var = betas * (1.0 - ac_prev) / (1.0 - ac)
        self.tables = {
            "sqrt_ac": ac.sqrt(), "sqrt_1m_ac": (1.0 - ac).sqrt(),
            "sqrt_recip_ac": (1.0 / ac).sqrt(), "sqrt_recipm1_ac": (1.0 / ac - 1.0).sqrt(),
            "coef_x0": betas * ac_prev.sqrt() / (1.0 - ac),
            "coef_xt": (1.0 - ac_prev) * (1.0 - betas).sqrt() / (1.0 - ac),
            "log_post_var": torch.log(torch.cat([post_var[1:2], post_var[1:]])),
            "log_beta": torch.log(betas),
        }
        self.num_timesteps = len(ac)
        self.backbone = backbone

    def _at(self, name: str, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return self.tables[name].to(like.device)[t].float().view(-1, *([1] * (like.dim() - 1)))

    def __call__(self, x0: torch.Tensor, labels: torch.Tensor, randomness: TrainingRandomness) -> torch.Tensor:
        """Mean over the batch of mse(ε) + vb for drawn t (labels may hold the null id)."""
        return self.terms(x0, labels, randomness).loss

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x̂0 = √(1/ᾱ)·x_t − √(1/ᾱ − 1)·ε̂ (DiT ``_predict_xstart_from_eps``)."""
        return self._at("sqrt_recip_ac", t, x_t) * x_t - self._at("sqrt_recipm1_ac", t, x_t) * eps

    def posterior_mean(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Mean of q(x_{t−1} | x0, x_t): coef_x0·x0 + coef_xt·x_t (DiT ``q_posterior_mean_variance``)."""
        return self._at("coef_x0", t, x0) * x0 + self._at("coef_xt", t, x0) * x_t

    def terms(self, x0: torch.Tensor, labels: torch.Tensor, randomness: TrainingRandomness,
              label_dropout: float = 0.0) -> LossTerms:
        """Draw t, then the noise, then (``label_dropout`` > 0 only, as DiT's ``LabelEmbedder``) the
        dropout uniforms: rows with u < ``label_dropout`` see the null label. Evaluate the network."""
        batch = x0.shape[0]
        t = randomness.timesteps(batch, self.num_timesteps).to(x0.device)
        noise = randomness.noise(x0.shape).to(x0.device, x0.dtype)
        if label_dropout > 0:
            drop = randomness.dropout_uniform(batch).to(x0.device) < label_dropout
            labels = torch.where(drop, self.backbone.null_label, labels)
        x_t = self._at("sqrt_ac", t, x0) * x0 + self._at("sqrt_1m_ac", t, x0) * noise
        out = self.backbone.transformer(x_t, timestep=t, class_labels=labels).sample
        channels = x0.shape[1]
        eps, var_values = out[:, :channels], out[:, channels:]
        mse = ((noise - eps) ** 2).mean(dim=tuple(range(1, x0.dim())))
        vb = self.vb_term(x0, x_t, t, eps.detach(), var_values)
        return LossTerms(t, noise, labels, mse, vb, self.predict_x0(x_t, t, eps), x_t)

    def vb_term(self, x0, x_t, t, eps, var_values) -> torch.Tensor:
        """L_vlb in bits/dim: KL to the true posterior for t > 0, decoder NLL at t = 0."""
        dims = tuple(range(1, x0.dim()))
        true_mean = self.posterior_mean(x0, x_t, t)
        true_logvar = self._at("log_post_var", t, x0)
        pred_x0 = self.predict_x0(x_t, t, eps)
        model_mean = self.posterior_mean(pred_x0, x_t, t)
        frac = (var_values + 1.0) / 2.0
        model_logvar = frac * self._at("log_beta", t, x0) + (1.0 - frac) * true_logvar
        kl = normal_kl(true_mean, true_logvar, model_mean, model_logvar).mean(dim=dims) / math.log(2.0)
        nll = -discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * model_logvar)
        nll = nll.mean(dim=dims) / math.log(2.0)
        return torch.where(t == 0, nll, kl)
