"""What the ``lgm`` and ``sfm`` distill functions share: the job's frozen encoder and size checks, the image
schedule of the params, the seeded generators, and the config-time check.

Sizes are validated, not derived: a set is stored at the dataset's image size (the ``SyntheticSet`` contract), so
``synthetic_resolution`` must equal it (digits: ``data.digits_image_size``, 16; ImageNet:
``data.imagenet_image_size``), and ``crop_resolution`` must equal the encoder's input size (224 for the ViTs, the
teacher's image size for the stand-in). Both are checked when the job starts, before any optimisation; the
config-time :func:`check_params` checks what the params alone decide (``check_params`` does not see the data block).
"""
from __future__ import annotations

from dataclasses import fields

import torch

from evaluation.core.errors import InputError
from evaluation.core.seeding import generator
from evaluation.data.datasets import DatasetInfo, load_split

from ..registry import DistillContext
from .distill import ImageSchedule
from .encoders import FrozenEncoder, load_encoder
from .statistics import check_crop

IMAGE_DRAWS, REAL_ORDER = 0, 1   # seed streams: levels, heads, augmentations; the real batches' order
STAND_IN_NOTE = ("distilled through the frozen encoder its params name; with encoder 'teacher' (the digits profile) "
                 "that is the suite's supervised teacher network without its classifier, a stand-in that drops the "
                 "method's self-supervised premise (no pretrained ViT offline)")


def dataset_image_size(ctx: DistillContext) -> int:
    """The side of the dataset's images: ImageNet's configured crop, the digits' stored side."""
    if ctx.dataset.source == "imagenet":
        return ctx.data["imagenet_image_size"]
    return load_split(ctx.data_dir, "train", indices=[0])[0].shape[-1]


def job_encoder(ctx: DistillContext) -> FrozenEncoder:
    """The params' frozen encoder on the job's device, once the sizes fit the dataset and the encoder."""
    params = ctx.params
    size = dataset_image_size(ctx)
    if params.synthetic_resolution != size:
        raise InputError(f"synthetic_resolution {params.synthetic_resolution} but dataset {ctx.dataset.name} stores "
                         f"{size} px images; set the method's params.synthetic_resolution to {size}")
    encoder = load_encoder(params.encoder, weights=ctx.encoder_weights, teacher=ctx.teacher_dir, device=ctx.device)
    check_crop(params.crop_resolution, encoder.input_size, params.encoder)
    return encoder


def image_schedule(params) -> ImageSchedule:
    """The image fields of ``LgmParams`` / ``SfmParams``."""
    return ImageSchedule(**{f.name: getattr(params, f.name) for f in fields(ImageSchedule)})


def draws(ctx: DistillContext, stream: int) -> torch.Generator:
    """The job's generator of one stream, seeded from (seed, stream)."""
    return generator(ctx.seed, stream)


def use_amp(ctx: DistillContext) -> bool:
    """The official autocast and x1024 scaling on a GPU; on the CPU the optimisation runs in float32."""
    return ctx.params.autocast and ctx.device.startswith("cuda")


def check_params(params, info: DatasetInfo, sampler: dict) -> None:
    """Config-time check: the encoder's crop and the pyramid's first level fit in the synthetic images."""
    if params.crop_resolution > params.synthetic_resolution:
        raise InputError(f"crop_resolution {params.crop_resolution} exceeds synthetic_resolution "
                         f"{params.synthetic_resolution}; the crop is taken from the synthetic image")
    if params.pyramid_start_resolution > params.synthetic_resolution:
        raise InputError(f"pyramid_start_resolution {params.pyramid_start_resolution} exceeds synthetic_resolution "
                         f"{params.synthetic_resolution}; start the pyramid at or below it")
