"""Batched torch k-means against sklearn's KMeans, and its invariants."""
from __future__ import annotations

import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits, make_blobs

from methods.diffusion.kmeans import kmeans, random_init


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


def test_random_init_draws_with_replacement():
    # fast_pytorch_kmeans 0.2.x: torch.randint rows, so duplicates are possible (k = N makes them certain here)
    points = torch.arange(8, dtype=torch.float64)[:, None]
    centers = random_init(points, 8, 3, torch.Generator().manual_seed(0))
    expected = torch.randint(8, (3, 8), generator=torch.Generator().manual_seed(0))
    assert torch.equal(centers[..., 0], expected.double())
    assert any(len(row.unique()) < 8 for row in centers[..., 0])


def two_groups():
    """Two tight groups far from the origin, and initial centres that duplicate one point."""
    gen = torch.Generator().manual_seed(0)
    points = torch.cat([torch.randn(10, 2, generator=gen, dtype=torch.float64) * 0.1 + 5.0,
                        torch.randn(10, 2, generator=gen, dtype=torch.float64) * 0.1 - 5.0])
    return points, points[[0, 0, 10]]


def test_given_init_and_zero_policy_leave_a_duplicate_centre_empty_at_zero():
    points, init = two_groups()
    result = kmeans(points, 3, generator=None, init=init, empty_clusters="zero")
    assert result.counts.tolist() == [10, 0, 10]  # ties go to the first centre; k entries kept
    assert torch.equal(result.centers[1], torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(result.centers[0], points[:10].mean(0))
    reseeded = kmeans(points, 3, generator=None, init=init)
    assert bool((reseeded.counts > 0).all())


def test_without_final_assignment_the_labels_are_those_before_the_last_move():
    points, _ = two_groups()
    init = points[[0, 1, 2]]  # all in the first group: the second group's points join one centre
    once = kmeans(points, 3, generator=None, init=init, iters=1, final_assignment=False)
    assert torch.equal(once.labels, torch.cdist(points, init).argmin(1))
    assert torch.equal(once.counts, torch.bincount(once.labels, minlength=3))
    assert not torch.equal(once.labels, torch.cdist(points, once.centers).argmin(1))
    final = kmeans(points, 3, generator=None, init=init, iters=1)
    assert torch.equal(final.centers, once.centers)
    assert torch.equal(final.labels, torch.cdist(points, final.centers).argmin(1))


def test_absolute_tolerance_ignores_the_data_scale():
    points = 1000.0 * torch.randn(50, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    init = points[:5]
    one_step = kmeans(points, 5, generator=None, init=init, iters=1)
    # the first move shifts the centres by ~6e6 in total: under 1e3 × the variance (~1e9), not under 1e3
    relative = kmeans(points, 5, generator=None, init=init, tol=1e3)
    absolute = kmeans(points, 5, generator=None, init=init, tol=1e3, tol_mode="absolute")
    assert torch.equal(relative.centers, one_step.centers)
    assert not torch.equal(absolute.centers, one_step.centers)


@pytest.mark.parametrize("kwargs, message", [
    (dict(init=torch.zeros(3, 2), restarts=2), "runs once, got restarts=2; pass restarts=1"),
    (dict(init=torch.zeros(2, 2)), r"init of shape \(2, 2\) must be \[k, D\] = \[3, 2\]"),
    (dict(generator=None), "init='k-means\\+\\+' draws from a generator, got None; pass a torch.Generator"),
    (dict(tol_mode="scaled"), "tol_mode='scaled' is unknown; use one of \\('relative', 'absolute'\\)"),
    (dict(empty_clusters="drop"), "empty_clusters='drop' is unknown; use one of \\('reseed', 'zero'\\)"),
])
def test_invalid_options_are_refused(kwargs, message):
    arguments = dict(generator=torch.Generator().manual_seed(0)) | kwargs
    with pytest.raises(ValueError, match=message):
        kmeans(torch.randn(6, 2), 3, **arguments)
