"""The shared sampler: DiT's respaced DDPM loop with learned-range variance and classifier-free guidance.

Schedule tables come from a diffusers ``DDPMScheduler`` (``dit_scheduler``); the step itself is
written out here because guided methods must see and shift its terms. It reproduces DiT's
``GaussianDiffusion.p_sample`` on the respaced chain (facebookresearch/DiT ``diffusion/``):

    x̂0   = (x_t - sqrt(1 - ᾱ_t) ε) / sqrt(ᾱ_t)                         (clip_denoised=False)
    μ     = sqrt(ᾱ_prev) β_t / (1 - ᾱ_t) · x̂0 + sqrt(α_t) (1 - ᾱ_prev) / (1 - ᾱ_t) · x_t
    log Σ = f · log β_t + (1 - f) · log β̃_t,  f = (v + 1) / 2           (learned range)
    x_{t-1} = μ + exp(½ log Σ) z,  no noise at the last step

with β_t = 1 - ᾱ_t / ᾱ_prev on the respaced chain and β̃_t = β_t (1 - ᾱ_prev) / (1 - ᾱ_t), whose
log is clipped at the last step to the value of the step before (DiT's
``posterior_log_variance_clipped``). ``tests/test_sampler.py`` checks each step against diffusers'
``DDPMScheduler.step`` and against an independent float64 computation of DiT's formulas.

Guided methods plug in through hooks: a hook sees the :class:`StepState` of the conditional
branch (step index, t, x_t, ε, x̂0, μ, σ_t) and may return a shifted mean (DMGD, MGD³). Every random
value (z and each step's noise) comes from the sample's :class:`~.randomness.SampleRandomness`;
``tests/test_golden_dit.py`` replays the official loop's values and matches its every x_t.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ContextManager

import torch

from evaluation.core.errors import InputError

from .backbone import Backbone
from .randomness import SampleRandomness


class NonFiniteSampleError(InputError, FloatingPointError):
    """NaN or infinity in a sampling step; the message names the step, the class and the fix."""


@dataclass
class StepState:
    index: int             # loop index, steps-1 (first) .. 0 (last), as DiT's p_sample_loop
    t: int                 # original timestep 0..999 given to the model
    x_t: torch.Tensor
    eps: torch.Tensor      # guided noise prediction
    x0: torch.Tensor       # predicted clean latent
    mean: torch.Tensor     # posterior mean μ
    sigma: torch.Tensor    # std exp(½ log Σ), per element
    alpha_bar: float       # ᾱ_t (x̂0 = (x_t - sqrt(1-ᾱ) ε)/sqrt(ᾱ); ∂x̂0/∂x_t = 1/sqrt(ᾱ) at fixed ε)
    labels: torch.Tensor   # backbone class ids of the batch
    denoise: Callable[[torch.Tensor], torch.Tensor]  # x_t -> guided x̂0 through the network (autograd)


Hook = Callable[[StepState], "torch.Tensor | None"]
Conditioning = Callable[[int, int], ContextManager]  # (step index, t) -> context around the forward


@dataclass(frozen=True)
class StepCoefficients:
    t: int
    alpha_bar: float
    coef_x0: float
    coef_xt: float
    log_beta: float
    log_posterior_variance: float


def alphas_cumprod_float64(scheduler) -> torch.Tensor:
    """ᾱ in float64 from the scheduler's betas, as DiT's numpy tables (diffusers keeps float32)."""
    return torch.cumprod(1.0 - scheduler.betas.double(), dim=0)


def step_coefficients(scheduler, steps: int) -> list[StepCoefficients]:
    """Per-step coefficients of the respaced chain, in sampling order (first = noisiest)."""
    scheduler.set_timesteps(steps)
    timesteps = [int(t) for t in scheduler.timesteps]
    alphas_cumprod = alphas_cumprod_float64(scheduler)
    coefs, posterior_vars = [], []
    for k, t in enumerate(timesteps):
        a_t = float(alphas_cumprod[t])
        a_prev = float(alphas_cumprod[timesteps[k + 1]]) if k + 1 < len(timesteps) else 1.0
        beta = 1.0 - a_t / a_prev
        posterior_vars.append(beta * (1.0 - a_prev) / (1.0 - a_t))
        coefs.append((t, a_t, a_prev, beta))
    out = []
    for k, (t, a_t, a_prev, beta) in enumerate(coefs):
        # DiT clips log β̃ at the final step (β̃ = 0 there) to the previous step's value
        var = posterior_vars[k] if posterior_vars[k] > 0 else posterior_vars[k - 1]
        out.append(StepCoefficients(
            t=t, alpha_bar=a_t,
            coef_x0=a_prev ** 0.5 * beta / (1.0 - a_t),
            coef_xt=(1.0 - beta) ** 0.5 * (1.0 - a_prev) / (1.0 - a_t),
            log_beta=float(torch.tensor(beta, dtype=torch.float64).log()),
            log_posterior_variance=float(torch.tensor(var, dtype=torch.float64).log()),
        ))
    return out


def posterior(c: StepCoefficients, x_t: torch.Tensor, eps: torch.Tensor, var_values: torch.Tensor):
    """x̂0, μ and σ of one step (module docstring)."""
    x0 = (x_t - (1.0 - c.alpha_bar) ** 0.5 * eps) / c.alpha_bar ** 0.5
    mean = c.coef_x0 * x0 + c.coef_xt * x_t
    frac = (var_values + 1.0) / 2.0
    log_var = frac * c.log_beta + (1.0 - frac) * c.log_posterior_variance
    return x0, mean, torch.exp(0.5 * log_var)


def guided_output(model_out: torch.Tensor, channels: int, cfg_scale: float,
                  cfg_channels: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Split [cond; uncond] model output into guided ε and the conditional variance values.

    ``cfg_channels=3`` reproduces DiT's ``forward_with_cfg``, which guides only the first three
    latent channels and takes the rest of ε from the conditional branch (DiT issue #41).
    """
    cond, uncond = model_out.chunk(2) if cfg_scale != 1.0 else (model_out, None)
    eps, var_values = cond[:, :channels], cond[:, channels:]
    if uncond is None:
        return eps, var_values
    n = channels if cfg_channels is None else min(cfg_channels, channels)
    guided = uncond[:, :n] + cfg_scale * (cond[:, :n] - uncond[:, :n])
    return torch.cat([guided, eps[:, n:]], dim=1), var_values


class Sampler:
    """DiT's p_sample_loop for a batch of labels; per-sample randomness makes it batch-invariant."""

    def __init__(self, backbone: Backbone, steps: int = 50, cfg_scale: float = 4.0,
                 cfg_channels: int | None = None, autocast_bf16: bool = False, compile: bool = False):
        """``autocast_bf16`` runs the DiT forward under bfloat16 autocast, ``compile`` through
        ``torch.compile`` (config ``performance``; the step arithmetic stays float32 either way)."""
        if not backbone.learns_sigma:
            raise ValueError("the sampler needs a DiT with learned sigma (out_channels = 2 x in_channels)")
        self.backbone = backbone
        self.steps = steps
        self.cfg_scale = cfg_scale
        self.cfg_channels = cfg_channels
        self.autocast_bf16 = autocast_bf16
        self.transformer = torch.compile(backbone.transformer) if compile else backbone.transformer
        self.coefficients = step_coefficients(backbone.scheduler, steps)

    def model_output(self, x_t: torch.Tensor, t: int, labels: torch.Tensor) -> torch.Tensor:
        """One forward of the DiT on [cond; null] (or cond only when cfg_scale == 1)."""
        if self.cfg_scale != 1.0:
            x_t = torch.cat([x_t, x_t])
            labels = torch.cat([labels, torch.full_like(labels, self.backbone.null_label)])
        timestep = torch.full((x_t.shape[0],), t, device=x_t.device, dtype=torch.long)
        with torch.autocast(x_t.device.type, dtype=torch.bfloat16, enabled=self.autocast_bf16):
            out = self.transformer(x_t, timestep=timestep, class_labels=labels).sample
        return out.float()   # no copy when it is float32 already

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, randomness: Sequence[SampleRandomness], hooks: Sequence[Hook] = (),
               conditioning: Conditioning | None = None, init: torch.Tensor | None = None,
               start: int = 0) -> torch.Tensor:
        """Latents for ``labels`` (backbone class ids); sample i draws its noise from ``randomness[i]``
        (``randomness.seeded(seeds)`` for the suite's derived streams).

        ``conditioning(index, t)`` wraps each forward (DMGD's dynamic label embeddings).
        ``init`` (clean latents) with ``start`` > 0 begins at the start-th step from
        sqrt(ᾱ_t)·init + sqrt(1 − ᾱ_t)·z, as an image-to-image pipeline (D⁴M); otherwise from z.
        """
        device = self.backbone.device
        channels = self.backbone.latent_shape[0]
        shape = self.backbone.latent_shape
        x = torch.stack([r.initial_noise(shape) for r in randomness]).to(device)
        if init is not None and start > 0:
            a = self.coefficients[start].alpha_bar
            x = a ** 0.5 * init.to(x) + (1.0 - a) ** 0.5 * x
        labels = labels.to(device)
        last = len(self.coefficients) - 1
        for k, c in enumerate(self.coefficients):
            if k < start:
                continue
            context = (lambda: conditioning(last - k, c.t)) if conditioning else contextlib.nullcontext

            def denoise(x_t: torch.Tensor, c=c, context=context) -> torch.Tensor:
                with context():
                    eps_t, _ = guided_output(self.model_output(x_t, c.t, labels), channels,
                                             self.cfg_scale, self.cfg_channels)
                return (x_t - (1.0 - c.alpha_bar) ** 0.5 * eps_t) / c.alpha_bar ** 0.5

            with context():
                model_out = self.model_output(x, c.t, labels)
            eps, var_values = guided_output(model_out, channels, self.cfg_scale, self.cfg_channels)
            x0, mean, sigma = posterior(c, x, eps, var_values)
            for hook in hooks:
                state = StepState(last - k, c.t, x, eps, x0, mean, sigma, c.alpha_bar, labels, denoise)
                shifted = hook(state)
                if shifted is not None:
                    mean = shifted
            if k == last:
                x = mean
            else:
                x = mean + sigma * torch.stack([r.step_noise(last - k, shape) for r in randomness]).to(device)
            if not torch.isfinite(x).all():   # one check per step: NaN and inf reach x from every term
                raise non_finite_error(last - k, c.t, eps, x, labels)
        return x


def non_finite_error(index: int, t: int, eps: torch.Tensor, x: torch.Tensor,
                     labels: torch.Tensor) -> NonFiniteSampleError:
    """The error of a step whose new sample ``x`` is not finite, naming the first bad sample's class
    and whether the backbone's guided noise ``eps`` already was (the weights or cfg_scale) or only
    the step after a guidance hook (the method's guidance scale)."""
    noise_finite = torch.isfinite(eps).flatten(1).all(1)
    if not noise_finite.all():
        row = int((~noise_finite).nonzero()[0])
        return NonFiniteSampleError(
            f"non-finite guided noise of the backbone at step index {index} (t={t}) for backbone class "
            f"{int(labels[row])}; lower sampler.cfg_scale, or re-make the backbone if its weights are damaged")
    row = int((~torch.isfinite(x).flatten(1).all(1)).nonzero()[0])
    return NonFiniteSampleError(
        f"non-finite samples at step index {index} (t={t}) for backbone class {int(labels[row])}; lower "
        f"the method's guidance scale (e.g. rho, strength) or sampler.cfg_scale")
