"""Backbone loading from a local directory, a pointer manifest, and a hub id offline."""
from __future__ import annotations

import json
import shutil
import time

import pytest
import torch
from diffusers.models.embeddings import LabelEmbedding

from methods.diffusion.backbone import (
    BackboneError,
    dit_scheduler,
    load_backbone,
    open_backbone,
)


def forward(backbone):
    x = torch.linspace(-1, 1, 2 * 4 * 8 * 8).view(2, 4, 8, 8)
    return backbone.transformer(x, timestep=torch.tensor([10, 900]), class_labels=torch.tensor([1, 10])).sample


def test_local_directory_round_trip(tiny_backbone_dir):
    backbone = load_backbone(str(tiny_backbone_dir))
    assert backbone.num_classes == 10 and backbone.null_label == 10
    assert backbone.latent_shape == (4, 8, 8) and backbone.learns_sigma
    assert not backbone.transformer.training and not backbone.vae.training
    assert all(m.dropout_prob == 0.0 for m in backbone.transformer.modules() if isinstance(m, LabelEmbedding))
    torch.testing.assert_close(forward(backbone), forward(open_backbone(tiny_backbone_dir)))


def test_pointer_manifest_is_followed(tiny_backbone_dir, tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"source": str(tiny_backbone_dir), "vae": None,
                                                                "numerics": "official"}))
    torch.testing.assert_close(forward(open_backbone(tmp_path)), forward(load_backbone(str(tiny_backbone_dir))))


def test_vae_override_from_another_directory(tiny_backbone_dir, tmp_path):
    backbone = load_backbone(str(tiny_backbone_dir), vae=str(tiny_backbone_dir / "vae"))
    assert backbone.vae.config.latent_channels == 4


def test_encode_decode_shapes_and_range(tiny_backbone_dir):
    backbone = load_backbone(str(tiny_backbone_dir))
    images = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
    latents = backbone.encode(images)
    assert latents.shape == (3, 4, 8, 8)
    decoded = backbone.decode(latents)
    assert decoded.dtype == torch.uint8 and decoded.shape == images.shape
    sample_a = backbone.encode(images, sample=True, generator=torch.Generator().manual_seed(0))
    sample_b = backbone.encode(images, sample=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sample_a, sample_b) and not torch.equal(sample_a, latents)


def test_offline_hub_id_fails_fast_naming_the_fix():
    started = time.time()
    with pytest.raises(BackboneError) as err:
        load_backbone("facebook/DiT-XL-2-256")
    message = str(err.value)
    assert "facebook/DiT-XL-2-256" in message and "local directory" in message and "\n" not in message
    assert time.time() - started < 30


def test_local_directory_without_vae_names_the_missing_folder(tiny_backbone_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_backbone_dir / "transformer", broken / "transformer")
    with pytest.raises(BackboneError, match=r"broken/vae does not exist"):
        load_backbone(str(broken))


def test_scheduler_is_dits_diffusion():
    config = dit_scheduler().config
    assert (config.num_train_timesteps, config.beta_schedule, config.variance_type) == (1000, "linear", "learned_range")
    assert (config.beta_start, config.beta_end, config.clip_sample) == (1e-4, 0.02, False)
