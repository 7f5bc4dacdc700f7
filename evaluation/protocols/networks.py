"""Evaluation networks by name: IDC's, written here, and torchvision's and timm's, wrapped.

- ``convnet`` follows IDC's ``models/convnet.py`` (ConvNet-D) and ``resnet_ap`` its ``models/resnet_ap.py``
  (ResNet with average-pooling downsampling), IDC being snu-mllab/Efficient-Dataset-Condensation.
- ``resnet`` is torchvision's ``ResNet`` with the stem of IDC's ``models/resnet.py`` chosen by input size;
  above 128 px that is torchvision's own stem, so ``resnet`` with ``norm: batch`` is torchvision's
  ResNet-18/34/50/101/152 (the soft-label protocol's ResNet-18).
- ``vgg`` is torchvision's VGG feature stack, global average pooling and one linear layer.
- ``alexnet`` is torchvision's AlexNet.
- ``vit`` is timm's ``VisionTransformer`` with the settings of GLaD's evaluation ViT.
- ``linear_probe`` is a linear head on a frozen pretrained encoder (evaluation/protocols/linear_probe.py).
- ``inherited_classifier`` is SFM's classifier inheritance: a projector between two frozen encoders and a
  frozen golden head (evaluation/protocols/inheritance.py).

"Instance" normalisation is IDC's ``nn.GroupNorm(C, C, affine=True)``. Every network has
``features(x) -> [N, D]``, the flattened input of its final linear layer ``classifier``, for use as a
feature extractor, and ``classifier(features(x)) == model(x)``.
"""
from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from evaluation.protocols.inheritance import InheritedClassifier
from evaluation.protocols.linear_probe import LinearProbe

NORMS = ("instance", "batch", "none")
RESNET_AP_BLOCKS = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2)}
RESNET_AP_STRIDES = (1, 2, 2, 2)
SMALL_INTRO_MAX_SIZE = 64   # IDC: ImageNet at <= 64 px keeps the full resolution after the intro
MID_INTRO_MAX_SIZE = 128    # IDC: ImageNet at <= 128 px halves it, larger images quarter it
# Instance norm of a 1x1 map normalises each value to zero, so the output stops depending on the
# input: the last stage of a ResNet must keep at least this side.
MIN_FINAL_SIDE = 2
VGG_CONFIGS = {11: "A", 13: "B", 16: "D", 19: "E"}   # torchvision's names of the VGG stacks
VGG_MIN_SIZE = 2 ** 5       # five 2x2 max-pools of stride 2
ALEXNET_MIN_SIZE = 63       # conv 11/4 then three 3/2 max-pools leave one pixel from 63 px on
# GLaD's evaluation ViT (its networks/vit.py, built in utils.get_network): mlp_dim = dim = 512,
# dropout and emb_dropout 0.1, no bias on the qkv projection.
VIT_MLP_RATIO = 1.0
VIT_DROPOUT = 0.1
VIT_QKV_BIAS = False

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
# The torchvision and timm wrappers live in evaluation/protocols/library_networks.py, imported on first use:
# importing torchvision (which loads torch._dynamo) and timm costs about 2 s, paid by every job
# that validates a config or trains a ConvNet otherwise.
LIBRARY_MODULE = "evaluation.protocols.library_networks"
LIBRARY_NETWORKS = {"resnet": "ResNet", "vgg": "VGG", "alexnet": "AlexNet", "vit": "ViT"}
LIBRARY_NAMES = (*LIBRARY_NETWORKS.values(), "RESNET_BLOCKS")


class LibraryNetwork:
    """Builder of a network class of ``library_networks``, importing that module on first use."""

    def __init__(self, attr: str):
        self.attr = attr

    def load(self) -> Callable[..., nn.Module]:
        return getattr(importlib.import_module(LIBRARY_MODULE), self.attr)

    def __call__(self, **kwargs) -> nn.Module:
        return self.load()(**kwargs)


def __getattr__(name: str):
    """``evaluation.protocols.networks.ResNet`` etc. keep working, imported on first access (PEP 562)."""
    if name in LIBRARY_NAMES:
        return getattr(importlib.import_module(LIBRARY_MODULE), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def register_network(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator adding a builder ``(num_classes, image_size, **kwargs) -> nn.Module`` under ``name``."""
    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"network {name!r} is already registered; "
                             f"registered: {', '.join(list_networks())}")
        _REGISTRY[name] = builder
        return builder
    return decorator


def list_networks() -> list[str]:
    """Names accepted by ``create_network``, sorted."""
    return sorted(_REGISTRY)


def create_network(name: str, num_classes: int, image_size: int, **kwargs) -> nn.Module:
    """The registered network ``name`` for square ``image_size`` inputs and ``num_classes`` outputs."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown network {name!r}; valid: {', '.join(list_networks())}")
    return _REGISTRY[name](num_classes=num_classes, image_size=image_size, **kwargs)


def network_arguments(name: str) -> dict[str, object]:
    """Keyword arguments of network ``name`` beyond ``num_classes`` and ``image_size``, with their defaults."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown network {name!r}; valid: {', '.join(list_networks())}")
    builder = _REGISTRY[name]
    parameters = inspect.signature(builder.load() if isinstance(builder, LibraryNetwork) else builder).parameters.values()
    return {p.name: p.default for p in parameters if p.name not in ("num_classes", "image_size")}


def check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; valid: {', '.join(NORMS)}")


def check_depth(network: str, depth: int, valid: dict[int, object]) -> None:
    if depth not in valid:
        raise ValueError(f"unknown {network} depth {depth!r}; valid: {', '.join(map(str, valid))}")


def norm_layer(norm: str, channels: int) -> nn.Module:
    """IDC's normalisation choices: instance = GroupNorm(C, C, affine), batch, or none."""
    check_norm(norm)
    if norm == "instance":
        return nn.GroupNorm(channels, channels, affine=True)
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


@register_network("convnet")
class ConvNet(nn.Module):
    """ConvNet-D: ``depth`` x [conv3x3 (``width``) -> norm -> ReLU -> avgpool 2] then a linear classifier.

    As IDC's ``ConvNet``: convolutions keep their bias, the classifier reads the flattened
    ``width * (size / 2**depth)**2`` map, and initialisation is PyTorch's default.
    """

    def __init__(self, num_classes: int, image_size: int, depth: int = 3, width: int = 128,
                 norm: str = "instance", in_channels: int = 3):
        super().__init__()
        side = image_size // 2 ** depth
        if side < 1:
            raise ValueError(f"image_size {image_size} is too small for convnet depth {depth}; "
                             f"valid: image_size >= {2 ** depth}")
        layers: list[nn.Module] = []
        channels = in_channels
        for _ in range(depth):
            layers += [nn.Conv2d(channels, width, kernel_size=3, padding=1), norm_layer(norm, width),
                       nn.ReLU(inplace=True), nn.AvgPool2d(kernel_size=2, stride=2)]
            channels = width
        self.body = nn.Sequential(*layers)
        self.classifier = nn.Linear(width * side * side, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def conv3x3(in_channels: int, out_channels: int, bias: bool) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=bias)


def downsample(stride: int) -> nn.Module:
    """ResNet-AP replaces strided convolutions by average pooling of kernel and stride ``stride``."""
    return nn.AvgPool2d(kernel_size=stride, stride=stride) if stride > 1 else nn.Identity()


class BasicBlockAP(nn.Module):
    """IDC's ResNet-AP ``BasicBlock``: conv -> norm -> ReLU -> pool(stride) -> conv -> norm, + shortcut, ReLU.

    The shortcut, when the shape changes, is conv1x1 (stride 1) -> pool(stride) -> norm.
    """

    def __init__(self, in_planes: int, planes: int, stride: int, norm: str):
        super().__init__()
        bias = norm == "none"
        self.conv1 = conv3x3(in_planes, planes, bias)
        self.norm1 = norm_layer(norm, planes)
        self.pool = downsample(stride)
        self.conv2 = conv3x3(planes, planes, bias)
        self.norm2 = norm_layer(norm, planes)
        if stride > 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, kernel_size=1, stride=1, bias=bias),
                                          downsample(stride), norm_layer(norm, planes))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pool(F.relu(self.norm1(self.conv1(x))))
        out = self.norm2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def intro_variant(image_size: int) -> str:
    """IDC's ResNet-AP stem by input size: 'small' (<= 64), 'mid' (<= 128) or 'large'."""
    if image_size <= SMALL_INTRO_MAX_SIZE:
        return "small"
    if image_size <= MID_INTRO_MAX_SIZE:
        return "mid"
    return "large"


def resnet_ap_intro(variant: str, in_channels: int, width: int, norm: str) -> nn.Sequential:
    """Stem: small conv3x3; mid conv3x3 + avgpool 2; large conv7x7 (pad 3) + avgpool 4; all stride 1."""
    bias = norm == "none"
    if variant == "large":
        conv = nn.Conv2d(in_channels, width, kernel_size=7, stride=1, padding=3, bias=bias)
    else:
        conv = conv3x3(in_channels, width, bias)
    layers = [conv, norm_layer(norm, width), nn.ReLU(inplace=True)]
    if variant == "mid":
        layers.append(nn.AvgPool2d(kernel_size=2, stride=2))
    elif variant == "large":
        layers.append(nn.AvgPool2d(kernel_size=4, stride=4))
    return nn.Sequential(*layers)


def init_resnet_ap(model: nn.Module) -> None:
    """IDC's init: conv weights N(0, sqrt(2 / (k*k*out))), norm weights 1, conv/norm biases 0."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
            nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.GroupNorm, nn.BatchNorm2d)):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


@register_network("resnet_ap")
class ResNetAP(nn.Module):
    """ResNet-AP-10/18: stem, four stages of ``BasicBlockAP`` (planes w, 2w, 4w, 8w; strides 1, 2, 2, 2),
    global average pooling and a linear classifier on 8w features."""

    def __init__(self, num_classes: int, image_size: int, depth: int = 10, width: int = 64,
                 norm: str = "instance", in_channels: int = 3):
        super().__init__()
        check_depth("resnet_ap", depth, RESNET_AP_BLOCKS)
        min_size = MIN_FINAL_SIDE * 2 ** (len(RESNET_AP_STRIDES) - 1)   # three pools of 2: side // 8 >= 2
        if image_size < min_size:
            raise ValueError(f"image_size {image_size} is too small for resnet_ap (its last stage would be "
                             f"under {MIN_FINAL_SIDE}x{MIN_FINAL_SIDE}); valid: image_size >= {min_size}")
        self.intro_variant = intro_variant(image_size)
        self.intro = resnet_ap_intro(self.intro_variant, in_channels, width, norm)
        blocks: list[nn.Module] = []
        in_planes = width
        for stage, (count, stride) in enumerate(zip(RESNET_AP_BLOCKS[depth], RESNET_AP_STRIDES)):
            planes = width * 2 ** stage
            for block_stride in [stride] + [1] * (count - 1):
                blocks.append(BasicBlockAP(in_planes, planes, block_stride, norm))
                in_planes = planes
        self.layers = nn.Sequential(*blocks)
        self.classifier = nn.Linear(in_planes, num_classes)
        init_resnet_ap(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.layers(self.intro(x)), 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


for _name, _attr in LIBRARY_NETWORKS.items():
    register_network(_name)(LibraryNetwork(_attr))

register_network("linear_probe")(LinearProbe)
register_network("inherited_classifier")(InheritedClassifier)
