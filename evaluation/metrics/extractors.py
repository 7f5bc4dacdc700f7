"""Feature extractors of the metrics: a registry name -> extractor, each a clean-fid feature model.

Every extractor follows clean-fid's feature-model contract: it is called on a float32 batch
N x 3 x H x W with values in [0, 255] (what ``cleanfid.utils.ResizeDataset`` yields after the
resize of its ``mode``) and returns N x D features. ``Extractor.features`` feeds uint8 images through
exactly that path (clean-fid's resizer, ``ToTensor`` and ``get_batch_features``), so the same model
passed to ``cleanfid.fid.compute_fid(..., mode=extractor.cleanfid_mode,
custom_feat_extractor=extractor.model)`` sees the same tensors and gives the same FID.

``inception``  clean-fid's own Inception (torchscript, the paper's FID) in mode ``clean``.
``vgg16_fc7``  torchvision's ImageNet VGG-16, fc7 after its ReLU (DMGD supplementary A3.2: "output
               of the second classification layer ... 4096 dimensions"; prdc's paper and
               Kynkäänniemi et al. take VGG-16 ``fc2``, a Keras/TF dense layer that includes its ReLU).
``teacher``    the embedded profile's teacher (``evaluation.protocols.train.load_teacher``), ``features()``.

Weights are never downloaded. Each of ``inception`` and ``vgg16_fc7`` reads the file that its config key
(``evaluation.metrics.WEIGHTS_KEYS``: ``metrics.inception_weights``, ``metrics.vgg16_weights``) names, any
name in any folder, or, when that is null, the file where its library looks (clean-fid: ``/tmp``;
torchvision: ``$TORCH_HOME/hub/checkpoints``). A missing file is one ``MissingWeightsError`` line naming
the path, what to put there and the key; the file read is ``Extractor.weights``, which the manifests record.

Importing this registry is cheap (torch, no torchvision or clean-fid): the config schema reads its names at
the DAG's start-up (``registry: extractors``, evaluation/config/schema.py). The factories and
``Extractor.features`` import the libraries and the networks (evaluation/metrics/feature_models.py) when called.
"""
from __future__ import annotations

import pickle
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from evaluation.core.errors import InputError, MissingWeightsError, WeightsMismatchError, load_matching_weights
from . import WEIGHTS_KEYS

# clean-fid's mode whose resize outside the model is the identity (its TF-Inception resizes inside):
# for our own models it means "native images in [0, 255]"; the model resizes as its policy says.
NATIVE_MODE = "legacy_tensorflow"
CLEAN_MODE = "clean"                   # PIL bicubic on float channels to 299 x 299, no quantisation


@dataclass
class Extractor:
    name: str
    resize: str                        # human-readable resize policy, for table footnotes
    dim: int
    model: Callable[[torch.Tensor], torch.Tensor]   # clean-fid feature model: [0, 255] batch -> N x D
    cleanfid_mode: str                 # clean-fid mode whose outside-the-model resize applies
    input_size: int                    # side the model works at (default side of ImageNet reals)
    device: str = "cpu"
    weights: str | None = None         # the weight file read (absolute path), for the manifests

    def features(self, images: torch.Tensor, batch_size: int = 64) -> np.ndarray:
        """float32 N x D features of uint8 N x 3 x S x S images, as clean-fid computes them."""
        from cleanfid.fid import get_batch_features
        from cleanfid.resize import build_resizer
        from torchvision.transforms import ToTensor

        if images.dtype != torch.uint8:
            raise ValueError(f"images dtype {images.dtype} is invalid; valid: torch.uint8")
        resize, to_tensor = build_resizer(self.cleanfid_mode), ToTensor()
        chunks = [np.zeros((0, self.dim), dtype=np.float32)]
        for start in range(0, len(images), batch_size):
            batch = []
            for image in images[start:start + batch_size]:
                # cleanfid.utils.ResizeDataset.__getitem__, on an image already in memory
                resized = resize(image.permute(1, 2, 0).numpy())
                batch.append(to_tensor(np.array(resized)) * 255 if resized.dtype == np.uint8
                             else to_tensor(resized))
            chunks.append(get_batch_features(torch.stack(batch), self.model, torch.device(self.device)))
        return np.concatenate(chunks).astype(np.float32, copy=False)


EXTRACTORS: dict[str, Callable[..., Extractor]] = {}


def register_extractor(name: str) -> Callable[[Callable[..., Extractor]], Callable[..., Extractor]]:
    def decorator(builder: Callable[..., Extractor]) -> Callable[..., Extractor]:
        EXTRACTORS[name] = builder
        return builder
    return decorator


def list_extractors() -> list[str]:
    return sorted(EXTRACTORS)


def create_extractor(name: str, device: str = "cpu", teacher_dir: str | Path | None = None,
                     weights: str | Path | None = None) -> Extractor:
    """The extractor ``name`` on ``device``. ``weights``: the weight file of ``inception`` or
    ``vgg16_fc7`` (None: where its library looks); ``teacher`` needs ``teacher_dir`` instead."""
    if name not in EXTRACTORS:
        raise InputError(f"unknown feature extractor '{name}'; valid: {', '.join(list_extractors())}")
    if weights is not None and name not in WEIGHTS_KEYS:
        raise InputError(f"extractor '{name}' takes no weight file (given {weights}), it reads its own "
                         f"directory; give weight files to {', '.join(WEIGHTS_KEYS)} only")
    return EXTRACTORS[name](device=device, teacher_dir=teacher_dir, weights=weights)


def weights_file(configured: str | Path | None, default: Path, what: str, source: str, extractor: str,
                 library: str) -> Path:
    """The weight file to read: ``configured`` (the extractor's config key) when set, else ``default``
    (where ``library`` looks). A missing one is one line naming the path, what to put there and the
    key; checked before any library call, which might otherwise try to download."""
    key = f"metrics.{WEIGHTS_KEYS[extractor]}"
    if configured is None:
        if not default.is_file():
            raise MissingWeightsError(f"{what} missing: put {default.name} ({source}) in {default.parent}/ "
                                      f"({library}) or set {key} to a copy elsewhere; offline runs never download")
        return default.absolute()
    path = Path(configured)
    if not path.is_file():
        raise MissingWeightsError(f"{what} missing: {key} is {path}, which is not a file; put {default.name} "
                                  f"({source}) there under any name, or set {key} to where it is")
    return path.absolute()


def load_state_file(path: Path, fix: str) -> dict:
    """The tensors of a state-dict file; a file that torch cannot read as one (a TorchScript archive, a
    truncated download, another format) is one ``WeightsMismatchError`` line."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError) as err:
        raise WeightsMismatchError(f"{path}: not a state dict ({first_sentence(err)}); {fix}") from None


def first_sentence(err: Exception, limit: int = 200) -> str:
    """The first sentence of a library's error, shortened (torch's run to several, on several lines)."""
    sentence = (str(err).strip() or type(err).__name__).splitlines()[0].split(". ")[0].rstrip(".")
    return sentence if len(sentence) <= limit else sentence[:limit - 3] + "..."


# ----------------------------------------------------------------------------- inception

def cleanfid_weights_dir() -> Path:
    """Where clean-fid looks for (and would download) its Inception: ``cleanfid.features.
    feature_extractor`` hard-codes ``/tmp`` (``./`` on Windows) and checks no other place."""
    return Path("./" if platform.system() == "Windows" else "/tmp")


@register_extractor("inception")
def inception(device: str = "cpu", teacher_dir=None, weights: str | Path | None = None) -> Extractor:
    from .feature_models import InceptionFile, inception_url

    path = weights_file(weights, cleanfid_weights_dir() / Path(inception_url).name, "clean-fid Inception weights",
                        inception_url, "inception", "where clean-fid looks for it")
    model = InceptionFile(path).to(device).eval()
    return Extractor("inception", "clean-fid 'clean': PIL bicubic on float channels to 299x299, no "
                     "quantisation; (x - 128) / 128", 2048, model, CLEAN_MODE, 299, device, str(path))


# ----------------------------------------------------------------------------- VGG-16 fc7

@register_extractor("vgg16_fc7")
def vgg16_fc7(device: str = "cpu", teacher_dir=None, weights: str | Path | None = None) -> Extractor:
    from torchvision.models import vgg16

    from .feature_models import VGG_SIZE, VGG_WEIGHTS, VGGFc7, vgg_weights_path

    path = weights_file(weights, vgg_weights_path(), "VGG-16 ImageNet weights", VGG_WEIGHTS.url, "vgg16_fc7",
                        "$TORCH_HOME/hub/checkpoints")
    vgg = vgg16(weights=None)
    fix = f"replace it with torchvision's {VGG_WEIGHTS.url}"
    load_matching_weights(vgg, load_state_file(path, fix), path, fix)
    model = VGGFc7(vgg).to(device).eval()
    return Extractor("vgg16_fc7", f"torch bilinear (antialiased) to {VGG_SIZE}x{VGG_SIZE}, ImageNet mean/std",
                     vgg.classifier[3].out_features, model, NATIVE_MODE, VGG_SIZE, device, str(path))


# ----------------------------------------------------------------------------- teacher

@register_extractor("teacher")
def teacher(device: str = "cpu", teacher_dir: str | Path | None = None, weights=None) -> Extractor:
    from evaluation.protocols.train import load_teacher

    from .feature_models import TeacherFeatures

    if teacher_dir is None:
        raise InputError("extractor 'teacher' needs the teacher directory; pass --teacher DIR")
    network, record = load_teacher(Path(teacher_dir), device)
    size = record["image_size"]
    model = TeacherFeatures(network, size, record["mean"], record["std"]).eval()
    with torch.no_grad():
        dim = model(torch.zeros(1, 3, size, size, device=device)).shape[1]
    return Extractor("teacher", f"none at {size}px (other sizes: torch bilinear, antialiased, to {size}px), "
                     "teacher mean/std", dim, model, NATIVE_MODE, size, device,
                     str((Path(teacher_dir) / "model.pt").absolute()))
