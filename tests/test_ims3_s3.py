"""IMS3's S³ selection (methods/ims3_selection.py): centroids and objective against NumPy loops, the search
against a NumPy transcription of the official procedure (whole objective per trial) and against brute force
over all G^C selections, a hand-made problem whose optimum is known, warm start, sweep limit, determinism."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from methods.ims3_selection import (
    coordinate_ascent,
    select_subgroups,
    selection_objective,
    unit_centroid,
    warm_start,
)

ALPHA, BETA = 0.4, 0.9


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def objective_np(candidates: np.ndarray, real: np.ndarray, groups, alpha=ALPHA, beta=BETA, eps=0.0) -> float:
    """L of the official ``combined_objective``, term by term."""
    picked = [candidates[i, g] for i, g in enumerate(groups)]
    dist = [[1 - np.clip(u @ v, -1, 1) for v in picked] for u in picked]
    close = sum(-math.log(1 - np.clip(picked[i] @ real[i], -1, 1) + eps) for i in range(len(real)))
    sep = sum(math.log(dist[i][j] + eps) for i in range(len(real)) for j in range(i + 1, len(real)))
    return alpha * close + beta * sep


def official_search_np(candidates: np.ndarray, real: np.ndarray, max_sweeps: int, alpha=ALPHA, beta=BETA,
                       eps=0.0, start=None) -> list[int]:
    """The official ``optimize_selection``: the whole objective for every trial, first strictly better wins."""
    selected = list(start) if start is not None else \
        [int(np.argmin([1 - np.clip(c @ real[i], -1, 1) for c in candidates[i]])) for i in range(len(real))]
    best = objective_np(candidates, real, selected, alpha, beta, eps)
    for _ in range(max_sweeps):
        improved = False
        for i in range(len(real)):
            current, best_i, best_val = selected[i], selected[i], best
            for g in range(candidates.shape[1]):
                if g == current:
                    continue
                value = objective_np(candidates, real, selected[:i] + [g] + selected[i + 1:], alpha, beta, eps)
                if value > best_val:
                    best_i, best_val = g, value
            if best_i != current:
                selected[i], best, improved = best_i, best_val, True
        if not improved:
            break
    return selected


def random_problem(seed: int, classes=5, groups=4, dim=3) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit candidate centroids (C, G, D) and real centroids (C, D); low dimension makes the classes compete."""
    rng = np.random.default_rng(seed)
    return (torch.from_numpy(unit(rng.normal(size=(classes, groups, dim)))),
            torch.from_numpy(unit(rng.normal(size=(classes, dim)))))


def brute_force(candidates: torch.Tensor, real: torch.Tensor, **weights) -> dict[tuple[int, ...], float]:
    c, r = candidates.numpy(), real.numpy()
    return {g: objective_np(c, r, g, **weights) for g in itertools.product(range(c.shape[1]), repeat=len(r))}


def tilted(s: float) -> np.ndarray:
    """(3, 3): class i's centroid e_i + s·(e_j + e_k), normalised; s < 0 leans away from the other classes."""
    return unit(np.eye(3) + s * (1 - np.eye(3)))


def test_unit_centroid_is_the_normalised_mean_of_normalised_rows():
    features = np.random.default_rng(0).normal(size=(2, 3, 4, 5))
    expected = unit(unit(features).mean(axis=-2))
    ours = unit_centroid(torch.from_numpy(features).float())
    assert ours.shape == (2, 3, 5) and ours.dtype == torch.float64
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("eps", [0.0, 1e-6])
def test_objective_is_the_term_by_term_sum_for_every_selection(eps):
    candidates, real = random_problem(1, classes=4, groups=3)
    table = brute_force(candidates, real, eps=eps)
    for groups, value in table.items():
        assert selection_objective(candidates, real, groups, ALPHA, BETA, eps) == pytest.approx(value, rel=1e-10)


def test_hand_made_problem_reaches_its_known_optimum_from_a_wrong_warm_start():
    """Real centroids e_1, e_2, e_3; each class may pick a subgroup leaning towards the other classes (s = 0.2,
    closer to its real centroid: the warm start) or away from them (s = −0.3). Per class, the closeness lost by
    leaning away, α·log(d(−0.3)/d(0.2)) ≈ 0.30, is less than the separation gained whatever the others chose
    (per other class log(d_away/d_towards) = 0.66 if it leans towards, 0.23 if away: β·Σ ≥ 0.9·2·0.23 ≈ 0.41);
    leaning away dominates for every class, so the unique optimum is all subgroups 1."""
    candidates = torch.from_numpy(np.stack([tilted(0.2), tilted(-0.3)], axis=1))
    real = torch.eye(3, dtype=torch.float64)
    table = brute_force(candidates, real)
    assert max(table, key=table.get) == (1, 1, 1)
    assert warm_start(candidates, real) == [0, 0, 0]
    selection = coordinate_ascent(candidates, real, ALPHA, BETA)
    assert selection.groups == (1, 1, 1)
    assert selection.sweeps == 2   # one sweep switches every class, the next changes nothing
    assert selection.objective == pytest.approx(table[(1, 1, 1)], rel=1e-12)


def test_without_separation_each_class_keeps_its_closest_subgroup():
    """β = 0 separates the classes: the global optimum is the warm start, reached from any start."""
    candidates, real = random_problem(2, classes=4, groups=5)
    table = brute_force(candidates, real, beta=0.0)
    optimum = max(table, key=table.get)
    assert list(optimum) == warm_start(candidates, real)
    assert coordinate_ascent(candidates, real, beta=0.0, start=[0, 0, 0, 0]).groups == optimum


@pytest.mark.parametrize("seed", range(8))
def test_search_ends_at_a_coordinatewise_maximum_of_the_brute_force_table(seed):
    candidates, real = random_problem(seed, classes=4, groups=3)
    table = brute_force(candidates, real)
    selection = coordinate_ascent(candidates, real, max_sweeps=100)
    assert selection.objective >= table[tuple(warm_start(candidates, real))]
    for i, g in itertools.product(range(4), range(3)):
        neighbour = selection.groups[:i] + (g,) + selection.groups[i + 1:]
        assert table[neighbour] <= table[selection.groups] + 1e-12
    optimum = max(table, key=table.get)
    assert coordinate_ascent(candidates, real, start=optimum).groups == optimum   # the optimum is a fixed point


@pytest.mark.parametrize("max_sweeps", [0, 1, 2, 5])
def test_search_is_the_official_procedure(max_sweeps):
    for seed in range(20):
        candidates, real = random_problem(100 + seed, classes=6, groups=4)
        expected = official_search_np(candidates.numpy(), real.numpy(), max_sweeps)
        assert list(coordinate_ascent(candidates, real, max_sweeps=max_sweeps).groups) == expected


def test_sweep_limit_stops_the_search_early():
    """Some problem needs more than one sweep: one sweep then stops short of the converged choice."""
    limited = []
    for seed in range(20):
        candidates, real = random_problem(100 + seed, classes=6, groups=4)
        full = coordinate_ascent(candidates, real, max_sweeps=100)
        one = coordinate_ascent(candidates, real, max_sweeps=1)
        assert one.sweeps == 1 and full.sweeps >= 1
        assert coordinate_ascent(candidates, real, max_sweeps=0).groups == tuple(warm_start(candidates, real))
        if full.sweeps > 2:
            limited.append(seed)
            assert one.groups != full.groups and one.objective < full.objective
    assert limited


def test_explicit_start_is_honoured_and_checked():
    candidates, real = random_problem(3)
    assert coordinate_ascent(candidates, real, max_sweeps=0, start=[3, 2, 1, 0, 3]).groups == (3, 2, 1, 0, 3)
    with pytest.raises(ValueError, match="start"):
        coordinate_ascent(candidates, real, start=[0, 0])
    with pytest.raises(ValueError, match="start"):
        coordinate_ascent(candidates, real, start=[0, 0, 0, 0, 4])
    with pytest.raises(ValueError, match="max_sweeps"):
        coordinate_ascent(candidates, real, max_sweeps=-1)


def test_select_subgroups_scores_features_and_is_deterministic():
    rng = np.random.default_rng(4)
    candidate_features = torch.from_numpy(rng.normal(size=(5, 4, 3, 6))).float()   # C, G, K images, D
    real_features = [torch.from_numpy(rng.normal(size=(n, 6))).float() for n in (7, 2, 9, 4, 5)]
    torch.manual_seed(0)
    first = select_subgroups(candidate_features, real_features)
    torch.manual_seed(1)
    assert select_subgroups(candidate_features, real_features) == first
    real = torch.stack([unit_centroid(f) for f in real_features])
    assert first == coordinate_ascent(unit_centroid(candidate_features), real)
    assert len(first.groups) == 5 and all(0 <= g < 4 for g in first.groups)
    with pytest.raises(ValueError, match="classes"):
        select_subgroups(candidate_features, real_features[:4])


def test_one_subgroup_or_one_class_are_plain_choices():
    """G = 1 leaves nothing to choose (plain sampling); one class (a chunk of one) has no separation term, so
    it keeps the subgroup closest to its real centroid."""
    candidates, real = random_problem(5, classes=3, groups=1)
    selection = coordinate_ascent(candidates, real)
    assert (selection.groups, selection.sweeps) == ((0, 0, 0), 1)
    candidates, real = random_problem(6, classes=1, groups=6)
    assert coordinate_ascent(candidates, real, start=[5]).groups == tuple(warm_start(candidates, real))
