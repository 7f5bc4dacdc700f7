"""SFM's statistics and statistical-flow loss (methods/encoder/sfm.py) against NumPy loops on small arrays."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from methods.encoder.sfm import (
    class_centres,
    class_feature_sums,
    class_means,
    real_flow,
    sfm_decouple_loss,
    sfm_loss,
    synthetic_denominator,
)

C, D = 4, 5


def numpy_class_means(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.stack([features[labels == c].mean(axis=0) for c in range(C)])


def numpy_flow(centres: np.ndarray, denominator: float) -> np.ndarray:
    """flow[c] = (Σ_{c' ≠ c} t_{c'}) / denominator − t_c, summed by an explicit loop."""
    flow = np.zeros_like(centres)
    for c in range(len(centres)):
        others = sum(centres[k] for k in range(len(centres)) if k != c)
        flow[c] = others / denominator - centres[c]
    return flow


def numpy_cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel(), b.ravel()
    return 1.0 - float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def real_set(seed: int = 0, size: int = 23) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.arange(C), rng.integers(0, C, size - C)])
    return rng.normal(size=(size, D)), labels


def test_statistics_are_class_means_whatever_the_batching():
    features, labels = real_set()
    halves = [class_feature_sums(torch.from_numpy(f), torch.from_numpy(y), C)
              for f, y in ((features[:9], labels[:9]), (features[9:], labels[9:]))]
    sums, counts = halves[0][0] + halves[1][0], halves[0][1] + halves[1][1]
    np.testing.assert_allclose(class_means(sums, counts).numpy(), numpy_class_means(features, labels))
    np.testing.assert_array_equal(counts.numpy(), np.bincount(labels, minlength=C))


def test_statistics_refuse_a_class_without_images():
    sums, counts = class_feature_sums(torch.randn(3, D), torch.tensor([0, 1, 1]), C)
    with pytest.raises(ValueError, match=r"\[2, 3\]"):
        class_means(sums, counts)


def test_real_flow_points_from_each_centre_to_the_mean_of_the_others():
    means = np.random.default_rng(1).normal(size=(C, D))
    np.testing.assert_allclose(real_flow(torch.from_numpy(means)).numpy(), numpy_flow(means, C - 1))


@pytest.mark.parametrize("ipc, augs, official", [(1, 1, True), (3, 2, True), (3, 2, False)])
def test_loss_matches_numpy(ipc, augs, official):
    rng = np.random.default_rng(2)
    real_features, real_labels = real_set(3)
    target = numpy_flow(numpy_class_means(real_features, real_labels), C - 1)
    synthetic = rng.normal(size=(augs * C * ipc, D))              # augs copies of the C·ipc images
    labels = np.tile(np.repeat(np.arange(C), ipc), augs)
    per_image = synthetic.reshape(augs, C * ipc, D).mean(axis=0)  # features averaged over copies, then per class
    centres = np.stack([per_image[c * ipc:(c + 1) * ipc].mean(axis=0) for c in range(C)])
    denominator = C * ipc - 1 if official else C - 1
    expected = numpy_cosine_distance(target, numpy_flow(centres, denominator))
    assert synthetic_denominator(C, ipc, official) == denominator

    ours = sfm_loss(real_flow(torch.from_numpy(numpy_class_means(real_features, real_labels))),
                    torch.from_numpy(synthetic), torch.from_numpy(labels), denominator)
    assert ours.item() == pytest.approx(expected, abs=1e-12)


def test_loss_is_zero_for_the_real_means_and_scale_free():
    means = torch.randn(C, D, dtype=torch.float64)
    labels = torch.arange(C)
    assert sfm_loss(real_flow(means), means, labels, C - 1).item() == pytest.approx(0.0, abs=1e-12)
    assert sfm_loss(real_flow(means), 2 * means, labels, C - 1).item() == pytest.approx(0.0, abs=1e-12)


def test_loss_gradient_reaches_the_synthetic_features():
    features = torch.randn(2 * C, D, dtype=torch.float64, requires_grad=True)
    labels = torch.arange(2 * C) % C
    sfm_loss(real_flow(torch.randn(C, D, dtype=torch.float64)), features, labels, C - 1).backward()
    assert features.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        class_centres(features, torch.zeros(2 * C, dtype=torch.long), C)


@pytest.mark.parametrize("alpha", [1.0, 0.3])
def test_decouple_variant_matches_numpy(alpha):
    rng = np.random.default_rng(4)
    real_means, synthetic = rng.normal(size=(C, D)), rng.normal(size=(2 * C, D))
    labels = np.arange(2 * C) % C
    centres = numpy_class_means(synthetic, labels)
    others = numpy_flow(centres, 2 * C - 1) + centres
    real_others = numpy_flow(real_means, C - 1) + real_means
    expected = alpha * np.mean((real_means - centres) ** 2) + (1 - alpha) * np.mean((real_others - others) ** 2)
    ours = sfm_decouple_loss(torch.from_numpy(real_means), torch.from_numpy(synthetic), torch.from_numpy(labels),
                             2 * C - 1, alpha)
    assert ours.item() == pytest.approx(expected, abs=1e-12)
