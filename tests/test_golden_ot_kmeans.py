"""The suite's Sinkhorn loss and k-means against the official DMGD outputs (golden ``sinkhorn.pt``, ``kmeans.pt``).

Measured on these files: the row-first loss is within 4.0e-7 relative of the official one (float32,
log domain; 1e-7 plain) and its gradient within 1.12e-5 in relative norm. The largest gradient
errors are on problem 4 (4096 dims): 1.02e-5 plain float32 and 1.01e-5 in float64, the float32
rounding of the official run itself; the other problems stay ≤ 1.0e-5. With the official settings
the k-means labels and counts are identical and the float32 centres bit-identical (float64: 1.9e-7).
"""
from __future__ import annotations

import pytest
import torch

from methods.diffusion.kmeans import kmeans
from methods.diffusion.ot import sinkhorn, sphere_cost, transport_loss, unit_sphere
from tests.golden import load

GRADIENT_RTOL = 1.5e-5  # relative norm; the golden gradient's own float32 noise is 1.0e-5 (problem 4)


@pytest.fixture(scope="module")
def ot_golden():
    return load("sinkhorn.pt")


@pytest.fixture(scope="module")
def kmeans_golden():
    return load("kmeans.pt")


def official_ot_loss(golden: dict, problem: dict, dtype: torch.dtype, order: str, log_domain: bool = False):
    """DMGD's compute_ot_distribution_matching_loss on the suite's parts: sources = memory rows then x,
    uniform a, b = counts / Σ counts, Σ over all rows of plan ∘ cost; returns the loss and ∂/∂x."""
    x = problem["x"].to(dtype).requires_grad_()
    sources = torch.cat([problem["memory"].to(dtype).flatten(1), x.flatten(1)])[None]
    targets = problem["support_data"].to(dtype)[None]
    counts = problem["support_counts"].to(dtype)
    a = torch.full(sources.shape[:2], 1.0 / sources.shape[1], dtype=dtype)
    cost = sphere_cost(sources, targets)
    plan = sinkhorn(a, (counts / counts.sum())[None], cost, epsilon=golden["epsilon"],
                    iters=golden["num_iterations"], log_domain=log_domain, order=order)
    loss = transport_loss(plan, cost, "all")[0]
    (gradient,) = torch.autograd.grad(loss, x)
    return loss.detach(), gradient


def relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    return float((value.double() - reference.double()).norm() / reference.double().norm())


@pytest.mark.parametrize("log_domain", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("index", range(6))
def test_rows_first_reproduces_the_official_loss_and_gradient(ot_golden, index, dtype, log_domain):
    problem = ot_golden["problems"][index]
    loss, gradient = official_ot_loss(ot_golden, problem, dtype, "rows_first", log_domain)
    assert relative_error(loss, problem["loss"]) <= 1e-6
    assert relative_error(gradient, problem["grad"]) <= GRADIENT_RTOL


@pytest.mark.parametrize("index", [3, 5])
def test_columns_first_misses_the_official_loss_on_large_spreads(ot_golden, index):
    problem = ot_golden["problems"][index]
    assert problem["memory_size"] == 9 and problem["cost_row_spread"] > 1.0
    loss, gradient = official_ot_loss(ot_golden, problem, torch.float32, "columns_first")
    assert relative_error(loss, problem["loss"]) > 0.01  # measured 7.0 % and 8.0 %
    assert relative_error(gradient, problem["grad"]) > 0.05  # measured 12 % and 17 %


def official_kmeans(problem: dict, dtype: torch.dtype = torch.float32, empty_clusters: str = "zero"):
    """fast_pytorch_kmeans 0.2.2 as DMGD calls it, from the golden initial centres."""
    return kmeans(problem["X"].to(dtype), len(problem["init"]), generator=None, init=problem["init"], iters=100,
                  tol=1e-4, tol_mode="absolute", empty_clusters=empty_clusters, final_assignment=False)


@pytest.mark.parametrize("empty_clusters", ["zero", "reseed"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("index", range(3))
def test_kmeans_reproduces_the_official_clusters(kmeans_golden, index, dtype, empty_clusters):
    problem = kmeans_golden["problems"][index]
    assert problem["empty_clusters"] == []  # so the empty-cluster policy cannot matter
    result = official_kmeans(problem, dtype, empty_clusters)
    assert torch.equal(result.labels, problem["labels"])
    assert torch.equal(result.counts, problem["counts"])
    torch.testing.assert_close(result.centers.float(), problem["centroids"], rtol=0.0, atol=1e-5)


@pytest.mark.parametrize("index", [3, 4])
def test_zero_policy_reproduces_the_official_empty_clusters(kmeans_golden, index):
    problem = kmeans_golden["problems"][index]
    result = official_kmeans(problem)
    empty = problem["empty_clusters"]
    assert torch.equal(result.centers[empty], torch.zeros(len(empty), problem["X"].shape[1]))
    assert torch.equal(result.labels, problem["labels"])
    golden_counts = problem["counts"]  # a bincount: shorter when the last cluster is empty (problem 4)
    assert torch.equal(result.counts[: len(golden_counts)], golden_counts)
    assert result.counts.shape == (len(problem["init"]),) and not result.counts[len(golden_counts):].any()
    torch.testing.assert_close(result.centers, problem["centroids"], rtol=0.0, atol=1e-5)


@pytest.mark.parametrize("index", [3, 4])
def test_reseed_policy_leaves_no_cluster_empty(kmeans_golden, index):
    result = official_kmeans(kmeans_golden["problems"][index], empty_clusters="reseed")
    assert bool((result.counts > 0).all())


@pytest.mark.parametrize("index", [3, 4])
def test_unit_sphere_keeps_an_emptied_centre_at_zero_where_the_official_gives_nan(kmeans_golden, index):
    problem = kmeans_golden["problems"][index]
    centers = official_kmeans(problem).centers
    unguarded = centers / centers.norm(dim=-1, keepdim=True)  # the official projection
    assert unguarded.isnan().any(-1).nonzero().flatten().tolist() == problem["projected_has_nan_rows"]
    projected, empty = unit_sphere(centers), problem["empty_clusters"]
    assert torch.isfinite(projected).all()
    assert torch.equal(projected[empty], torch.zeros(len(empty), centers.shape[1]))
