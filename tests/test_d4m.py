"""D⁴M (ported to the shared DiT): prototypes as scikit-learn's mini-batch k-means, strength 1 is
plain DiT, the img2img start step, bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.cluster import MiniBatchKMeans

from evaluation.config.validate import ConfigError
from evaluation.core.seeding import derive_seed
from methods.d4m import prototypes, start_step
from methods.registry import get_method
from tests.conftest import method_params


@pytest.fixture(scope="module")
def context(digits_context):
    return lambda ipc=2, **params: digits_context("d4m", ipc, **params)


def test_prototypes_are_scikit_learns_minibatch_kmeans_centres(latents_path):
    real = torch.load(latents_path)
    latents = real["mean"][real["labels"] == 3]
    seed = derive_seed(0, 3, 4)
    ours = prototypes(latents, 4, 1, seed)
    reference = MiniBatchKMeans(n_clusters=4, batch_size=4, random_state=seed % 2 ** 32, n_init=3)
    reference.fit(latents.flatten(1).double().numpy())
    np.testing.assert_allclose(ours.flatten(1).numpy(), reference.cluster_centers_, rtol=1e-5, atol=1e-6)
    assert ours.shape == (4, *latents.shape[1:])


def test_start_step_follows_diffusers_img2img():
    assert start_step(50, 0.7) == 15 and start_step(50, 1.0) == 0 and start_step(10, 0.5) == 5


def test_strength_one_is_dit_bit_for_bit(context):
    assert torch.equal(get_method("d4m").distill(context(strength=1.0)).images,
                       get_method("dit").distill(context()).images)


def test_lower_strength_keeps_more_of_the_prototype(context):
    weak = get_method("d4m").distill(context(strength=0.3)).images.float()
    strong = get_method("d4m").distill(context(strength=0.9)).images.float()
    dit = get_method("dit").distill(context()).images.float()
    assert (weak - dit).abs().mean() > (strong - dit).abs().mean()


@pytest.mark.parametrize("strength", [0.0, 1.5, -0.2])
def test_strength_outside_zero_one_is_refused(strength):
    with pytest.raises(ConfigError, match=r"methods\.m\.params\.strength"):
        method_params("d4m", strength=strength)


def test_ipc_above_the_class_size_fails_before_sampling(context):
    with pytest.raises(ValueError, match=r"d4m: ipc 1000 exceeds the \d+ training images"):
        get_method("d4m").distill(context(ipc=1000))
