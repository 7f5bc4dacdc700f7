"""DMGD's semantic matching: dynamic label embeddings over three stages of the sampling loop.

Supplementary eqs. 40–42 (``blend: step_sigma``) and ``SemanticMatching.random_label_conditioning``
of the official code (``blend: timestep_lambda``); methods/dmgd_fidelity.py lists every field. With
step index i (49 … 0) and the stage window [t2, t1] (default [25, 45]):

step_sigma (eq. 40, σ = (t1 − i)/(t1 − t2), eq. 41)::

    ỹ = n                                       i ≥ t1   (stochastic exploration)
    ỹ = √σ·y + (1 − √σ)(β_s·y* + β_n·n)         t2 < i < t1  (dynamic soft label)
    ỹ = y                                       i ≤ t2   (semantic refinement)

timestep_lambda (original timestep t; thresholds T1 = t1·1000/S, T2 = t2·1000/S, i.e. 900 and 500)::

    λ = 0 for t > T1,  (T1 − t)/(T1 − T2) for T2 ≤ t ≤ T1,  1 for t < T2
    ỹ = √λ·y + β_n·√(1−λ)·n + 1[t ≤ T1]·β_s·√(1−λ)·y*

n is drawn at every step (``label_noise``: U[0, 1) as the official ``torch.rand_like`` or the
paper's N(0, I)); y* is one random other class of the dataset, drawn once per sample and kept (the
official code and Algorithm 1, line 6) or anew at every step (``other_class: per_step``). ỹ is
rescaled (eq. 42) to the scalar mean and std pooled over the sample's [cond; null] rows (official)
or each vector to its own label's (paper). Below T2 the official code still blends and rescales,
which returns y up to float rounding; the suite uses y there (``tests/test_golden_dmgd.py``
matches the official trajectories to 1e-5 with this).

Both apply the construction to the null label of classifier-free guidance too (the official code
blends the whole CFG batch; the paper "suggests imposing a dynamic process on it as well").
A window with t1 ≥ S has no exploration stage and one with t2 < 0 no refinement stage (Table 7's
variants; Table 8's tw = [25, 50] equals Table 7's "w/ Semantic Refinement"). With
β_n = β_s = 0 semantic matching is off and sampling is plain DiT. Every random value comes through
the samples' :class:`~.randomness.SampleRandomness`.

The embedding is injected into every DiT block's label embedder (diffusers gives each block its
own table; with ``numerics: official`` they are one shared table, as the original DiT), each block
using its own table, by a context manager that always restores the model.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .randomness import SampleRandomness

if TYPE_CHECKING:  # imported where used: diffusers costs about 2 s to import (see backbone.py)
    from diffusers.models.embeddings import LabelEmbedding

    from methods.dmgd_fidelity import Fidelity


@dataclass(frozen=True)
class SemanticSchedule:
    blend: str               # "timestep_lambda" (official) | "step_sigma" (paper), dmgd_fidelity.CHOICES
    t2: int                  # lower stage boundary (step index)
    t1: int                  # upper stage boundary (step index)
    beta_n: float
    beta_s: float
    steps: int
    num_train_timesteps: int = 1000

    @property
    def active(self) -> bool:
        return self.beta_n != 0.0 or self.beta_s != 0.0

    def weights(self, index: int, t: int) -> tuple[float, float, float] | None:
        """(w_label, w_noise, w_other) of eq. 40 / the official blend, None for the plain label."""
        if self.blend == "step_sigma":
            if index >= self.t1:
                return 0.0, 1.0, 0.0
            if index <= self.t2:
                return None
            root = ((self.t1 - index) / (self.t1 - self.t2)) ** 0.5
            return root, (1.0 - root) * self.beta_n, (1.0 - root) * self.beta_s
        per_step = self.num_train_timesteps / self.steps
        upper, lower = self.t1 * per_step, self.t2 * per_step
        if t < lower:
            return None
        lam = 0.0 if t > upper else (upper - t) / (upper - lower)
        rest = (1.0 - lam) ** 0.5
        return lam ** 0.5, self.beta_n * rest, (self.beta_s * rest if t <= upper else 0.0)


def respaced_timesteps(steps: int, num_train_timesteps: int = 1000) -> list[tuple[int, int]]:
    """(step index, original timestep) of DiT's respaced chain in sampling order: index S−1 … 0 at
    round(j·(T−1)/(S−1)) (golden README; what ``dit_scheduler().set_timesteps(S)`` yields), without
    importing diffusers, for config-time checks."""
    if steps == 1:
        return [(0, 0)]
    return [(j, round(j * (num_train_timesteps - 1) / (steps - 1))) for j in range(steps - 1, -1, -1)]


def rescale(vectors: torch.Tensor, target: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """Eq. 42: give ``vectors`` the mean and std of ``target`` (statistics over ``dims``)."""
    mean, std = vectors.mean(dim=dims, keepdim=True), vectors.std(dim=dims, keepdim=True)
    return (vectors - mean) / std * target.std(dim=dims, keepdim=True) + target.mean(dim=dims, keepdim=True)


class DynamicLabels:
    """Per-step randomness of semantic matching for one batch, drawn through each sample's
    :class:`~.randomness.SampleRandomness` (the same objects its sampler uses) when the batch starts,
    so every network call of a step (also a second one through the network) sees the same values."""

    def __init__(self, schedule: SemanticSchedule, fidelity: Fidelity, labels: torch.Tensor,
                 dataset_labels: torch.Tensor, randomness: list[SampleRandomness], embed_dim: int,
                 timesteps: list[tuple[int, int]]):
        self.schedule, self.rescale = schedule, fidelity.rescale
        self.weights = {index: schedule.weights(index, t) for index, t in timesteps} if schedule.active else {}
        active = [index for index, w in self.weights.items() if w is not None]
        self.slot = {index: k for k, index in enumerate(active)}
        noise, other = [], []
        for label, rand in zip(labels.cpu().tolist(), randomness):
            candidates = dataset_labels.cpu()[dataset_labels.cpu() != label]
            if fidelity.other_class == "per_sample":
                other.append(torch.full((len(active),), rand.other_class(candidates, None)))
            else:
                other.append(torch.tensor([rand.other_class(candidates, index) for index in active], dtype=torch.long))
            noise.append(torch.stack([rand.label_noise(index, (2, embed_dim), fidelity.label_noise)
                                      for index in active]) if active else None)
        # rows as the sampler's CFG batch: [cond_0 … cond_{B-1}, null_0 … null_{B-1}]
        self.noise = torch.cat(torch.stack(noise, 1).unbind(2), 1) if active else None   # [steps, 2B, D]
        self.other = torch.stack(other, 1).repeat(1, 2) if active else None               # [steps, 2B]

    def for_step(self, index: int, t: int) -> StepLabels | None:
        weights = self.weights.get(index)
        if weights is None:
            return None
        k = self.slot[index]
        return StepLabels(self.rescale, weights, self.noise[k], self.other[k])


@dataclass
class StepLabels:
    """The dynamic embedding of one step, applied by every block with its own label table."""
    rescale: str           # "pooled_pair" | "per_vector"
    weights: tuple[float, float, float]
    noise: torch.Tensor    # [2B, D]
    other: torch.Tensor    # [2B] class ids y*

    def embed(self, table: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Embeddings of the forward's rows: [cond; null] under CFG, the cond rows alone at scale 1."""
        w_label, w_noise, w_other = self.weights
        rows, batch = len(labels), len(self.noise) // 2
        y = table[labels]
        mixed = w_label * y + w_noise * self.noise[:rows].to(y) + w_other * table[self.other[:rows].to(labels.device)]
        if self.rescale == "per_vector":
            return rescale(mixed, y, dims=(1,))
        # official: statistics pooled over each sample's rows (b and B + b under CFG)
        groups = lambda v: v.view(rows // batch, batch, -1)
        return rescale(groups(mixed), groups(y), dims=(0, 2)).view_as(y)


def label_embedders(transformer: torch.nn.Module) -> list[LabelEmbedding]:
    """Every label embedder of a DiT (one per block in diffusers, one shared in the original)."""
    from diffusers.models.embeddings import LabelEmbedding

    return [m for m in transformer.modules() if isinstance(m, LabelEmbedding)]


@contextlib.contextmanager
def dynamic_label_embedding(embedders: list[LabelEmbedding], step: StepLabels | None) -> Iterator[None]:
    """Make every label embedder return ``step.embed`` of its own table, and always restore them."""
    if step is None:
        yield
        return
    try:
        for module in embedders:
            module.forward = (lambda labels, force_drop_ids=None, _m=module:
                              step.embed(_m.embedding_table.weight, labels))
        yield
    finally:
        for module in embedders:
            module.__dict__.pop("forward", None)
