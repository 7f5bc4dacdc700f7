"""Miniature stand-ins for the weight files of the teacher and the feature extractors.

A test points the options a user would set for local weights (``metrics.inception_weights``,
``metrics.vgg16_weights``, ``teacher.weights``) at these files. Each writer is seeded (the same
``seed`` writes the same weights, and the global generator is left alone), takes well under a second,
and writes random weights in the exact layout the suite loads:

``write_inception_standin``  a TorchScript module with the interface clean-fid calls on
                             ``inception-2015-12-05.pt``: ``forward(x, return_features: bool)`` and a
                             ``.layers`` submodule (about 190 KB).
``write_vgg16_standin``      a state dict that ``torchvision.models.vgg16`` loads (about 260 KB).
``write_resnet_standin``     a torchvision ResNet state dict with a 1000-way fc (ResNet-18: about 150 KB).
``write_encoder_standin``    a frozen encoder's checkpoint (``encoders.<name>``, methods/encoder/encoders.py) for a
                             one-block, 32-wide variant of its timm architecture (``timm_kwargs``): the ViT-B
                             encoders' loading path at a cost a CPU smoke run affords (170-460 KB).

The two state dicts hold every tensor at its full shape (``load_state_dict`` and
``load_matching_weights`` check shapes), but each weight matrix or kernel is a strided view of a short
random vector (a Hankel tensor: entry [i, j, ...] = v[i + j + ...]). ``torch.save`` stores a view's
storage, not its elements, so VGG-16's 138 M parameters take 260 KB instead of 528 MB (float32) or
264 MB (float16); ``load_state_dict`` copies them into ordinary dense parameters. Rows of a Hankel
matrix are shifted copies of one another, so the features still differ from image to image and from
unit to unit (VGG-16 fc7 of smooth random images: effective rank ~25 over 64 images, torchvision's
own random initialisation ~36). Like any randomly initialised ResNet in eval mode (torchvision's
too), the ResNet stand-in gives nearly the same logits for every image: a stand-in for shapes and
plumbing, not for accuracy. Files are byte-identical for the same seed and file name.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

INCEPTION_SIZE, INCEPTION_DIM = 299, 2048


# ----------------------------------------------------------------------------- state dicts

def strided_state(model: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """A random state dict of ``model`` (built on the meta device: shapes only) whose kernels and
    matrices are Hankel views of short seeded vectors, scaled by He's sqrt(2 / fan-in); norm layers
    are the identity (scale 1, shift 0, running mean 0, variance 1); biases are small and random."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, like in model.state_dict().items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.zeros((), dtype=like.dtype)
        elif name.endswith("running_var") or (name.endswith("weight") and like.ndim == 1):
            state[name] = torch.ones(like.shape)
        elif name.endswith("running_mean"):
            state[name] = torch.zeros(like.shape)
        elif like.ndim >= 2:
            vector = torch.randn(sum(size - 1 for size in like.shape) + 1, generator=generator)
            state[name] = (vector * (2.0 / like[0].numel()) ** 0.5).as_strided(like.shape, (1,) * like.ndim)
        else:
            state[name] = 0.01 * torch.randn(like.shape, generator=generator)
    return state


def write_vgg16_standin(path: str | Path, seed: int = 0) -> Path:
    """A state dict of ``torchvision.models.vgg16`` (138 M parameters at full shape, about 260 KB on
    disk): stands in for ``vgg16-397923af.pth``."""
    with torch.device("meta"):
        model = torchvision.models.vgg16(weights=None)
    return save(strided_state(model, seed), path)


def write_resnet_standin(path: str | Path, depth: int = 18, seed: int = 0) -> Path:
    """A state dict of ``torchvision.models.resnet<depth>`` with its 1000-way ImageNet fc (ResNet-18:
    about 150 KB on disk): stands in for ``resnet18-f37072fd.pth`` and its siblings."""
    with torch.device("meta"):
        model = getattr(torchvision.models, f"resnet{depth}")(weights=None)
    return save(strided_state(model, seed), path)


ENCODER_STANDIN_KWARGS = {"depth": 1, "embed_dim": 32, "num_heads": 2}


def write_encoder_standin(name: str, path: str | Path, seed: int = 0) -> Path:
    """A checkpoint ``{"state_dict", "timm_kwargs"}`` of a miniature variant (``ENCODER_STANDIN_KWARGS``) of encoder
    ``name``'s registered timm architecture, random weights seeded by ``seed``: stands in for its official file."""
    import timm

    from methods.encoder.encoders import ENCODERS

    spec = ENCODERS[name]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = timm.create_model(spec.arch, pretrained=False, num_classes=0,
                                  **{**spec.kwargs, **ENCODER_STANDIN_KWARGS})
    return save({"state_dict": model.state_dict(), "timm_kwargs": ENCODER_STANDIN_KWARGS}, path)


def dense(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state with every view made an ordinary tensor of its own (what a module's parameters are)."""
    return {name: tensor.clone(memory_format=torch.contiguous_format) for name, tensor in state.items()}


def save(state: dict[str, torch.Tensor], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


# ----------------------------------------------------------------------------- Inception

class InceptionLayers(nn.Module):
    """(B, 3, 299, 299) input normalised to [-1, 1] -> (B, 2048, 1, 1) non-negative pooled features,
    the shape that the real network's ``layers`` ends in and that clean-fid ``.view``s to (B, 2048)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, kernel_size=13, stride=13)   # 299 -> 23
        self.mix = nn.Conv2d(16, INCEPTION_DIM, kernel_size=1)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(torch.relu(self.mix(torch.relu(self.conv(x)))))


class InceptionStandIn(nn.Module):
    """The calls clean-fid makes on ``inception-2015-12-05.pt``: ``model.layers(x)`` on 299 px input
    already normalised (``InceptionV3W``, ``resize_inside=False``) and ``model(x, return_features=True)``
    on [0, 255] input of any size (``resize_inside=True``: resized here, bilinearly, then normalised).
    It has no classifier: ``return_features=False`` is refused."""

    def __init__(self):
        super().__init__()
        self.layers = InceptionLayers()
        self.size, self.dim = INCEPTION_SIZE, INCEPTION_DIM   # attributes: TorchScript reads no globals

    def forward(self, img: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        if not return_features:
            raise RuntimeError("the Inception stand-in has no classifier; call it with return_features=True")
        x = img.to(torch.float32)
        if x.shape[2] != self.size or x.shape[3] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.layers((x - 128) / 128).reshape(-1, self.dim)


def write_inception_standin(path: str | Path, seed: int = 0) -> Path:
    """A scripted Inception stand-in (about 190 KB) with clean-fid's interface: stands in for
    ``inception-2015-12-05.pt`` (``torch.jit.load`` reads it; ``InceptionV3W`` too under that name)."""
    with torch.device("meta"):   # built without drawing from the global generator
        model = InceptionStandIn()
    model.load_state_dict(dense(strided_state(model, seed)), assign=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(torch.jit.script(model.eval()), str(path))
    return path
