"""The seam through which the diffusion code draws every random value.

The sampler (initial latent, per-step noise), DMGD's semantic matching (label noise, the other class
y*) and fine-tuning (timesteps, forward-process noise, label-dropout uniforms) never call a random
function themselves: they ask one of these small interfaces. The suite's defaults draw from derived
per-sample (or per-job) streams, so images do not depend on batch composition; the golden tests pass
objects that return the values the official code consumed (``tests/golden.py``), with no patching.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch

from evaluation.core.seeding import MethodStream, derive_seed, generator

LABEL_NOISE = ("uniform", "gaussian")   # torch.rand_like (official DMGD) | torch.randn (the paper's N(0, I))


class SampleRandomness(Protocol):
    """Every random value one sample's trajectory consumes; ``index`` is the loop index (S−1 … 0)."""

    def initial_noise(self, shape: Sequence[int]) -> torch.Tensor:
        """z, the starting latent (``torch.randn`` of DiT's sample.py)."""

    def step_noise(self, index: int, shape: Sequence[int]) -> torch.Tensor:
        """The noise added after the step at ``index`` (none at index 0)."""

    def label_noise(self, index: int, shape: Sequence[int], distribution: str) -> torch.Tensor:
        """Semantic matching's n at the network call of ``index``, rows [cond; null] × embedding."""

    def other_class(self, candidates: torch.Tensor, index: int | None) -> int:
        """y*, one of ``candidates`` (the dataset's other classes): once per sample (``index`` None) or per step."""


class SeededSample:
    """The suite's default: a sample's values from streams derived from its seed (generation.py).

    The latent stream gives z and then each step's noise in order (one ``torch.randn`` per call, as
    the plain sampler always has); semantic matching draws from a second stream, so switching it on
    leaves the latent stream untouched.
    """

    def __init__(self, seed: int):
        self.latent_stream = generator(seed)
        self.semantic_stream = torch.Generator().manual_seed(derive_seed(seed, MethodStream.SEMANTIC))

    def initial_noise(self, shape: Sequence[int]) -> torch.Tensor:
        return torch.randn(tuple(shape), generator=self.latent_stream)

    def step_noise(self, index: int, shape: Sequence[int]) -> torch.Tensor:
        return torch.randn(tuple(shape), generator=self.latent_stream)

    def label_noise(self, index: int, shape: Sequence[int], distribution: str) -> torch.Tensor:
        if distribution not in LABEL_NOISE:
            raise ValueError(f"label noise '{distribution}' is unknown; use one of {LABEL_NOISE}")
        draw = torch.rand if distribution == "uniform" else torch.randn
        return draw(tuple(shape), generator=self.semantic_stream)

    def other_class(self, candidates: torch.Tensor, index: int | None) -> int:
        return int(candidates[torch.randint(len(candidates), (1,), generator=self.semantic_stream)])


def seeded(seeds: Sequence[int]) -> list[SeededSample]:
    """Default randomness of a batch of samples with these seeds."""
    return [SeededSample(s) for s in seeds]


class TrainingRandomness(Protocol):
    """The random values of one diffusion-training step (DiT's ``training_losses`` and label dropout)."""

    def timesteps(self, batch: int, num_timesteps: int) -> torch.Tensor:
        """t ~ U{0 … T−1} per row (``torch.randint(0, T, (B,))``)."""

    def noise(self, shape: Sequence[int]) -> torch.Tensor:
        """The forward-process noise (``torch.randn_like(x)``)."""

    def dropout_uniform(self, batch: int) -> torch.Tensor:
        """u ~ U[0, 1) per row; rows with u < p get the null label (DiT's ``LabelEmbedder.token_drop``)."""


class SeededTraining:
    """The suite's default: every training draw from one CPU generator (a checkpointed stream)."""

    def __init__(self, stream: torch.Generator):
        self.stream = stream

    def timesteps(self, batch: int, num_timesteps: int) -> torch.Tensor:
        return torch.randint(0, num_timesteps, (batch,), generator=self.stream)

    def noise(self, shape: Sequence[int]) -> torch.Tensor:
        return torch.randn(tuple(shape), generator=self.stream)

    def dropout_uniform(self, batch: int) -> torch.Tensor:
        return torch.rand(batch, generator=self.stream)
