"""DiT's training loss for a learned-sigma model: L_simple + L_vlb (Nichol & Dhariwal's hybrid).

Follows facebookresearch/DiT ``GaussianDiffusion.training_losses`` with ``loss_type=MSE`` and
``learn_sigma=True``: the MSE on ε plus the variational bound term in bits per dimension, computed
with the model mean frozen (stop-gradient on ε) so that the bound trains only the variance.
"""
from __future__ import annotations

import math

import torch

from .backbone import Backbone
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


class DiffusionLoss:
    """Hybrid loss over the full 1000-step chain of the backbone's scheduler."""

    def __init__(self, backbone: Backbone):
        ac = alphas_cumprod_float64(backbone.scheduler)
        ac_prev = torch.cat([torch.ones(1, dtype=torch.float64), ac[:-1]])
        betas = 1.0 - ac / ac_prev
        post_var = betas * (1.0 - ac_prev) / (1.0 - ac)
        self.tables = {
            "sqrt_ac": ac.sqrt(), "sqrt_1m_ac": (1.0 - ac).sqrt(),
            "coef_x0": betas * ac_prev.sqrt() / (1.0 - ac),
            "coef_xt": (1.0 - ac_prev) * (1.0 - betas).sqrt() / (1.0 - ac),
            "log_post_var": torch.log(torch.cat([post_var[1:2], post_var[1:]])),
            "log_beta": torch.log(betas),
        }
        self.num_timesteps = len(ac)
        self.backbone = backbone

    def _at(self, name: str, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return self.tables[name].to(like.device)[t].float().view(-1, *([1] * (like.dim() - 1)))

    def __call__(self, x0: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Mean over the batch of mse(ε) + vb for uniformly drawn t (labels may hold the null id)."""
        return self.with_prediction(x0, labels, generator)[0]

    def with_prediction(self, x0: torch.Tensor, labels: torch.Tensor, generator: torch.Generator):
        """The loss and the model's prediction of x0 at the drawn t (with gradient; Minimax's terms)."""
        t = torch.randint(0, self.num_timesteps, (x0.shape[0],), generator=generator).to(x0.device)
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)
        x_t = self._at("sqrt_ac", t, x0) * x0 + self._at("sqrt_1m_ac", t, x0) * noise
        out = self.backbone.transformer(x_t, timestep=t, class_labels=labels).sample
        channels = x0.shape[1]
        eps, var_values = out[:, :channels], out[:, channels:]
        mse = ((noise - eps) ** 2).mean(dim=(1, 2, 3))
        loss = (mse + self.vb_term(x0, x_t, t, eps.detach(), var_values)).mean()
        return loss, (x_t - self._at("sqrt_1m_ac", t, x0) * eps) / self._at("sqrt_ac", t, x0)

    def vb_term(self, x0, x_t, t, eps, var_values) -> torch.Tensor:
        """L_vlb in bits/dim: KL to the true posterior for t > 0, decoder NLL at t = 0."""
        true_mean = self._at("coef_x0", t, x0) * x0 + self._at("coef_xt", t, x0) * x_t
        true_logvar = self._at("log_post_var", t, x0)
        pred_x0 = (x_t - self._at("sqrt_1m_ac", t, x0) * eps) / self._at("sqrt_ac", t, x0)
        model_mean = self._at("coef_x0", t, x0) * pred_x0 + self._at("coef_xt", t, x0) * x_t
        frac = (var_values + 1.0) / 2.0
        model_logvar = frac * self._at("log_beta", t, x0) + (1.0 - frac) * true_logvar
        kl = normal_kl(true_mean, true_logvar, model_mean, model_logvar).mean(dim=(1, 2, 3)) / math.log(2.0)
        nll = -discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * model_logvar)
        nll = nll.mean(dim=(1, 2, 3)) / math.log(2.0)
        return torch.where(t == 0, nll, kl)
