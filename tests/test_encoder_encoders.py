"""The frozen encoders of LGM and SFM (methods/encoder/encoders.py): weights from local files, the one-line error
when they are missing, frozen-ness, and the teacher stand-in's features."""
from __future__ import annotations

import pytest
import timm
import torch
from safetensors.torch import save_file

from evaluation.core.errors import InputError
from evaluation.protocols.networks import create_network
from evaluation.protocols.train import teacher_network
from methods.encoder import encoders
from methods.encoder.augment import IMAGENET_MEAN, IMAGENET_STD
from methods.encoder.encoders import TimmEncoder, load_encoder

TINY = {"img_size": 32, "patch_size": 16, "embed_dim": 24, "depth": 1, "num_heads": 2}


@pytest.fixture
def tiny_vit(monkeypatch):
    """A test-only registry entry: a one-block timm ViT at 32 px."""
    monkeypatch.setitem(encoders.ENCODERS, "tiny_vit",
                        TimmEncoder("vit_tiny_patch16_224", "a tiny test ViT", TINY, ("module.base_encoder.",), 32))
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=5, **TINY)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_a_timm_encoder_reads_its_weights_from_the_file_and_drops_the_head(tmp_path, tiny_vit, suffix):
    path = tmp_path / f"weights{suffix}"
    state = tiny_vit.state_dict()
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save({"state_dict": state}, path)
    encoder = load_encoder("tiny_vit", weights=path)
    x = torch.randn(2, 3, 32, 32)
    assert (encoder.feature_dim, encoder.input_size, encoder.weights) == (24, 32, str(path.absolute()))
    assert torch.equal(encoder(x), tiny_vit.forward_head(tiny_vit.forward_features(x), pre_logits=True))


def test_checkpoint_prefixes_are_stripped_as_moco_v3_saves_them(tmp_path, tiny_vit):
    path = tmp_path / "moco.pth"
    torch.save({"state_dict": {f"module.base_encoder.{k}": v for k, v in tiny_vit.state_dict().items()}
                | {"module.momentum_encoder.cls_token": torch.zeros(1)}}, path)
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(load_encoder("tiny_vit", weights=path)(x),
                       tiny_vit.forward_head(tiny_vit.forward_features(x), pre_logits=True))


def test_the_encoder_is_frozen_and_stays_in_eval_mode(tmp_path, tiny_vit):
    path = tmp_path / "w.safetensors"
    save_file(tiny_vit.state_dict(), str(path))
    encoder = load_encoder("tiny_vit", weights=path).train()
    assert not encoder.training and not any(m.training for m in encoder.modules())
    assert not any(p.requires_grad for p in encoder.parameters())
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, 32, 32, generator=generator, requires_grad=True)
    direction = torch.randn(encoder.feature_dim, generator=generator)
    # A random direction, not .sum(): the features end in a LayerNorm with unit weight and zero bias, whose sum
    # is constant, so the gradient of the sum is zero up to rounding (it came out exactly zero in CI).
    (encoder(x) @ direction).backward()  # gradients still reach the images
    assert x.grad.abs().sum() > 1e-3


def test_missing_weights_are_one_line_naming_the_encoder_the_file_and_the_key(tmp_path):
    with pytest.raises(InputError, match=r"^encoder 'dinov2_vitb' weights missing: encoders.dinov2_vitb is not set; "
                                         r"set it to a local copy of .*vit_base_patch14_dinov2") as err:
        load_encoder("dinov2_vitb")
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match=f"encoders.clip_vitb16 is {tmp_path / 'x.pth'}, which is not a file"):
        load_encoder("clip_vitb16", weights=tmp_path / "x.pth")
    with pytest.raises(InputError, match="unknown encoder 'clip'; valid: clip_vitb16, clip_vitb32, dinov2_vitb, "
                                         "eva02_vitb, mocov3_vitb, resnet18, teacher"):
        load_encoder("clip")


def test_weights_of_another_architecture_are_one_line(tmp_path, tiny_vit):
    path = tmp_path / "w.pth"
    torch.save({"blocks.0.attn.qkv.weight": torch.zeros(3, 3)}, path)
    with pytest.raises(InputError, match="weights of another architecture"):
        load_encoder("tiny_vit", weights=path)


def test_registered_architectures_exist_in_timm():
    for spec in encoders.ENCODERS.values():
        assert spec.arch in timm.list_models(), spec.arch


def test_the_teacher_stand_in_gives_the_teachers_penultimate_activations(tmp_path):
    torch.manual_seed(0)
    network = {"arch": "convnet", "depth": 2, "width": 8}
    model = create_network("convnet", 10, 16, depth=2, width=8).eval()
    mean, std = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]     # not ImageNet's: the stand-in re-normalises
    torch.save({"state_dict": model.state_dict(), "network": network, "num_classes": 10, "image_size": 16,
                "mean": mean, "std": std}, tmp_path / "model.pt")
    encoder = load_encoder("teacher", teacher=teacher_network(tmp_path))
    pixels = torch.rand(3, 3, 16, 16)
    imagenet = (pixels - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    expected = model.body((pixels - 0.5) / 0.25).flatten(1)      # the input of the classifier
    assert (encoder.feature_dim, encoder.input_size) == (8 * 4 * 4, 16)
    torch.testing.assert_close(encoder(imagenet), expected, rtol=1e-5, atol=1e-5)
    assert not any(p.requires_grad for p in encoder.parameters())
    with pytest.raises(InputError, match="encoder 'teacher' needs the dataset's teacher; pass --teacher DIR"):
        load_encoder("teacher")


def test_a_dinov2_checkpoint_at_518_px_loads_into_the_224_px_encoder(tmp_path, monkeypatch):
    """timm's filter resamples the hub model's 37x37 position embedding to the 16x16 grid of 224 px crops."""
    small = {"depth": 1, "embed_dim": 24, "num_heads": 2}
    monkeypatch.setitem(encoders.ENCODERS, "tiny_dinov2",
                        TimmEncoder("vit_small_patch14_dinov2", "a tiny test DINOv2", {"img_size": 224, **small}))
    hub = timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=0, **small)   # 518 px
    assert hub.pos_embed.shape[1] == 37 * 37 + 1
    save_file(hub.state_dict(), str(tmp_path / "dinov2.safetensors"))
    encoder = load_encoder("tiny_dinov2", weights=tmp_path / "dinov2.safetensors")
    assert encoder.network.pos_embed.shape[1] == 16 * 16 + 1
    assert torch.equal(encoder.network.blocks[0].attn.qkv.weight, hub.blocks[0].attn.qkv.weight)
    assert encoder(torch.randn(2, 3, 224, 224)).shape == (2, 24)


def test_resnet18_is_torchvisions_network_read_from_its_cache_file(tmp_path, monkeypatch):
    """S³'s φ: timm's resnet18 holding torchvision's ImageNet state dict (from $TORCH_HOME's cache when the config
    names no file) gives torchvision's pooled 512-d features."""
    import torchvision

    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None).eval()
    cache = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cache.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), cache)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert encoders.configured_weights("resnet18", {}) == str(cache)
    assert encoders.configured_weights("resnet18", {"resnet18": "/elsewhere.pth"}) == "/elsewhere.pth"
    assert encoders.configured_weights("dinov2_vitb", {}) is None
    encoder = load_encoder("resnet18")
    reference.fc = torch.nn.Identity()
    x = torch.randn(2, 3, 64, 64)
    assert encoder.feature_dim == 512 and encoder.input_size == 224
    torch.testing.assert_close(encoder(x), reference(x), rtol=0, atol=0)


def test_a_checkpoint_with_timm_kwargs_builds_that_variant(tmp_path):
    """The smoke kit's stand-ins (tests/standin_weights.py): the checkpoint's ``timm_kwargs`` shape the registered
    architecture (one block, 32 wide), and the features are that network's."""
    from tests.standin_weights import ENCODER_STANDIN_KWARGS, write_encoder_standin

    path = write_encoder_standin("dinov2_vitb", tmp_path / "dinov2.pth", seed=3)
    encoder = load_encoder("dinov2_vitb", weights=path)
    assert encoder.feature_dim == ENCODER_STANDIN_KWARGS["embed_dim"] and len(encoder.network.blocks) == 1
    again = load_encoder("dinov2_vitb", weights=write_encoder_standin("dinov2_vitb", tmp_path / "again.pth", seed=3))
    x = torch.randn(2, 3, 224, 224)
    torch.testing.assert_close(encoder(x), again(x), rtol=0, atol=0)   # seeded stand-ins
