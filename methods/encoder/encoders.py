"""The frozen distillation encoders of LGM and SFM by name (reference ims3_lgm_sfm.md §2.3 "Backbones", §4.4a).

:func:`load_encoder` gives a :class:`FrozenEncoder`: eval mode, no parameter requiring a gradient, ``forward`` from
ImageNet-normalised images (B, 3, S, S), S = ``input_size``, to float (B, ``feature_dim``) features.

The official backbones are timm architectures built with ``pretrained=False`` whose weights are read from a LOCAL
file (offline runs never download), named by the config's top-level ``encoders`` mapping
(``encoders: {dinov2_vitb: /path/model.safetensors}``); the file is a ``.safetensors`` or a torch state dict in the
hub's own format or timm's (timm's ``checkpoint_filter_fn`` converts DINOv2's and OpenAI CLIP's keys and resamples
the position embedding to 224 px); a torch checkpoint holding ``{"state_dict": ..., "timm_kwargs": {...}}`` builds the
architecture with those extra ``timm.create_model`` arguments (a variant, e.g. the smoke kit's one-block stand-ins:
tests/standin_weights.py). Features are the pooled token of ``num_classes=0``: DINOv2's normalised CLS
token (768-d, as the hub model's output), and for CLIP the CLS token after ``ln_post``, before CLIP's projection
(interpretation: the official wrappers were not seen).

``teacher`` is the suite's stand-in for the digits profile: the dataset's teacher network (``train_teacher``
artifact) without its classifier, i.e. its penultimate ``features()``. The caller loads the teacher
(:class:`TeacherNetwork`, ``evaluation.protocols.train.teacher_network``): methods do not import
``evaluation.protocols`` (tests/test_import_contract.py). It is supervised, so methods using it drop
LGM's and SFM's self-supervised premise (§4.4a); the methods label it in their tables.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from evaluation.core.errors import InputError, MissingWeightsError, WeightsMismatchError, load_matching_weights

from .augment import IMAGENET_MEAN, IMAGENET_STD

CONFIG_KEY = "encoders"          # top-level config mapping: encoder name -> its weight file
TEACHER = "teacher"              # the stand-in's name
VIT_INPUT_SIZE = 224


class FrozenEncoder(nn.Module):
    """A feature extractor that never trains: eval mode (also after ``.train()``), ``requires_grad`` False."""

    def __init__(self, name: str, network: nn.Module, feature_dim: int, input_size: int, weights: str | None):
        super().__init__()
        self.name, self.network = name, network
        self.feature_dim, self.input_size, self.weights = feature_dim, input_size, weights
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FrozenEncoder:
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x).float()


@dataclass(frozen=True)
class TimmEncoder:
    """A timm architecture and how to read its official checkpoint."""
    arch: str                       # timm model name, built with pretrained=False, num_classes=0
    source: str                     # the official weights, for the missing-file message
    kwargs: dict = field(default_factory=dict)   # extra create_model arguments
    strip_prefixes: tuple[str, ...] = ()         # key prefixes of the official checkpoint to remove
    input_size: int = VIT_INPUT_SIZE
    cache_file: str | None = None   # file name in torchvision's cache ($TORCH_HOME/hub/checkpoints/), read when the
                                    # config's encoders.<name> is unset, as the suite's other torchvision weights


ENCODERS: dict[str, TimmEncoder] = {}


def register_encoder(name: str, spec: TimmEncoder) -> None:
    if name in ENCODERS or name == TEACHER:
        raise ValueError(f"encoder '{name}' is registered twice")
    ENCODERS[name] = spec


register_encoder("dinov2_vitb", TimmEncoder("vit_base_patch14_dinov2", "torch hub dinov2_vitb14 or timm "
                                            "vit_base_patch14_dinov2.lvd142m", {"img_size": VIT_INPUT_SIZE}))
register_encoder("clip_vitb32", TimmEncoder("vit_base_patch32_clip_224", "OpenAI CLIP ViT-B/32 (open_clip or timm "
                                            "vit_base_patch32_clip_224.openai)"))
register_encoder("clip_vitb16", TimmEncoder("vit_base_patch16_clip_224", "OpenAI CLIP ViT-B/16 (open_clip or timm "
                                            "vit_base_patch16_clip_224.openai)"))
register_encoder("eva02_vitb", TimmEncoder("eva02_base_patch14_224", "timm eva02_base_patch14_224.mim_in22k"))
register_encoder("resnet18", TimmEncoder("resnet18", "torchvision's ImageNet-1K ResNet-18 (ResNet18_Weights."
                                         "IMAGENET1K_V1, resnet18-f37072fd.pth)", cache_file="resnet18-f37072fd.pth"))
register_encoder("mocov3_vitb", TimmEncoder("vit_base_patch16_224", "MoCo-v3 ViT-B (HF nyu-visionx/moco-v3-vit-b, "
                                            "or the official vit-b-300ep.pth.tar)",
                                            strip_prefixes=("module.base_encoder.", "base_encoder.", "module.")))


def encoder_names() -> list[str]:
    """Every name :func:`load_encoder` accepts (the stand-in last)."""
    return sorted(ENCODERS) + [TEACHER]


@dataclass(frozen=True)
class TeacherNetwork:
    """The dataset's teacher, loaded from its ``train_teacher`` folder by the caller."""
    network: nn.Module          # has ``features()``, the classifier's input
    image_size: int
    mean: tuple[float, ...]     # the normalisation of its training
    std: tuple[float, ...]
    source: str                 # the file read, for the manifests


def load_encoder(name: str, *, weights: str | Path | None = None, teacher: TeacherNetwork | None = None,
                 device: str = "cpu") -> FrozenEncoder:
    """The frozen encoder ``name`` on ``device``: a registered timm encoder reads ``weights`` (the config's
    ``encoders.<name>``), the ``teacher`` stand-in wraps the loaded ``teacher``."""
    if name == TEACHER:
        if teacher is None:
            raise InputError("encoder 'teacher' needs the dataset's teacher; pass --teacher DIR (the workflow "
                             "passes the train_teacher artifact)")
        return teacher_encoder(teacher, device)
    if name not in ENCODERS:
        raise InputError(f"unknown encoder '{name}'; valid: {', '.join(encoder_names())}")
    return timm_encoder(name, ENCODERS[name], weights_path(name, weights), device)


def weights_path(name: str, weights: str | Path | None) -> Path:
    """The encoder's weight file (``weights``, else its torchvision cache file if it has one), or one line naming the
    encoder, the file expected and the key to set."""
    weights = weights if weights is not None else configured_weights(name, {})
    if weights is None or not Path(weights).is_file():
        missing_weights(name, "is not set" if weights is None else f"is {weights}, which is not a file")
    return Path(weights).absolute()


def configured_weights(name: str, configured: dict) -> str | None:
    """The weight file of encoder ``name``: the config's ``encoders.<name>``, else the torchvision cache file of an
    encoder that has one (timm's ``resnet18`` is torchvision's architecture, key for key), else None."""
    if name in configured:
        return configured[name]
    cache_file = ENCODERS[name].cache_file if name in ENCODERS else None
    return str(Path(torch.hub.get_dir()) / "checkpoints" / cache_file) if cache_file else None


def check_configured(name: str, configured: dict) -> None:
    """Config-time check that encoder ``name`` has a weight file (the stand-in needs none); whether the file exists
    is the job's check, so that a profile's DAG can be dry-run without the weights."""
    if name != TEACHER and configured_weights(name, configured) is None:
        missing_weights(name, "is not set")


def missing_weights(name: str, given: str) -> None:
    raise MissingWeightsError(f"encoder '{name}' weights missing: {CONFIG_KEY}.{name} {given}; set it to a local "
                              f"copy of {ENCODERS[name].source} (.safetensors or .pth); offline runs never download")


def read_state(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """The tensors of a ``.safetensors`` file or a torch checkpoint (unwrapping ``state_dict`` / ``model``), and the
    checkpoint's ``timm_kwargs`` (extra ``timm.create_model`` arguments: a variant of the registered architecture,
    such as the smoke kit's one-block stand-ins; {} for every official file)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            return load_file(str(path)), {}
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any reader's failure on a bad file is the one-line input error
        raise WeightsMismatchError(f"{path}: not a weight file ({type(err).__name__}); give a .safetensors or "
                                   f"a torch state dict") from None
    kwargs = state.get("timm_kwargs", {}) if isinstance(state, dict) else {}
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    return state, kwargs


def timm_encoder(name: str, spec: TimmEncoder, path: Path, device: str) -> FrozenEncoder:
    import timm

    state, variant = read_state(path)
    network = timm.create_model(spec.arch, pretrained=False, num_classes=0, **{**spec.kwargs, **variant})
    for prefix in spec.strip_prefixes:
        if any(key.startswith(prefix) for key in state):
            state = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
            break
    filter_fn = getattr(sys.modules[type(network).__module__], "checkpoint_filter_fn", None)  # timm's converter
    if filter_fn is not None:
        state = filter_fn(state, network)
    classifier = f"{network.pretrained_cfg.get('classifier', 'head')}."   # num_classes=0: no classifier (ViT's
    state = {key: value for key, value in state.items() if not key.startswith(classifier)}   # head, ResNet's fc)
    load_matching_weights(network, state, path, f"give {spec.source} for encoder '{name}'")
    return FrozenEncoder(name, network, network.num_features, spec.input_size, str(path)).to(device)


class TeacherFeatures(nn.Module):
    """The teacher's penultimate ``features()`` of ImageNet-normalised images, re-normalised as in its training."""

    def __init__(self, network: nn.Module, mean, std):
        super().__init__()
        self.network = network
        self.register_buffer("imagenet_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("imagenet_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pixels = x * self.imagenet_std + self.imagenet_mean
        return self.network.features((pixels - self.mean) / self.std)


def teacher_encoder(teacher: TeacherNetwork, device: str) -> FrozenEncoder:
    size = teacher.image_size
    features = TeacherFeatures(teacher.network, teacher.mean, teacher.std).to(device)
    with torch.no_grad():
        dim = features(torch.zeros(1, 3, size, size, device=device)).shape[1]
    return FrozenEncoder(TEACHER, features, dim, size, teacher.source)

