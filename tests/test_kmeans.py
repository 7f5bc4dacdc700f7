"""Batched torch k-means against sklearn's KMeans, and its invariants."""
from __future__ import annotations

import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits, make_blobs

from methods.diffusion.kmeans import kmeans


@pytest.fixture(scope="module")
def blobs():
    points, _ = make_blobs(n_samples=600, n_features=16, centers=10, random_state=0)
    return torch.from_numpy(points)


@pytest.fixture(scope="module")
def digits():
    return torch.from_numpy(load_digits().data)


def sklearn_inertia(points: torch.Tensor, k: int) -> float:
    return KMeans(n_clusters=k, n_init=4, random_state=0).fit(points.numpy()).inertia_


@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_inertia_matches_sklearn_on_digits(digits, init):
    result = kmeans(digits, 10, generator=torch.Generator().manual_seed(0), restarts=8, init=init)
    assert result.inertia == pytest.approx(sklearn_inertia(digits, 10), rel=0.01)


def test_inertia_matches_sklearn_on_blobs(blobs):
    result = kmeans(blobs.float(), 10, generator=torch.Generator().manual_seed(0), restarts=4)
    assert result.inertia == pytest.approx(sklearn_inertia(blobs, 10), rel=0.01)


def test_labels_counts_and_masses_are_consistent(digits):
    result = kmeans(digits, 10, generator=torch.Generator().manual_seed(1), restarts=2)
    assert result.centers.shape == (10, 64) and result.labels.dtype == torch.long
    assert torch.equal(result.labels, torch.cdist(digits, result.centers).argmin(dim=1))
    assert torch.equal(result.counts, torch.bincount(result.labels, minlength=10))
    assert int(result.counts.sum()) == digits.shape[0]
    assert float(result.masses.sum()) == pytest.approx(1.0)
    inertia = (digits - result.centers[result.labels]).pow(2).sum()
    assert result.inertia == pytest.approx(float(inertia))


def test_same_seed_gives_the_same_result(digits):
    def run(seed):
        return kmeans(digits, 10, generator=torch.Generator().manual_seed(seed), restarts=2, iters=20)

    first, again, other = run(3), run(3), run(4)
    assert torch.equal(first.centers, again.centers) and torch.equal(first.labels, again.labels)
    assert first.inertia == again.inertia
    assert not torch.equal(first.centers, other.centers)


@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_one_cluster_per_point_has_zero_inertia(init):
    points = torch.randn(12, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    result = kmeans(points, 12, generator=torch.Generator().manual_seed(0), init=init)
    assert result.inertia == 0.0
    assert torch.equal(result.counts, torch.ones(12, dtype=torch.long))


def test_more_clusters_than_points_is_refused():
    with pytest.raises(ValueError, match=r"k=6 needs at least k points, got N=5; lower k"):
        kmeans(torch.zeros(5, 2), 6, generator=torch.Generator().manual_seed(0))


def test_unknown_init_is_refused():
    with pytest.raises(ValueError, match="init='forgy' is unknown"):
        kmeans(torch.zeros(5, 2), 2, generator=torch.Generator().manual_seed(0), init="forgy")


def test_dtype_follows_the_input(blobs):
    wide = kmeans(blobs, 10, generator=torch.Generator().manual_seed(0))
    narrow = kmeans(blobs.float(), 10, generator=torch.Generator().manual_seed(0))
    assert wide.centers.dtype == torch.float64 and wide.masses.dtype == torch.float64
    assert narrow.centers.dtype == torch.float32


def test_empty_clusters_are_reseeded():
    # 3 distinct locations and k=3, but random init on duplicated points can start two centres at
    # the same location; re-seeding at the farthest point must still find all three
    locations = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], dtype=torch.float64)
    points = locations.repeat_interleave(torch.tensor([20, 2, 2]), dim=0)
    for seed in range(5):
        result = kmeans(points, 3, generator=torch.Generator().manual_seed(seed), init="random")
        assert result.inertia == 0.0
        assert sorted(result.counts.tolist()) == [2, 2, 20]
