"""DMGD end to end on the tiny backbone: reduction to DiT, OT guidance, errors, approximations."""
from __future__ import annotations

import json

import pytest
import torch

from evaluation.core.seeding import generator
from evaluation.data.synsets import read_synset
from methods.distill import distill
from methods.dmgd import DmgdParams, GuidanceError, local_density, support_points
from methods.dmgd_fidelity import resolve_fidelity
from tests.conftest import SAMPLER, method_params


def dmgd_params(**overrides) -> dict:
    return method_params("dmgd", **overrides)


@pytest.fixture
def run(tmp_path, digits_dir, tiny_backbone_dir, latents_path):
    def go(method="dmgd", ipc=2, name="s", sampler=SAMPLER, **params):
        out = tmp_path / name
        spec = {"method": method, "params": dmgd_params(**params) if method == "dmgd" else {},
                "dataset": "digits", "sampler": sampler, "data": {}}
        distill(spec, digits_dir, ipc, 0, out, tiny_backbone_dir, latents_path)
        return read_synset(out, 10)[0], json.loads((out / "manifest.json").read_text())["records"]
    return go


def test_without_blend_weights_and_window_dmgd_is_dit_bit_for_bit(run):
    dit, _ = run("dit", name="dit")
    plain, _ = run(name="dmgd", beta_n=0.0, beta_s=0.0, guidance_window=[1, 0])
    assert torch.equal(plain, dit)


def test_semantic_matching_alone_changes_the_images(run):
    dit, _ = run("dit", name="dit")
    semantic, _ = run(name="dmgd", distribution_matching=False, semantic_window=[3, 8])  # of 10 steps
    assert not torch.equal(semantic, dit)


def test_guidance_lowers_the_final_ot_loss(run):
    free, records_free = run(name="free", semantic_matching=False, rho=0.0, guidance_window=[0, 9])
    guided, records = run(name="guided", semantic_matching=False, rho=20.0, guidance_window=[0, 9])
    total = lambda r: sum(map(sum, r["final_ot_loss"]))
    assert len(records["final_ot_loss"]) == 10 and all(len(row) == 2 for row in records["final_ot_loss"])
    assert total(records) < total(records_free)
    assert not torch.equal(free, guided)


@pytest.mark.parametrize("fidelity", ["official", "paper"])
@pytest.mark.parametrize("through_network", [False, True])
def test_fidelities_and_gradient_paths_run(run, fidelity, through_network):
    images, records = run(fidelity={"preset": fidelity}, through_network=through_network, guidance_window=[5, 8])
    assert images.shape == (20, 3, 16, 16)
    assert all(torch.isfinite(torch.tensor(row)).all() for row in records["final_ot_loss"])


def test_non_finite_guidance_names_the_step_and_class(run):
    with pytest.raises(GuidanceError, match=r"non-finite OT guidance at step index 8 \(t=\d+\) for class 0; "):
        run(sinkhorn_epsilon=1e-9, guidance_window=[0, 8])


def test_support_point_approximations():
    gen_data = torch.Generator().manual_seed(0)
    latents = torch.cat([torch.randn(30, 4, 2, 2, generator=gen_data) + 4 * k for k in range(3)])
    for method, k in [("kmeans", 3), ("mean", 1), ("dbs", 3)]:
        params = dmgd_params(approximation=method, support_points=3)
        points, masses = support_points(latents, DmgdParams(**params), resolve_fidelity(params["fidelity"]),
                                        generator(0))
        assert points.shape == (k, 16) and masses.shape == (k,)
        torch.testing.assert_close(points.norm(dim=1), torch.ones(k, dtype=points.dtype))
        assert masses.sum().item() == pytest.approx(1.0)
    kmeans_masses = support_points(latents, DmgdParams(**dmgd_params()), resolve_fidelity({}), generator(0))[1]
    assert sorted(kmeans_masses[kmeans_masses > 0].tolist()) != []


def test_dbs_density_is_higher_in_dense_regions():
    dense = torch.zeros(10, 2) + 0.01 * torch.arange(10.0)[:, None]
    sparse = torch.tensor([[5.0, 5.0], [9.0, -3.0]])
    density = local_density(torch.cat([dense, sparse]), neighbours=3)
    assert density[:10].min() > density[10:].max()


@pytest.mark.parametrize("method", ["kmeans", "mean", "dbs"])
def test_a_class_with_one_real_latent_gets_one_support_point(method):
    """Found by the ablations smoke run (one real image per class): DBS took the mean of no
    neighbour distances, NaN, and torch.multinomial refused the densities."""
    params = dmgd_params(approximation=method, support_points=3)
    points, masses = support_points(torch.randn(1, 4, 2, 2), DmgdParams(**params), resolve_fidelity(params["fidelity"]),
                                    generator(0))
    assert points.shape == (1, 16) and masses.tolist() == [1.0]


@pytest.mark.parametrize("fidelity", ["official", "paper"])
def test_semantic_matching_without_cfg(run, fidelity):
    """At 1 + w = 1 (Table 8) the sampler runs only the conditional rows; the embedding follows."""
    no_cfg = {**SAMPLER, "cfg_scale": 1.0}
    images, _ = run(sampler=no_cfg, fidelity={"preset": fidelity}, semantic_window=[3, 8], guidance_window=[5, 8])
    assert images.shape == (20, 3, 16, 16)
