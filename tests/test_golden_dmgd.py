"""DMGD's ``fidelity: {preset: official}`` against the official ``sample.main`` (golden ``dmgd_official.pt``).

Three Woof classes (DiT ids 193, 182, 258) × 3 images on the official tiny DiT with the golden eps
residual; the official code's every random value (z, step noise, the per-call semantic noise of
both CFG rows, one y* per sample) is replayed through the suite's randomness seam, its support points
and masses are given. The suite's DMGD (semantic matching + OT guidance with greedy progressive
matching) must reproduce every x_t, every guidance shift and OT loss, and the finals, at ρ = 0.5
and at ρ = 0 (semantic matching alone).
"""
from __future__ import annotations

import pytest
import torch

from methods.diffusion.backbone import Backbone, dit_scheduler
from methods.diffusion.generation import Generation
from methods.diffusion.sampler import Sampler
from methods.dmgd import DistributionMatching, DmgdParams, generate
from methods.dmgd_fidelity import resolve_fidelity
from tests.conftest import method_params
from tests.golden import EpsResidual, RecordedSample, load, official_tiny_dit

TOL = 1e-5


@pytest.fixture(scope="module")
def gold():
    return load("dmgd_official.pt")


class RecordingMatching(DistributionMatching):
    """The suite's OT guidance, keeping each guided step's shift of the mean and loss (per batch row)."""

    def __init__(self, *args):
        super().__init__(*args)
        self.shifts, self.losses = [], []

    def __call__(self, state):
        shifted = super().__call__(state)
        if shifted is not None:
            self.shifts.append(shifted - state.mean)
            self.losses.append(self.loss(state.x0, self.fidelity.ot_loss_rows))
        return shifted


def run_official_setting(gold, rho: float):
    """The suite's DMGD on the golden problem; returns per-sample x after each step, shifts, OT losses
    and how often y* was drawn, each indexed by the golden sample s = 3·class + image."""
    params = method_params("dmgd", rho=rho)
    assert params["fidelity"] == {"preset": "official"}
    assert (params["semantic_window"], params["guidance_window"]) == ([25, 45], [30, 45])
    assert (params["beta_n"], params["beta_s"], params["sinkhorn_epsilon"], params["sinkhorn_iters"]) == \
        (gold["params"]["noise_weight"], gold["params"]["label_weight"], 0.1, 5)
    fidelity, params = resolve_fidelity(params["fidelity"]), DmgdParams(**params)
    network = EpsResidual(official_tiny_dit("official"), gold["params"]["eps_residual"])
    backbone = Backbone(network.transformer, None, dit_scheduler())
    backbone.transformer = network
    sampler = Sampler(backbone, 50, gold["params"]["cfg_scale"], cfg_channels=3)
    recorded = {s: RecordedSample(gold["z"][s], gold["step_noise"][s], gold["semantic_noise"][s], int(gold["y_star"][s]))
                for s in range(9)}
    order = []

    def replay(labels, index):
        samples = [3 * int(c) + int(i) for c, i in zip(labels, index)]
        order.extend(samples)
        return [recorded[s] for s in samples]

    generation = Generation(backbone, sampler, gold["class_ids"], seed=0, ipc=3, batch_size=1, classes=range(3),
                            randomness_of=replay)
    counts = gold["support_counts"].float()
    matching = RecordingMatching(gold["support_data"], counts / counts.sum(-1, keepdim=True), params, fidelity,
                                 range(3))
    latents, _ = generate(generation, params, fidelity, matching)
    calls = torch.stack([x[0] for x in network.inputs]).view(9, 50, 4, 8, 8)   # cond row of each call
    x = torch.empty(9, 50, 4, 8, 8)
    shifts, losses = torch.empty(9, 16, 4, 8, 8), torch.empty(9, 16)
    for position, s in enumerate(order):
        x[s, :49] = calls[position, 1:]
        shifts[s] = torch.stack(matching.shifts[16 * position:16 * (position + 1)])[:, 0]
        losses[s] = torch.stack(matching.losses[16 * position:16 * (position + 1)])[:, 0]
    for (c, i), z in latents.items():
        x[3 * c + i, 49] = z
    return x, shifts, losses, [recorded[s].other_class_calls for s in range(9)]


def test_official_dmgd_reproduces_every_step_at_rho_half(gold):
    x, shifts, losses, y_star_draws = run_official_setting(gold, rho=gold["params"]["rho"])
    assert y_star_draws == [1] * 9          # one y* per sample, as the official random.choice before the loop
    torch.testing.assert_close(x, gold["x"], rtol=0.0, atol=TOL)
    torch.testing.assert_close(x[:, 49], gold["final"], rtol=0.0, atol=TOL)
    torch.testing.assert_close(shifts, gold["shift"], rtol=0.0, atol=TOL)
    torch.testing.assert_close(losses, gold["ot_loss"], rtol=TOL, atol=0.0)


def test_official_dmgd_reproduces_semantic_matching_alone_at_rho_zero(gold):
    x, _, losses, _ = run_official_setting(gold, rho=gold["params"]["rho_second_case"])
    torch.testing.assert_close(x, gold["x_rho0"], rtol=0.0, atol=TOL)
    torch.testing.assert_close(x[:, 49], gold["final_rho0"], rtol=0.0, atol=TOL)
    torch.testing.assert_close(losses, gold["ot_loss_rho0"], rtol=TOL, atol=0.0)
