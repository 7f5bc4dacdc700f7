"""Derived seeds: every random choice is a function of a config seed and the unit of work.

As DiT derives each worker's seed from the global seed and its rank, the suite derives the seed of
(generation seed, class, sample index) or (evaluation seed, repeat) with numpy's SeedSequence, so
that results do not depend on batch composition, job order or parallelism.
"""
from __future__ import annotations

from enum import IntEnum

import numpy as np
import torch


# The purposes of the streams derived from one seed, one enum per consumer; the values are the keys
# passed to ``derive_seed`` and are fixed forever (changing one changes every result drawn from it).
class TrainingStream(IntEnum):
    """evaluation/protocols/training.py: ``derive_seed(seed, stream)`` of an evaluation repeat."""
    MODEL_INIT = 0   # the network's initial weights
    DATA = 1         # batch order, augmentation and CutMix draws


class MetricStream(IntEnum):
    """evaluation/metrics/measure.py: ``derive_seed(metrics.seed, stream)``."""
    BOOTSTRAP = 0    # resampled synthetic rows of the confidence intervals
    KID = 1          # KID's subsets
    OT = 2           # the OT dataset distance's real subset


class SubsetStream(IntEnum):
    """evaluation/metrics/ot_distance.py and the figures: ``derive_seed(seed, stream[, ipc])``."""
    REAL_SUBSET = 0       # real samples kept for a distance or a figure
    TSNE = 1              # t-SNE's initialisation
    SYNTHETIC_SUBSET = 2  # synthetic images shown in the figures (per IPC)


class MethodStream(IntEnum):
    """Streams of the distillation methods, keyed with the generation seed (and a class)."""
    DMGD_POSTERIOR = 1   # methods/dmgd.py: derive_seed(seed, class, stream): a class's latent posterior draws
    DMGD_SUPPORT = 2     # methods/dmgd.py: derive_seed(seed, class, stream): a class's support points
    MGD3_MODES = 3       # methods/mgd3.py: derive_seed(seed, class, stream): k-means of one class
    D4M_PROTOTYPES = 4   # methods/d4m.py: derive_seed(seed, class, stream): k-means of one class
    MINIMAX_BATCH = 5    # methods/minimax_finetune.py: latent samples and training draws
    MINIMAX_EPOCH = 6    # methods/minimax_finetune.py: derive_seed(seed, stream, epoch) permutations
    SEMANTIC = 7         # methods/diffusion/randomness.py: a sample's semantic-matching stream
    IMS3_REAL = 8        # methods/ims3.py: derive_seed(seed, class, stream): the real images of a class's centroid


class BackboneTrainingStream(IntEnum):
    """methods/diffusion/train_tiny.py: ``derive_seed(seed of the training config, stream)``."""
    VAE = 1   # the VAE phase's batches
    DIT = 2   # the DiT phase's batches, timesteps and noise


def derive_seed(*keys: int) -> int:
    """A 63-bit seed determined by the integer ``keys`` (order matters)."""
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def generator(*keys: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``derive_seed(*keys)``."""
    return torch.Generator().manual_seed(derive_seed(*keys))
