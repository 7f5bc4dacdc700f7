"""``mgd3``: Mode-Guided Dataset Distillation (MGD³, arXiv 2505.18963), training-free mode guidance on the backbone.

No official code runs here: the authors' repository (jachansantiago/mode_guidance) could not be read,
so each formula names the text it follows (methods_and_protocols.md §0 and §2 "MGD3"): the paper, or
the closest copies of the authors' code, llmnjust-afk/ICLR2027_KD ``sample_mode_guidance.py`` and
zelectricsheep/AGS-DD-anonymous ``diffusion/gaussian_diffusion.py`` (``p_sample_loop_with_mode_guidance``).

1. Mode discovery (paper §4; code: ``sample_mode_guidance.py`` ``main``, features from
   ``tsne_plots.get_features_per_class``): per class, k-means with k = IPC on the VAE latents of all
   the class's training images, taken as posterior means (``latent_dist.mean``·scaling factor,
   flattened). The modes are the centroids; the k-th sample of a class is guided to centroid k
   (:func:`class_modes`, ``distill``). Departures: the code clusters with scikit-learn
   ``KMeans(n_clusters=IPC, random_state=0, n_init="auto")``; the suite uses its batched torch k-means
   (``methods/diffusion/kmeans.py``: k-means++, ``kmeans_iters`` Lloyd steps, best of
   ``kmeans_restarts``) seeded from (seed, class, 3), so its centroids are a k-means solution of the
   same data, not scikit-learn's. The code encodes ADM centre crops with RandomHorizontalFlip still
   on; the suite encodes the prepared split once, unflipped (``methods/diffusion/latents.py``).

2. Mode guidance (code, not the paper's equations): while the loop index is above ``t_stop``,

       x_{t−1} = μθ + λ·σ_t·(m_k − x̂0) + σ_t·z,   σ_t = exp(½ log Σθ) (learned range),

   with x̂0 = (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t from the CFG-guided conditional branch, λ = ``strength`` = 0.1 and
   ``t_stop`` = 25, so at 50 steps guidance runs for indices 49…26. :class:`ModeGuidance` is a
   sampler hook that returns the shifted μ; the shared sampler (``methods/diffusion/sampler.py``:
   DiT's respaced DDPM step, CFG) adds σ_t·z. The paper's Eq. 6 writes the term on ε̂
   (``ε̂ = ε̃ + λ g σ_t``, the wrong sign for ε) and its Algorithm 1 (DDIM) as
   ``ε̂ = ε − √(1−ᾱ)·λ·g``; the suite follows the code, which shifts the posterior mean.
   ``t_stop`` is a loop index and is not rescaled with ``sampler.steps``: with S ≤ 26 steps the
   default 25 guides no step (the test profile sets 5 of 10).

3. Sampling settings (methods_and_protocols.md §2): DDPM, 50 steps, CFG 4.0 through DiT's
   ``forward_with_cfg`` (first 3 latent channels; the suite's ``sampler.cfg_channels``), batch 1,
   seeds 0, 1, 2 for three datasets (the MGD3 scripts). Departure: the code draws all noise from
   the global ``torch.manual_seed(seed)`` stream; the suite draws each sample's noise from streams
   derived from (seed, class, index) (``methods/diffusion/generation.py``, ``randomness.py``), so a
   seed does not give the code's images.

Tested against an independent re-derivation in tests/test_mgd3_d4m_reference.py: a float64 DiT
respaced DDPM step with learned-range variance, CFG and the shift of item 2, written from the formulas
above and run with the same network and the same noise on the tiny test backbone, matches the suite's
guided latents to 1e-5 of their largest magnitude (measured ~1e-6, float32 rounding), at the test's
10 steps and at the reference's 50 steps with t_stop 25; a stop one step off or λ off by 10 % is
seen. ``distill`` is checked the same way (sample k of class c guided to centroid k of the suite's
k-means). Not tested: that the suite's centroids equal scikit-learn's ``KMeans``, or anything on DiT-XL/2.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from evaluation.core.errors import InputError
from evaluation.core.seeding import MethodStream, generator

from .diffusion.generation import Generation
from .diffusion.kmeans import kmeans_classes
from .diffusion.latents import load_latents
from .diffusion.sampler import StepState
from .params import param
from .registry import DistillContext, SyntheticSet, register_method


@dataclass(frozen=True)
class Mgd3Params:
    strength: float = param(0.1, minimum=0)       # Mode-guidance scale lambda (MGD3 reference: 0.1).
    t_stop: int = param(25, step_window=True, minimum=-1)  # Guidance runs while the step index is above t_stop
    # (reference 25).
    kmeans_iters: int = param(100, minimum=1)     # Lloyd iterations of the mode discovery.
    kmeans_restarts: int = param(1, minimum=1)    # k-means restarts (best inertia kept).


class ModeGuidance:
    """The mode-guidance hook for one batch: row b is pulled towards ``modes[b]``."""

    def __init__(self, modes: torch.Tensor, strength: float, t_stop: int):
        self.modes, self.strength, self.t_stop = modes, strength, t_stop

    def __call__(self, state: StepState) -> torch.Tensor | None:
        if state.index <= self.t_stop:
            return None
        return state.mean + self.strength * state.sigma * (self.modes.to(state.x0) - state.x0)


def class_modes(ctx: DistillContext, iters: int, restarts: int) -> torch.Tensor:
    """k-means centroids [C, IPC, *latent] of the posterior-mean latents of each class of
    ``ctx.classes`` (row ``ctx.rows(label)``), the classes clustered together in class-batched
    k-means calls; each class's centroids are the ones it gets alone."""
    real = load_latents(ctx.latents_path)
    sizes = torch.bincount(real["labels"], minlength=ctx.classes.stop)
    for c in ctx.classes:   # before any clustering
        if ctx.ipc > int(sizes[c]):
            raise InputError(f"mgd3: ipc {ctx.ipc} exceeds the {int(sizes[c])} training images of class {c}, "
                             f"so k-means cannot find {ctx.ipc} modes; lower the IPC")
    results = kmeans_classes((real["mean"][real["labels"] == c].flatten(1) for c in ctx.classes), ctx.ipc,
                             generators=(generator(ctx.seed, c, MethodStream.MGD3_MODES) for c in ctx.classes),
                             iters=iters, restarts=restarts)
    return torch.stack([result.centers.view(ctx.ipc, *real["mean"].shape[1:]) for result in results])


def check_params(params: Mgd3Params, info: object, sampler: dict) -> None:
    """Config-time check (registry ``check_params``): ``t_stop`` is a step index of the sampler's own
    schedule (the default 25 is for 50 steps); one at or above the first index would switch mode
    guidance off silently, so refuse it."""
    steps = sampler["steps"]
    if params.strength > 0 and params.t_stop >= steps - 1:
        raise InputError(f"t_stop {params.t_stop} is at or above the first step index {steps - 1} of the sampler's "
                         f"{steps} steps, so mode guidance would never act; give t_stop in indices of {steps} steps "
                         f"(the default 25 is for 50) or set strength: 0")


@register_method("mgd3", needs_backbone=True, needs_latents=True, ipc_limited_by_class=True,
                 params=Mgd3Params, check_params=check_params)
def distill(ctx: DistillContext) -> SyntheticSet:
    params = ctx.params
    modes = class_modes(ctx, params.kmeans_iters, params.kmeans_restarts)
    generation = Generation.from_context(ctx)

    def guidance(labels: torch.Tensor, index: torch.Tensor) -> list[ModeGuidance]:
        return [ModeGuidance(modes[ctx.rows(labels), index], params.strength, params.t_stop)]
    return SyntheticSet(*generation.generate(guidance))
