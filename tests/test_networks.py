"""Tests for evaluation.networks: registry, output and feature shapes, IDC architecture facts."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from evaluation.networks import create_network, list_networks, register_network

NUM_CLASSES = 7


def build(name: str, image_size: int, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return create_network(name, NUM_CLASSES, image_size, **kwargs)


def test_registry_lists_both_reference_networks():
    assert {"convnet", "resnet_ap"} <= set(list_networks())
    assert list_networks() == sorted(list_networks())


def test_unknown_network_error_names_value_and_valid_options():
    with pytest.raises(ValueError) as error:
        create_network("vgg", NUM_CLASSES, 32)
    message = str(error.value)
    assert "\n" not in message
    assert "'vgg'" in message
    assert all(name in message for name in list_networks())


def test_registering_a_taken_name_is_refused():
    with pytest.raises(ValueError, match="convnet"):
        register_network("convnet")(nn.Identity)


@pytest.mark.parametrize("name", list_networks())
@pytest.mark.parametrize("image_size", [16, 32, 128])
def test_output_and_feature_shapes(name, image_size):
    model = build(name, image_size).eval()
    images = torch.randn(2, 3, image_size, image_size)
    with torch.no_grad():
        logits, features = model(images), model.features(images)
    assert logits.shape == (2, NUM_CLASSES)
    assert features.shape == (2, model.classifier.in_features)
    torch.testing.assert_close(model.classifier(features), logits)


@pytest.mark.parametrize("name", list_networks())
def test_default_norm_is_instance_norm_as_groupnorm_per_channel(name):
    modules = list(build(name, 32).modules())
    norms = [m for m in modules if isinstance(m, nn.GroupNorm)]
    assert norms
    assert all(m.num_groups == m.num_channels and m.affine for m in norms)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in modules)


@pytest.mark.parametrize("name", list_networks())
@pytest.mark.parametrize("norm, kind", [("batch", nn.BatchNorm2d), ("none", None)])
def test_norm_option_replaces_instance_norm(name, norm, kind):
    model = build(name, 16, norm=norm, width=8)
    modules = list(model.modules())
    assert not any(isinstance(m, nn.GroupNorm) for m in modules)
    if kind is not None:
        assert any(isinstance(m, kind) for m in modules)
    if norm == "none":  # unnormalised convolutions keep their bias
        assert all(m.bias is not None for m in modules if isinstance(m, nn.Conv2d))
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, NUM_CLASSES)


@pytest.mark.parametrize("name", list_networks())
def test_unknown_norm_error_lists_options(name):
    with pytest.raises(ValueError, match=r"unknown norm 'layer'; valid: instance, batch, none"):
        build(name, 16, norm="layer")


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
