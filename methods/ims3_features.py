"""S³'s frozen feature extractors φ (IMS3, shared/reference/ims3_lgm_sfm.md §1.4, official ``centroid.py``).

``resnet18``  torchvision's supervised ImageNet-1K ResNet-18 (``IMAGENET1K_V1``), ``fc = Identity``: images in
              [0, 1] → Resize(224, bicubic) → CenterCrop(224) → ImageNet mean/std → the 512-d pooled features
              (the official default). The weights are read from the params' ``weights`` file or, when that is
              empty, torchvision's cache file ($TORCH_HOME/hub/checkpoints/resnet18-f37072fd.pth); never
              downloaded: a missing file is one ``MissingWeightsError`` line naming it.
``teacher``   the suite's teacher network's ``features()`` (penultimate layer) at its own image size and
              normalisation: the stand-in where no ImageNet extractor exists (digits). The distill job builds it
              from --teacher DIR (the metrics' ``teacher`` extractor model, workflow/scripts/distill.py) and
              passes it in ``DistillContext.teacher_features``: methods import no evaluation package beyond
              core and data (tests/test_import_contract.py).

Each extractor maps uint8 images N×3×S×S to float features N×D; the normalisation of Eq. (8)–(9) is
:func:`methods.ims3_selection.unit_centroid`'s. Real images are first resized bilinearly to the side of the
generated images (the official code resizes them to 256×256, no crop, before the same transform).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from evaluation.core.errors import InputError, MissingWeightsError, load_matching_weights

FeatureFn = Callable[[torch.Tensor], torch.Tensor]   # uint8 N×3×S×S -> float N×D
RESNET_SIZE = 224
IMAGENET_MEAN, IMAGENET_STD = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])


def resnet18_weights_file(configured: str) -> Path:
    """The ResNet-18 state dict to read: ``configured`` (params ``weights``) when set, else torchvision's cache
    file; a missing one is one line naming the file to provide (nothing is downloaded)."""
    import torchvision

    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    default = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
    path = Path(configured) if configured else default
    if not path.is_file():
        where = f"params weights is {path}, which is not a file" if configured else f"{path} is missing (offline)"
        raise MissingWeightsError(f"S³ resnet18 weights: {where}; put torchvision's {default.name} ({url}) there, "
                                  f"point TORCH_HOME at a directory holding hub/checkpoints/{default.name}, or set the "
                                  f"method's params weights to a copy")
    return path.absolute()


def resnet18_features(weights: str, device: str) -> FeatureFn:
    """The official φ (module docstring)."""
    import torchvision

    path = resnet18_weights_file(weights)
    network = torchvision.models.resnet18(weights=None)
    load_matching_weights(network, torch.load(path, map_location="cpu", weights_only=True), path,
                          "replace it with torchvision's ResNet-18 IMAGENET1K_V1 state dict")
    network.fc = torch.nn.Identity()
    network = network.to(device).eval()

    @torch.no_grad()
    def features(images: torch.Tensor) -> torch.Tensor:
        x = images.to(device).float() / 255.0
        x = F.interpolate(x, size=(RESNET_SIZE, RESNET_SIZE), mode="bicubic", align_corners=False)   # square: the
        x = (x - IMAGENET_MEAN.to(x)[:, None, None]) / IMAGENET_STD.to(x)[:, None, None]   # the centre crop
        return network(x).float().cpu()                                                  # is the identity
    return features


def teacher_features(model: torch.nn.Module | None) -> FeatureFn:
    """The teacher's penultimate features (module docstring); ``model`` maps float images in [0, 255] to
    features (the metrics' teacher extractor model), None when the job was given no teacher."""
    if model is None:
        raise InputError("S³ features 'teacher' needs the dataset's teacher; pass --teacher DIR")
    device = next(model.parameters()).device

    @torch.no_grad()
    def features(images: torch.Tensor) -> torch.Tensor:
        return model(images.to(device).float()).float().cpu()
    return features


def batched(features: FeatureFn, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """``features`` of ``images`` in batches of ``batch_size``."""
    return torch.cat([features(images[s:s + batch_size]) for s in range(0, len(images), batch_size)])
