"""The evaluation networks that wrap torchvision's and timm's classes (``resnet``, ``vgg``, ``alexnet``,
``vit``; see ``evaluation/protocols/networks.py``, which registers them and imports this module on first use)."""
from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer
from torch import nn
from torchvision.models import resnet as tv_resnet
from torchvision.models import vgg as tv_vgg
from torchvision.models.alexnet import AlexNet as TorchvisionAlexNet

from evaluation.protocols.networks import (
    ALEXNET_MIN_SIZE,
    MIN_FINAL_SIDE,
    VGG_CONFIGS,
    VGG_MIN_SIZE,
    VIT_DROPOUT,
    VIT_MLP_RATIO,
    VIT_QKV_BIAS,
    check_depth,
    check_norm,
    intro_variant,
    norm_layer,
)

RESNET_BLOCKS = {18: (tv_resnet.BasicBlock, [2, 2, 2, 2]), 34: (tv_resnet.BasicBlock, [3, 4, 6, 3]),
                 50: (tv_resnet.Bottleneck, [3, 4, 6, 3]), 101: (tv_resnet.Bottleneck, [3, 4, 23, 3]),
                 152: (tv_resnet.Bottleneck, [3, 8, 36, 3])}


# ----------------------------------------------------------------------------------------------------
# torchvision ResNet
# ----------------------------------------------------------------------------------------------------

class ResNet(tv_resnet.ResNet):
    """torchvision's ResNet-``depth`` with IDC's stem by input size (IDC ``models/resnet.py``, ImageNet branch).

    IDC keeps torchvision's stem (conv7x7 stride 2 + max-pool 3/2) above 128 px, replaces the conv by
    a conv3x3 of stride 1 up to 128 px, and also drops the max-pool up to 64 px (``intro_variant``).
    Convolutions have no bias under any norm, as in torchvision; initialisation is torchvision's.
    ``classifier`` is torchvision's ``fc``, so torchvision's state dicts load unchanged.
    """

    def __init__(self, num_classes: int, image_size: int, depth: int = 18, norm: str = "instance",
                 in_channels: int = 3):
        check_depth("resnet", depth, RESNET_BLOCKS)
        check_norm(norm)
        min_size = (MIN_FINAL_SIDE - 1) * 2 ** 3 + 1   # small stem, three stride-2 convs: ceil(side / 8) >= 2
        if image_size < min_size:
            raise ValueError(f"image_size {image_size} is too small for resnet (its last stage would be "
                             f"under {MIN_FINAL_SIDE}x{MIN_FINAL_SIDE}); valid: image_size >= {min_size}")
        block, layers = RESNET_BLOCKS[depth]
        super().__init__(block, layers, num_classes=num_classes, norm_layer=partial(norm_layer, norm))
        self.intro_variant = intro_variant(image_size)
        if self.intro_variant != "large" or in_channels != 3:
            kernel, stride, padding = (7, 2, 3) if self.intro_variant == "large" else (3, 1, 1)
            self.conv1 = nn.Conv2d(in_channels, self.conv1.out_channels, kernel_size=kernel, stride=stride,
                                   padding=padding, bias=False)
            nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")  # torchvision's
        if self.intro_variant == "small":
            self.maxpool = nn.Identity()

    @property
    def classifier(self) -> nn.Linear:
        return self.fc

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


# ----------------------------------------------------------------------------------------------------
# torchvision VGG feature stack
# ----------------------------------------------------------------------------------------------------

class VGG(nn.Module):
    """torchvision's VGG-``depth`` convolutions, global average pooling and a linear classifier on 512 features.

    torchvision's 25088x4096x4096 head (about 120M parameters at VGG-11) is left out. The stack is
    torchvision's ``make_layers``: with ``norm: batch`` that of ``vgg11_bn``, with ``none`` that of
    ``vgg11``, and with ``instance`` IDC's GroupNorm(C, C) where ``vgg11_bn`` has BatchNorm.
    Convolutions keep their bias; initialisation is PyTorch's default (torchvision's is in the
    ``VGG`` class, not in the stack).
    """

    def __init__(self, num_classes: int, image_size: int, depth: int = 11, norm: str = "instance",
                 in_channels: int = 3):
        super().__init__()
        check_depth("vgg", depth, VGG_CONFIGS)
        check_norm(norm)
        if image_size < VGG_MIN_SIZE:
            raise ValueError(f"image_size {image_size} is too small for vgg (5 max-pools of stride 2); "
                             f"valid: image_size >= {VGG_MIN_SIZE}")
        config = tv_vgg.cfgs[VGG_CONFIGS[depth]]
        body = tv_vgg.make_layers(config, batch_norm=norm != "none")
        if in_channels != 3:
            first = body[0]
            body[0] = nn.Conv2d(in_channels, first.out_channels, kernel_size=3, padding=1)
        if norm == "instance":
            for index, module in enumerate(body):
                if isinstance(module, nn.BatchNorm2d):
                    body[index] = norm_layer(norm, module.num_features)
        self.body = body
        self.classifier = nn.Linear([c for c in config if c != "M"][-1], num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.body(x), 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


# ----------------------------------------------------------------------------------------------------
# torchvision AlexNet
# ----------------------------------------------------------------------------------------------------

class AlexNet(nn.Module):
    """torchvision's AlexNet (dropout 0.5, 4096-4096 head); ``features`` is the 4096-d input of its last Linear.

    ``net`` is torchvision's module, its state dict torchvision's. AlexNet has no normalisation.
    """

    def __init__(self, num_classes: int, image_size: int, in_channels: int = 3):
        super().__init__()
        if image_size < ALEXNET_MIN_SIZE:
            raise ValueError(f"image_size {image_size} is too small for alexnet (stride-4 conv and three "
                             f"max-pools); valid: image_size >= {ALEXNET_MIN_SIZE}")
        self.net = TorchvisionAlexNet(num_classes=num_classes)
        if in_channels != 3:
            first = self.net.features[0]
            self.net.features[0] = nn.Conv2d(in_channels, first.out_channels, kernel_size=first.kernel_size,
                                             stride=first.stride, padding=first.padding)

    @property
    def classifier(self) -> nn.Linear:
        return self.net.classifier[-1]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.net.avgpool(self.net.features(x)), 1)
        return self.net.classifier[:-1](x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# ----------------------------------------------------------------------------------------------------
# timm ViT
# ----------------------------------------------------------------------------------------------------

class ViT(VisionTransformer):
    """timm's ``VisionTransformer`` with GLaD's evaluation ViT settings as defaults.

    GLaD: patch 16, dim 512, depth 10, 8 heads of 64, MLP hidden width 512 (= dim, so mlp_ratio 1), no
    qkv bias, dropout 0.1 after attention and MLP and on the embeddings, class-token pooling. GLaD's (lucidrains) ViT has no LayerNorm; timm's
    pre-norm blocks and final norm are kept. Initialisation is timm's. ``classifier`` is timm's
    ``head`` and ``features`` its pre-logits output.
    """

    def __init__(self, num_classes: int, image_size: int, patch_size: int = 16, width: int = 512,
                 depth: int = 10, heads: int = 8, in_channels: int = 3):
        if image_size < patch_size or image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of vit patch_size {patch_size}; "
                             f"valid: image_size >= {patch_size} and a multiple of {patch_size}")
        if width % heads:
            raise ValueError(f"vit width {width} is not divisible by heads {heads}; "
                             f"valid: width a multiple of heads")
        super().__init__(img_size=image_size, patch_size=patch_size, in_chans=in_channels,
                         num_classes=num_classes, embed_dim=width, depth=depth, num_heads=heads,
                         mlp_ratio=VIT_MLP_RATIO, qkv_bias=VIT_QKV_BIAS, pos_drop_rate=VIT_DROPOUT,
                         proj_drop_rate=VIT_DROPOUT)

    @property
    def classifier(self) -> nn.Module:
        return self.head

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x), pre_logits=True)
