"""MGD³ on the tiny backbone: reduction to DiT, pull towards the modes, bad input."""
from __future__ import annotations

import pytest
import torch

from methods.diffusion.generation import Generation
from methods.mgd3 import ModeGuidance, class_modes
from methods.registry import get_method


@pytest.fixture(scope="module")
def context(digits_context):
    return lambda ipc=2, **params: digits_context("mgd3", ipc, **params)


def test_without_guidance_mgd3_is_dit_bit_for_bit(context):
    assert torch.equal(get_method("mgd3").distill(context(strength=0.0)).images,
                       get_method("dit").distill(context()).images)


def test_each_sample_moves_towards_its_mode(context):
    ctx = context()
    modes = class_modes(ctx, 100, 1)
    generation = Generation.from_context(ctx)
    # the untrained test DiT predicts ε = 0 here, a tame stand-in for a trained model
    generation.sampler.model_output = lambda x, t, labels: torch.zeros(2 * len(x), 8, *x.shape[2:])  # [cond; null]
    labels, index = generation.batches(by_round=False)[0]
    free = generation.sample(labels, index)
    guided = generation.sample(labels, index, [ModeGuidance(modes[labels, index], 0.1, 4)])
    distance = lambda z: (z - modes[labels, index]).flatten(1).norm(dim=1)
    assert (distance(guided) < distance(free)).all()


def test_modes_are_ipc_centroids_per_class(context):
    modes = class_modes(context(ipc=3), 100, 1)
    assert modes.shape == (10, 3, 4, 8, 8)


def test_ipc_above_the_class_size_fails_before_sampling(context):
    with pytest.raises(ValueError, match=r"mgd3: ipc 1000 exceeds the \d+ training images of class 0"):
        get_method("mgd3").distill(context(ipc=1000))
