"""Tests for evaluation.protocols.networks: a contract every registered network meets, then each network's facts."""
from __future__ import annotations

import inspect
import math
import re

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from evaluation.protocols.networks import (
    create_network,
    list_networks,
    network_arguments,
    register_network,
)

NUM_CLASSES = 7
PROFILE_SIZES = (16, 32, 128)   # digits profiles 16 and 32 px, GLaD 128 px
HARD_LABEL_SIZE = 224


def build(name: str, image_size: int, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return create_network(name, NUM_CLASSES, image_size, **kwargs)


def refusal(name: str, image_size: int) -> str:
    """The one-line error with which ``name`` refuses ``image_size``, or '' if it builds."""
    try:
        create_network(name, NUM_CLASSES, image_size)
    except ValueError as error:
        return str(error)
    return ""


def minimum_size(name: str) -> int:
    """The minimum image size that ``name`` names when it refuses a 1-pixel image (1 if it names none)."""
    match = re.search(r"valid: image_size >= (\d+)", refusal(name, 1))
    return int(match.group(1)) if match else 1


def with_norm() -> list[str]:
    return [name for name in SCRATCH if "norm" in network_arguments(name)]


# Networks trained from scratch: every builder argument has a default. The linear probe needs an
# encoder and trains only its head; tests/test_linear_probe.py holds its contract.
SCRATCH = [name for name in list_networks()
           if all(default is not inspect.Parameter.empty for default in network_arguments(name).values())]
VALID_PROFILE_SIZES = [(name, size) for name in SCRATCH for size in PROFILE_SIZES
                       if size >= minimum_size(name)]


# ----------------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------------

def test_registry_lists_the_reference_networks():
    assert {"convnet", "resnet_ap", "resnet", "vgg", "alexnet", "vit"} <= set(list_networks())
    assert list_networks() == sorted(list_networks())


def test_unknown_network_error_names_value_and_valid_options():
    with pytest.raises(ValueError) as error:
        create_network("densenet", NUM_CLASSES, 32)
    message = str(error.value)
    assert "\n" not in message
    assert "'densenet'" in message
    assert all(name in message for name in list_networks())


def test_registering_a_taken_name_is_refused():
    with pytest.raises(ValueError, match="convnet"):
        register_network("convnet")(nn.Identity)


def test_network_arguments_are_the_builder_keywords_with_defaults():
    assert network_arguments("convnet") == {"depth": 3, "width": 128, "norm": "instance", "in_channels": 3}
    with pytest.raises(ValueError, match=r"unknown network 'densenet'; valid: alexnet"):
        network_arguments("densenet")


# ----------------------------------------------------------------------------------------------------
# Contract of every registered network
# ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, image_size", VALID_PROFILE_SIZES)
def test_output_and_feature_shapes(name, image_size):
    model = build(name, image_size).eval()
    images = torch.randn(2, 3, image_size, image_size)
    with torch.no_grad():
        logits, features = model(images), model.features(images)
    assert logits.shape == (2, NUM_CLASSES)
    assert features.shape == (2, model.classifier.in_features)
    torch.testing.assert_close(model.classifier(features), logits)


@pytest.mark.parametrize("name", SCRATCH)
def test_too_small_images_are_refused_in_one_line_naming_the_minimum(name):
    message = refusal(name, 1)
    assert message and "\n" not in message and "image_size 1 " in message
    minimum = minimum_size(name)
    assert minimum > 1, message
    assert re.search(rf"image_size {minimum - 1} .*valid: image_size >= {minimum}\b", refusal(name, minimum - 1))


@pytest.mark.parametrize("name", SCRATCH)
def test_one_sgd_step_at_the_minimum_size_trains_every_weight(name):
    """At its smallest valid size, every weight of the network gets a gradient and moves.

    In float64, so that a degenerate map (instance norm of a single value, whose output no longer
    depends on the input) shows as a vanishing gradient rather than float32 rounding noise. Only
    tensors of two or more dimensions count: a convolution bias followed by instance norm gets no
    gradient by construction.
    """
    size = minimum_size(name)
    model = build(name, size).double().train()
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.dim() > 1}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss = F.cross_entropy(model(torch.randn(2, 3, size, size, dtype=torch.float64)), torch.tensor([0, 1]))
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    weights = {n: p for n, p in model.named_parameters() if n in before}
    assert not [n for n, p in weights.items() if p.grad.abs().max() <= 1e-8]
    assert not [n for n, p in weights.items() if torch.equal(p, before[n])]


@pytest.mark.parametrize("name", [n for n in SCRATCH if "in_channels" in network_arguments(n)])
def test_in_channels_sets_the_input_channels(name):
    size = max(32, minimum_size(name))
    model = build(name, size, in_channels=1).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, size, size)).shape == (2, NUM_CLASSES)


@pytest.mark.parametrize("name", with_norm())
def test_default_norm_is_instance_norm_as_groupnorm_per_channel(name):
    assert network_arguments(name)["norm"] == "instance"
    modules = list(build(name, 32).modules())
    norms = [m for m in modules if isinstance(m, nn.GroupNorm)]
    assert norms
    assert all(m.num_groups == m.num_channels and m.affine for m in norms)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in modules)


@pytest.mark.parametrize("name", with_norm())
@pytest.mark.parametrize("norm, kind", [("batch", nn.BatchNorm2d), ("none", None)])
def test_norm_option_replaces_instance_norm(name, norm, kind):
    narrow = {"width": 8} if "width" in network_arguments(name) else {}
    model = build(name, 32, norm=norm, **narrow)
    modules = list(model.modules())
    assert not any(isinstance(m, nn.GroupNorm) for m in modules)
    if kind is not None:
        assert any(isinstance(m, kind) for m in modules)
    else:
        assert not any(isinstance(m, nn.BatchNorm2d) for m in modules)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, NUM_CLASSES)


@pytest.mark.parametrize("name", with_norm())
def test_unknown_norm_error_lists_options(name):
    with pytest.raises(ValueError, match=r"unknown norm 'layer'; valid: instance, batch, none"):
        build(name, 32, norm="layer")


# ----------------------------------------------------------------------------------------------------
# IDC's ConvNet and ResNet-AP
# ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["convnet", "resnet_ap"])
def test_idc_networks_keep_conv_bias_without_norm(name):
    model = build(name, 16, norm="none", width=8)
    assert all(m.bias is not None for m in model.modules() if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize("depth, width, image_size", [(3, 128, 32), (2, 16, 16), (4, 8, 64)])
def test_convnet_structure(depth, width, image_size):
    model = build("convnet", image_size, depth=depth, width=width)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    pools = [m for m in model.modules() if isinstance(m, nn.AvgPool2d)]
    assert len(convs) == len(pools) == depth
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) and c.out_channels == width for c in convs)
    assert model.classifier.in_features == width * (image_size // 2 ** depth) ** 2


def test_convnet_too_deep_for_image_is_refused():
    with pytest.raises(ValueError, match="image_size 8"):
        build("convnet", 8, depth=4)


def test_resnet_ap_needs_a_2x2_last_stage():
    with pytest.raises(ValueError, match=r"image_size 15 is too small for resnet_ap .*valid: image_size >= 16"):
        build("resnet_ap", 15)


@pytest.mark.parametrize("image_size, variant, pool", [(16, "small", None), (64, "small", None),
                                                       (65, "mid", 2), (128, "mid", 2), (160, "large", 4)])
def test_resnet_ap_intro_depends_on_image_size(image_size, variant, pool):
    model = build("resnet_ap", image_size)
    assert model.intro_variant == variant
    conv = model.intro[0]
    assert conv.kernel_size == ((7, 7) if variant == "large" else (3, 3))
    assert conv.stride == (1, 1) and conv.bias is None
    pools = [m for m in model.intro if isinstance(m, nn.AvgPool2d)]
    assert [p.kernel_size for p in pools] == ([] if pool is None else [pool])


def test_resnet_ap_large_forward():
    model = build("resnet_ap", 160).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 160, 160)).shape == (1, NUM_CLASSES)


@pytest.mark.parametrize("depth, blocks", [(10, 4), (18, 8)])
def test_resnet_ap_depth_sets_block_count_and_widths(depth, blocks):
    model = build("resnet_ap", 32, depth=depth, width=16)
    assert len(model.layers) == blocks
    assert model.classifier.in_features == 8 * 16
    assert {block.conv2.out_channels for block in model.layers} == {16, 32, 64, 128}


def test_resnet_ap_unknown_depth_lists_options():
    with pytest.raises(ValueError, match=r"unknown resnet_ap depth 12; valid: 10, 18"):
        build("resnet_ap", 32, depth=12)


def test_resnet_ap_downsamples_by_average_pooling():
    model = build("resnet_ap", 32)
    assert all(m.stride == (1, 1) for m in model.modules() if isinstance(m, nn.Conv2d))
    strided = [block for block in model.layers if isinstance(block.pool, nn.AvgPool2d)]
    assert len(strided) == 3
    for block in strided:
        conv, pool, norm = block.shortcut
        assert conv.kernel_size == (1, 1) and pool.kernel_size == 2 and isinstance(norm, nn.GroupNorm)
    with torch.no_grad():
        final_map = model.layers(model.intro(torch.randn(1, 3, 32, 32)))
    assert final_map.shape == (1, 8 * 64, 4, 4)


def test_resnet_ap_initialisation():
    model = build("resnet_ap", 32)
    conv = model.layers[3].conv1
    expected_std = math.sqrt(2.0 / (3 * 3 * conv.out_channels))
    assert conv.weight.std().item() == pytest.approx(expected_std, rel=0.05)
    for m in model.modules():
        if isinstance(m, nn.GroupNorm):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)


# ----------------------------------------------------------------------------------------------------
# torchvision ResNet with IDC's stems
# ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("depth", [18, 50])
def test_resnet_with_batch_norm_at_224_is_torchvision_resnet(depth):
    model = build("resnet", HARD_LABEL_SIZE, depth=depth, norm="batch")
    reference = getattr(torchvision.models, f"resnet{depth}")(num_classes=NUM_CLASSES)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in reference.parameters())
    model.load_state_dict(reference.state_dict())   # same names and shapes: torchvision weights load
    assert model.classifier is model.fc


def test_resnet_forward_at_hard_label_size():
    model = build("resnet", HARD_LABEL_SIZE).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, HARD_LABEL_SIZE, HARD_LABEL_SIZE)).shape == (1, NUM_CLASSES)


@pytest.mark.parametrize("image_size, variant, kernel, stride, maxpool",
                         [(32, "small", 3, 1, False), (64, "small", 3, 1, False), (128, "mid", 3, 1, True),
                          (HARD_LABEL_SIZE, "large", 7, 2, True)])
def test_resnet_stem_follows_idc_by_image_size(image_size, variant, kernel, stride, maxpool):
    model = build("resnet", image_size)
    assert model.intro_variant == variant
    assert model.conv1.kernel_size == (kernel, kernel) and model.conv1.stride == (stride, stride)
    assert isinstance(model.maxpool, nn.MaxPool2d) == maxpool


def test_resnet_depth_34_has_torchvision_block_counts():
    model = build("resnet", 32, depth=34)
    assert [len(layer) for layer in (model.layer1, model.layer2, model.layer3, model.layer4)] == [3, 4, 6, 3]


def test_resnet_unknown_depth_lists_options():
    with pytest.raises(ValueError, match=r"unknown resnet depth 20; valid: 18, 34, 50, 101, 152"):
        build("resnet", 32, depth=20)


# ----------------------------------------------------------------------------------------------------
# torchvision VGG stack, AlexNet
# ----------------------------------------------------------------------------------------------------

def test_vgg11_is_torchvisions_stack_with_a_512_feature_classifier():
    model = build("vgg", 32)
    convs = [m.out_channels for m in model.body if isinstance(m, nn.Conv2d)]
    assert convs == [64, 128, 256, 256, 512, 512, 512, 512]
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.body) == 5
    norms = [m for m in model.body if isinstance(m, nn.GroupNorm)]
    assert [m.num_channels for m in norms] == convs
    assert model.classifier.in_features == 512


def test_vgg_depth_16_and_unknown_depth():
    assert sum(isinstance(m, nn.Conv2d) for m in build("vgg", 32, depth=16).body) == 13
    with pytest.raises(ValueError, match=r"unknown vgg depth 12; valid: 11, 13, 16, 19"):
        build("vgg", 32, depth=12)


def test_alexnet_is_torchvisions_with_4096_features():
    model = build("alexnet", 64)
    assert isinstance(model.net, torchvision.models.AlexNet)
    assert model.classifier is model.net.classifier[-1]
    assert model.classifier.in_features == 4096


# ----------------------------------------------------------------------------------------------------
# timm ViT
# ----------------------------------------------------------------------------------------------------

def test_vit_defaults_are_glads_evaluation_vit():
    model = build("vit", 128)
    assert model.patch_embed.proj.kernel_size == (16, 16)
    assert model.embed_dim == 512 and len(model.blocks) == 10
    block = model.blocks[0]
    assert block.attn.num_heads == 8 and block.attn.qkv.bias is None
    assert block.mlp.fc1.out_features == 512
    assert block.mlp.drop1.p == 0.1 and model.pos_drop.p == 0.1
    assert model.classifier is model.head


def test_vit_features_are_the_normalised_class_token():
    model = build("vit", 32, width=64, depth=2, heads=4).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.features(images), model.forward_features(images)[:, 0])


@pytest.mark.parametrize("kwargs, image_size, message", [
    ({}, 40, r"image_size 40 is not a multiple of vit patch_size 16; valid: image_size >= 16 and a multiple of 16"),
    ({"patch_size": 8}, 36, r"image_size 36 .* patch_size 8"),
    ({"width": 100, "heads": 8}, 32, r"vit width 100 is not divisible by heads 8"),
])
def test_vit_refuses_sizes_patches_do_not_tile(kwargs, image_size, message):
    with pytest.raises(ValueError, match=message):
        build("vit", image_size, **kwargs)
