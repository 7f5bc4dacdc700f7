"""Generation of a synthetic set with the shared sampler: order, batching, seeds, decoding.

Sample i of class c draws all its noise from a seed derived from (seed, c, i), so a set does not
depend on how samples are batched. Samples are ordered round-major (the i-th sample of every class,
then the (i+1)-th): all classes of a dataset advance together in one batch, which is also the order
that greedy progressive matching needs (round i sees the finished rounds < i of its class).

A generation covers the classes of its context (all, or a chunk: methods/chunks.py); c is always
the global dataset label. Per-sample seeds make a chunk's samples those of the unchunked run, but
the floats of a batched forward (and decode) may depend on what else is in the batch: chunks are
bit-identical to the unchunked set when both runs batch the same samples together, which holds
when ``batch_size`` divides the chunk size and the number of classes, and equal to float
tolerance otherwise.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from evaluation.core.seeding import derive_seed

from .backbone import Backbone, open_backbone
from .randomness import SampleRandomness, seeded
from .sampler import Conditioning, Hook, Sampler

BatchFn = Callable[[torch.Tensor, torch.Tensor], object]  # (dataset labels, sample indices) -> per-batch value


@dataclass
class Generation:
    backbone: Backbone
    sampler: Sampler
    backbone_labels: torch.Tensor   # backbone class id of each dataset label
    seed: int
    ipc: int
    batch_size: int
    classes: range | None = None    # dataset labels to generate; None = all
    # (dataset labels, sample indices) -> each sample's randomness; None = streams derived from the seed
    randomness_of: Callable[[torch.Tensor, torch.Tensor], list[SampleRandomness]] | None = None

    def __post_init__(self):
        if self.classes is None:
            self.classes = range(len(self.backbone_labels))

    @classmethod
    def from_context(cls, ctx, sampler_cfg: dict | None = None) -> Generation:
        cfg = sampler_cfg or ctx.sampler
        backbone = open_backbone(ctx.backbone_dir, device=ctx.device)
        sampler = Sampler(backbone, cfg["steps"], cfg["cfg_scale"], cfg["cfg_channels"],
                          autocast_bf16=cfg.get("autocast_bf16", False), compile=cfg.get("compile", False))
        return cls(backbone, sampler, torch.tensor(ctx.dataset.backbone_labels), ctx.seed, ctx.ipc,
                   cfg["batch_size"], ctx.classes)

    def batches(self, by_round: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(dataset labels, sample indices) per batch; ``by_round`` keeps each batch inside a round."""
        classes, n = torch.tensor(self.classes), len(self.classes)
        if by_round:
            return [(classes[s:s + self.batch_size], torch.full_like(classes[s:s + self.batch_size], i))
                    for i in range(self.ipc) for s in range(0, n, self.batch_size)]
        labels, index = classes.repeat(self.ipc), torch.arange(self.ipc).repeat_interleave(n)
        return [(labels[s:s + self.batch_size], index[s:s + self.batch_size])
                for s in range(0, len(labels), self.batch_size)]

    def sample(self, labels: torch.Tensor, index: torch.Tensor, hooks: list[Hook] = (),
               conditioning: Conditioning | None = None, init: torch.Tensor | None = None,
               start: int = 0, randomness: list[SampleRandomness] | None = None) -> torch.Tensor:
        """Latents of the batch; ``randomness`` (default :meth:`randomness`) when a method draws more
        values of the same samples itself (DMGD's semantic matching)."""
        randomness = self.randomness(labels, index) if randomness is None else randomness
        return self.sampler.sample(self.backbone_labels[labels], randomness, hooks, conditioning, init, start)

    def randomness(self, labels: torch.Tensor, index: torch.Tensor) -> list[SampleRandomness]:
        """Each sample's random values: from ``randomness_of`` when given (tests replay recorded values),
        else from streams derived from (seed, class, index)."""
        if self.randomness_of is not None:
            return self.randomness_of(labels, index)
        return seeded([derive_seed(self.seed, int(c), int(i)) for c, i in zip(labels, index)])

    def generate(self, batch_hooks: BatchFn | None = None, batch_init: BatchFn | None = None,
                 start: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Every sample of the set; ``batch_hooks(labels, index)`` gives the hooks of each batch and
        ``batch_init(labels, index)`` its clean starting latents (with ``start``, see
        ``Sampler.sample``). Returns images and labels grouped by class."""
        latents = {}
        for labels, index in self.batches(by_round=False):
            hooks = batch_hooks(labels, index) if batch_hooks else []
            init = batch_init(labels, index) if batch_init else None
            z0 = self.sample(labels, index, hooks, init=init, start=start)
            for c, i, z in zip(labels.tolist(), index.tolist(), z0):
                latents[(c, i)] = z
        return self.decode(latents)

    def decode(self, latents: dict[tuple[int, int], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode {(class, index): latent} into uint8 images and labels, grouped by class."""
        keys = [(c, i) for c in self.classes for i in range(self.ipc)]
        stacked = torch.stack([latents[k] for k in keys])
        images = torch.cat([self.backbone.decode(stacked[s:s + self.batch_size])
                            for s in range(0, len(keys), self.batch_size)])
        return images, torch.tensor([c for c, _ in keys])
