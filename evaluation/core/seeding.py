"""Derived seeds: every random choice is a function of a config seed and the unit of work.

As DiT derives each worker's seed from the global seed and its rank, the suite derives the seed of
(generation seed, class, sample index) or (evaluation seed, repeat) with numpy's SeedSequence, so
that results do not depend on batch composition, job order or parallelism.
"""
from __future__ import annotations

import numpy as np
import torch


def derive_seed(*keys: int) -> int:
    """A 63-bit seed determined by the integer ``keys`` (order matters)."""
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def generator(*keys: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``derive_seed(*keys)``."""
    return torch.Generator().manual_seed(derive_seed(*keys))
