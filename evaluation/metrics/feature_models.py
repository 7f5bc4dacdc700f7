"""The networks behind the feature extractors of evaluation/metrics/extractors.py.

They need torchvision and clean-fid, which cost seconds to import: the extractor registry imports
this module only when it creates an extractor, so that the config schema, which reads the registry's
names at the DAG's start-up, does not pay them.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from cleanfid.downloads_helper import inception_url
from cleanfid.inception_torchscript import InceptionV3W
from torch import nn

from evaluation.core.errors import WeightsMismatchError
from evaluation.protocols.augment import normalize

from .extractors import first_sentence

PIXEL_MAX = 255.0


# ----------------------------------------------------------------------------- inception

class InceptionFile(InceptionV3W):
    """clean-fid's ``InceptionV3W`` (``resize_inside=False``) on the TorchScript file at ``path``, any
    name in any folder: ``InceptionV3W.__init__`` joins a folder with the fixed name
    ``inception-2015-12-05.pt``, so this loads the file as it does and keeps its ``forward`` verbatim
    (the features are bit-identical to ``InceptionV3W``'s for the same file)."""

    def __init__(self, path: Path):
        nn.Module.__init__(self)
        try:
            self.base = torch.jit.load(str(path)).eval()
        except RuntimeError as err:   # torch's "PytorchStreamReader failed ..." for any other file
            raise WeightsMismatchError(f"{path}: not a TorchScript module ({first_sentence(err)}); use "
                                       f"clean-fid's {Path(inception_url).name} ({inception_url})") from None
        self.layers = self.base.layers
        self.resize_inside = False


# ----------------------------------------------------------------------------- VGG-16 fc7

VGG_WEIGHTS = torchvision.models.VGG16_Weights.IMAGENET1K_V1
VGG_SIZE = VGG_WEIGHTS.transforms().crop_size[0]   # 224
FC7_RELU = 5   # classifier[:5] = fc6, ReLU, Dropout, fc7, ReLU


class VGGFc7(nn.Module):
    """VGG-16 fc7 (after ReLU) of [0, 255] images resized (bilinear, antialiased) to 224, ImageNet-normalised."""

    def __init__(self, vgg: torchvision.models.VGG):
        super().__init__()
        self.vgg = vgg
        transform = VGG_WEIGHTS.transforms()
        self.mean, self.std = transform.mean, transform.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x / PIXEL_MAX, size=(VGG_SIZE, VGG_SIZE), mode="bilinear", align_corners=False,
                          antialias=True)
        x = self.vgg.avgpool(self.vgg.features(normalize(x, self.mean, self.std))).flatten(1)
        return self.vgg.classifier[:FC7_RELU](x)


def vgg_weights_path() -> Path:
    """torchvision's cache file of the weights: ``$TORCH_HOME/hub/checkpoints/vgg16-397923af.pth``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(VGG_WEIGHTS.url).name


# ----------------------------------------------------------------------------- teacher

class TeacherFeatures(nn.Module):
    """The teacher's ``features()`` of [0, 255] images at its own size, normalised as in its training."""

    def __init__(self, network: nn.Module, image_size: int, mean, std):
        super().__init__()
        self.network, self.image_size, self.mean, self.std = network, image_size, mean, std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                              align_corners=False, antialias=True)
        return self.network.features(normalize(x / PIXEL_MAX, self.mean, self.std))
