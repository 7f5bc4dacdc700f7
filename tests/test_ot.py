"""Batched Sinkhorn against POT and DMGD's row-first scaling, the sphere cost, and gradients of the transport loss."""
from __future__ import annotations

import ot
import pytest
import torch

from methods.diffusion.ot import SINKHORN_ORDERS, sinkhorn, sphere_cost, transport_loss, unit_sphere


def random_problem(batch: int, n: int, m: int, seed: int):
    """Random histograms and a sphere cost between random point clouds, in float64."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.rand(batch, n, generator=gen, dtype=torch.float64) + 0.1
    b = torch.rand(batch, m, generator=gen, dtype=torch.float64) + 0.1
    x = torch.randn(batch, n, 5, generator=gen, dtype=torch.float64)
    y = torch.randn(batch, m, 5, generator=gen, dtype=torch.float64)
    return a / a.sum(-1, keepdim=True), b / b.sum(-1, keepdim=True), sphere_cost(x, y)


PROBLEMS = [(3, 4, 6, 0.1, 5), (2, 7, 3, 0.05, 100), (2, 5, 5, 0.1, 100), (1, 8, 2, 0.05, 5)]


@pytest.mark.parametrize("log_domain, method", [(False, "sinkhorn"), (True, "sinkhorn_log")])
@pytest.mark.parametrize("batch, n, m, epsilon, iters", PROBLEMS)
def test_plans_match_pot(batch, n, m, epsilon, iters, log_domain, method):
    a, b, cost = random_problem(batch, n, m, seed=n * m + iters)
    plans = sinkhorn(a, b, cost, epsilon=epsilon, iters=iters, log_domain=log_domain, order="columns_first")
    assert plans.shape == (batch, n, m)
    for i in range(batch):
        expected = ot.sinkhorn(a[i].numpy(), b[i].numpy(), cost[i].numpy(), epsilon, method=method,
                               numItermax=iters, stopThr=0.0, warn=False)
        torch.testing.assert_close(plans[i], torch.from_numpy(expected), rtol=0.0, atol=1e-6)


def dmgd_scaling(a, b, cost, epsilon, iters):
    """DMGD's loop as the golden README describes it: scale the matrix exp(−C/ε) itself, rows then columns."""
    plan = torch.exp(-cost / epsilon)
    for _ in range(iters):
        plan = plan * (a / plan.sum(-1))[:, :, None]
        plan = plan * (b / plan.sum(-2))[:, None, :]
    return plan


@pytest.mark.parametrize("log_domain", [False, True])
@pytest.mark.parametrize("batch, n, m, epsilon, iters", PROBLEMS)
def test_rows_first_is_dmgds_matrix_scaling(batch, n, m, epsilon, iters, log_domain):
    a, b, cost = random_problem(batch, n, m, seed=n * m + iters)
    plans = sinkhorn(a, b, cost, epsilon=epsilon, iters=iters, log_domain=log_domain)  # rows_first by default
    torch.testing.assert_close(plans, dmgd_scaling(a, b, cost, epsilon, iters), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(plans.sum(-2), b, rtol=1e-12, atol=1e-12)  # the last step scales columns


def test_orders_differ_after_few_iterations():
    a, b, cost = random_problem(1, 8, 2, seed=0)
    rows = sinkhorn(a, b, cost, epsilon=0.05, iters=5, order="rows_first")
    columns = sinkhorn(a, b, cost, epsilon=0.05, iters=5, order="columns_first")
    assert float((rows - columns).abs().max()) > 1e-3


def test_unknown_order_is_refused():
    a, b, cost = random_problem(1, 3, 4, seed=8)
    with pytest.raises(ValueError, match=r"order='rows' is unknown; use one of \('rows_first', 'columns_first'\)"):
        sinkhorn(a, b, cost, epsilon=0.1, iters=5, order="rows")


def test_log_domain_survives_where_the_plain_kernel_underflows():
    a, b, cost = random_problem(2, 4, 5, seed=1)
    cost = cost + 1.0  # every exp(-C/ε) < exp(-1000): zero in float64
    plain = sinkhorn(a, b, cost, epsilon=1e-3, iters=20)
    stable = sinkhorn(a, b, cost, epsilon=1e-3, iters=20, log_domain=True, order="columns_first")
    assert not torch.isfinite(plain).all()
    assert torch.isfinite(stable).all()
    expected = ot.sinkhorn(a[0].numpy(), b[0].numpy(), cost[0].numpy(), 1e-3, method="sinkhorn_log",
                           numItermax=20, stopThr=0.0, warn=False)
    torch.testing.assert_close(stable[0], torch.from_numpy(expected), rtol=0.0, atol=1e-6)


@pytest.mark.parametrize("order", SINKHORN_ORDERS)
@pytest.mark.parametrize("log_domain", [False, True])
def test_converged_plans_have_the_requested_marginals(log_domain, order):
    a, b, cost = random_problem(3, 6, 4, seed=2)
    plans = sinkhorn(a, b, cost, epsilon=0.1, iters=500, log_domain=log_domain, order=order)
    torch.testing.assert_close(plans.sum(-1), a, rtol=0.0, atol=1e-6)
    torch.testing.assert_close(plans.sum(-2), b, rtol=0.0, atol=1e-6)


@pytest.mark.parametrize("order", SINKHORN_ORDERS)
@pytest.mark.parametrize("log_domain", [False, True])
@pytest.mark.parametrize("rows", ["last", "all"])
def test_transport_loss_gradient_passes_gradcheck(log_domain, rows, order):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    y = torch.randn(2, 4, 4, generator=gen, dtype=torch.float64)
    a = torch.full((2, 3), 1 / 3, dtype=torch.float64)
    b = torch.full((2, 4), 1 / 4, dtype=torch.float64)

    def loss(source):
        cost = sphere_cost(source, y)
        plan = sinkhorn(a, b, cost, epsilon=0.1, iters=5, log_domain=log_domain, order=order)
        return transport_loss(plan, cost, rows)

    torch.autograd.gradcheck(loss, (x,))
    loss(x).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_sphere_cost_is_cdist_of_normalised_points():
    gen = torch.Generator().manual_seed(4)
    x = 3.0 * torch.randn(2, 5, 8, generator=gen, dtype=torch.float64)
    y = torch.randn(2, 6, 8, generator=gen, dtype=torch.float64)
    normalise = torch.nn.functional.normalize
    torch.testing.assert_close(sphere_cost(x, y), torch.cdist(normalise(x, dim=-1), normalise(y, dim=-1)))
    torch.testing.assert_close(unit_sphere(x).norm(dim=-1), torch.ones(2, 5, dtype=torch.float64))


def test_sphere_cost_gradient_is_finite_at_coincident_and_zero_points():
    gen = torch.Generator().manual_seed(5)
    y = torch.randn(1, 3, 4, generator=gen, dtype=torch.float64)
    x = torch.cat([2.0 * y[:, :2], torch.zeros(1, 1, 4, dtype=torch.float64)], dim=1).requires_grad_()
    cost = sphere_cost(x, y)
    torch.testing.assert_close(cost.diagonal(dim1=1, dim2=2)[:, :2], torch.zeros(1, 2, dtype=torch.float64))
    torch.testing.assert_close(cost[0, 2], torch.ones(3, dtype=torch.float64))  # the zero vector stays at the origin
    cost.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_transport_loss_rows():
    gen = torch.Generator().manual_seed(6)
    plan = torch.rand(2, 3, 4, generator=gen)
    cost = torch.rand(2, 3, 4, generator=gen)
    torch.testing.assert_close(transport_loss(plan, cost, "last"), (plan[:, 2] * cost[:, 2]).sum(-1))
    torch.testing.assert_close(transport_loss(plan, cost, "all"), (plan * cost).sum(dim=(1, 2)))
    with pytest.raises(ValueError, match="rows='first' is unknown"):
        transport_loss(plan, cost, "first")


def test_mismatched_shapes_are_refused():
    a, b, cost = random_problem(2, 3, 4, seed=7)
    with pytest.raises(ValueError, match="sinkhorn expects a \\[B, n\\]"):
        sinkhorn(a[0], b[0], cost[0], epsilon=0.1, iters=5)
