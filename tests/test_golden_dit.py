"""The official DiT network, measured against its own outputs (golden ``tiny_dit.pt`` and ``dit_sampling.pt``).

The suite converts the official checkpoint into diffusers' DiT (methods/diffusion/official_dit.py);
with ``numerics: official`` the network's outputs and a whole 50-step CFG sampling run, replayed
with the official code's random values through the sampler's randomness seam, equal the official's.
``numerics: diffusers`` (the stock network) is shown to differ, so the option is not a no-op.
"""
from __future__ import annotations

import pytest
import torch

from methods.diffusion.backbone import Backbone, dit_scheduler, load_backbone
from methods.diffusion.official_dit import (
    CheckpointError,
    load_official_checkpoint,
    shared_parameters_tied,
)
from methods.diffusion.sampler import Sampler
from tests.golden import EpsResidual, RecordedSample, load, official_tiny_dit
from tests.workflow_run import load_script


@pytest.fixture(scope="module")
def tiny():
    return load("tiny_dit.pt")


def outputs(model, tiny) -> torch.Tensor:
    with torch.no_grad():
        return torch.stack([model(tiny["x"], timestep=torch.full((6,), int(t)), class_labels=tiny["y"]).sample
                            for t in tiny["t_values"]])


def test_converted_checkpoint_reproduces_the_official_outputs(tiny):
    out = outputs(official_tiny_dit("official"), tiny)
    torch.testing.assert_close(out, tiny["out"], rtol=0.0, atol=1e-5)


def test_stock_diffusers_numerics_differ_from_the_official(tiny):
    """The two numerical differences of diffusers' DiT (frequencies over 127, norm3 eps 1e-5) move ε by
    about 1e-2 at t = 917 (golden README): the variant is real and documented, not the default."""
    gap = (outputs(official_tiny_dit("diffusers"), tiny) - tiny["out"]).abs().amax(dim=(1, 2, 3, 4))
    assert gap[3] > 5e-3 and gap[0] < 1e-5


def test_official_timestep_features(tiny):
    """Equal up to float32 rounding of the argument t·f_j (≤ 3e-5 at t = 999, one ulp of ~1e3); the
    stock /127 features are off by up to 1 (cosine 0.49 at t = 999)."""
    features = lambda numerics: official_tiny_dit(numerics).transformer_blocks[0].norm1.emb.time_proj(tiny["t_values"])
    torch.testing.assert_close(features("official"), tiny["t_freq"], rtol=0.0, atol=1e-4)
    assert (features("diffusers") - tiny["t_freq"]).abs().max() > 0.5


def test_official_numerics_share_one_label_table_and_t_mlp():
    model = official_tiny_dit("official")
    assert shared_parameters_tied(model)
    assert not shared_parameters_tied(official_tiny_dit("diffusers"))


def test_checkpoint_file_is_a_backbone_source(tmp_path, tiny_backbone_dir, tiny):
    """``backbone.source`` may name the official file format (a training checkpoint holds ``ema``)."""
    path = tmp_path / "DiT-tiny.pt"
    torch.save({"ema": tiny["state_dict"], "model": {}, "args": None}, path)
    backbone = load_backbone(str(path), vae=str(tiny_backbone_dir / "vae"), num_heads=4)
    assert backbone.numerics == "official" and backbone.num_classes == 1000 and backbone.learns_sigma
    assert backbone.latent_shape == (4, 8, 8)
    torch.testing.assert_close(outputs(backbone.transformer, tiny), tiny["out"], rtol=0.0, atol=1e-5)


def test_checkpoint_errors_name_the_fix(tmp_path, tiny):
    path = tmp_path / "DiT.pt"
    torch.save(tiny["state_dict"], path)
    with pytest.raises(CheckpointError, match="backbone.num_heads"):
        load_official_checkpoint(path)     # hidden size 64 is no official config
    with pytest.raises(Exception, match="backbone.vae"):
        load_backbone(str(path), num_heads=4)
    junk = tmp_path / "junk.pt"
    torch.save({"weights": torch.zeros(3)}, junk)
    with pytest.raises(CheckpointError, match="not an official DiT state dict"):
        load_official_checkpoint(junk, 4)


def test_saved_official_backbone_round_trips(tmp_path, tiny_backbone_dir):
    """Saving unties the shared parameters for safetensors; loading ties them again, outputs unchanged."""
    backbone = load_backbone(str(tiny_backbone_dir))
    backbone.save(tmp_path / "copy")
    again = load_backbone(str(tmp_path / "copy"))
    assert again.numerics == "official" and shared_parameters_tied(again.transformer)
    assert shared_parameters_tied(backbone.transformer)
    x, t, y = torch.randn(2, 4, 8, 8), torch.tensor([3, 700]), torch.tensor([1, 10])
    with torch.no_grad():
        torch.testing.assert_close(again.transformer(x, timestep=t, class_labels=y).sample,
                                   backbone.transformer(x, timestep=t, class_labels=y).sample, rtol=0.0, atol=0.0)


def test_plain_sampling_reproduces_the_official_loop_step_by_step():
    """DiT's ``p_sample_loop`` with CFG 4 on 3 channels, 50 respaced steps, learned range: every x_t."""
    gold = load("dit_sampling.pt")
    network = EpsResidual(official_tiny_dit("official"), gold["eps_residual"])
    backbone = Backbone(network.transformer, None, dit_scheduler())
    backbone.transformer = network
    sampler = Sampler(backbone, gold["steps"], gold["cfg_scale"], gold["cfg_channels"])
    assert [c.t for c in sampler.coefficients] == gold["timesteps"].tolist()
    randomness = [RecordedSample(gold["z"][b], gold["step_noise"][b]) for b in range(len(gold["labels"]))]
    final = sampler.sample(gold["labels"], randomness)
    batch = len(gold["labels"])
    after_step = torch.stack([x[:batch] for x in network.inputs[1:]] + [final], dim=1)   # [B, 50, 4, 8, 8]
    assert backbone.null_label == gold["null_label"]
    torch.testing.assert_close(after_step, gold["x"], rtol=0.0, atol=1e-5)


def test_load_backbone_rule_records_an_official_checkpoint(tmp_path, tiny_backbone_dir, tiny):
    """The ``load_backbone`` rule's entry point with a ``.pt`` source: its manifest names the file, the
    VAE, the numerics and the heads, and every job's ``open_backbone`` then loads the official network."""
    link = load_script("load_backbone")
    from methods.diffusion.backbone import open_backbone

    path = tmp_path / "DiT-tiny.pt"
    torch.save(tiny["state_dict"], path)
    out = tmp_path / "backbones" / "dit"
    link.main(["--source", str(path), "--vae", str(tiny_backbone_dir / "vae"), "--numerics", "official",
               "--num-heads", "4", "--out", str(out)])
    backbone = open_backbone(out)
    assert backbone.numerics == "official" and shared_parameters_tied(backbone.transformer)
    torch.testing.assert_close(outputs(backbone.transformer, tiny), tiny["out"], rtol=0.0, atol=1e-5)
