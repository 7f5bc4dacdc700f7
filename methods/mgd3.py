"""``mgd3``: Mode-Guided Dataset Distillation (MGD³), training-free mode guidance on the backbone.

Mode discovery: per class, k-means with k = IPC on the VAE latents of all the class's training
images, taken as posterior means (the reference encodes with ``latent_dist.mean``); the k-th
sample of a class is guided to centroid k. Mode guidance as the reference DDPM code implements it
(methods_and_protocols.md §2 "MGD3"): while the step index is above ``t_stop``,

    μ ← μ + λ·σ_t·(m_k − x̂0),   σ_t = exp(½ log Σ_t),  x̂0 from the (guided) conditional branch

with λ = 0.1 and t_stop = 25, so guidance runs for indices 49…26. The paper's eq. 6 writes the
term on ε̂ (``ε̂ = ε̃ + λ g σ_t``, the wrong sign for ε) and its Algorithm 1 (DDIM) on ε with
sqrt(1 − ᾱ); the suite follows the code, which shifts the posterior mean. The reference clusters
with scikit-learn ``KMeans(random_state=0)``; the suite's batched torch k-means (k-means++, tested
against scikit-learn's inertia) takes a seed derived from (seed, class).
"""
from __future__ import annotations

import torch

from evaluation.errors import InputError
from evaluation.seeding import generator

from .diffusion.generation import Generation
from .diffusion.kmeans import kmeans
from .diffusion.sampler import StepState
from .registry import DistillContext, SyntheticSet, register_method


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
    ``ctx.classes`` (row ``ctx.rows(label)``)."""
    real = torch.load(ctx.latents_path)
    modes = []
    for c in ctx.classes:
        latents = real["mean"][real["labels"] == c]
        if ctx.ipc > len(latents):
            raise InputError(f"mgd3: ipc {ctx.ipc} exceeds the {len(latents)} training images of class {c}, "
                             f"so k-means cannot find {ctx.ipc} modes; lower the IPC")
        result = kmeans(latents.flatten(1), ctx.ipc, generator=generator(ctx.seed, c, 3), iters=iters,
                        restarts=restarts)
        modes.append(result.centers.view(ctx.ipc, *latents.shape[1:]))
    return torch.stack(modes)


@register_method("mgd3", needs_backbone=True, needs_latents=True, ipc_limited_by_class=True)
def distill(ctx: DistillContext) -> SyntheticSet:
    params = ctx.params
    modes = class_modes(ctx, params["kmeans_iters"], params["kmeans_restarts"])
    generation = Generation.from_context(ctx)

    def guidance(labels: torch.Tensor, index: torch.Tensor) -> list[ModeGuidance]:
        return [ModeGuidance(modes[ctx.rows(labels), index], params["strength"], params["t_stop"])]
    return SyntheticSet(*generation.generate(guidance))
