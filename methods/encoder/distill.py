"""The optimisation loop LGM and SFM share, and their per-step losses (reference ims3_lgm_sfm.md §2.2–2.3, §3.2).

:func:`optimise_images` runs the official ``distill`` loop: steps 0, 1, …, iterations (inclusive); before each
step the pyramid gains the levels that are due (official ``upkeep``: before steps 201, 401, …) and Adam is
re-created; the images are rendered, the step's loss is computed and backpropagated into the levels; the returned
set is rendered after the last step. The official manual AMP scaling (loss ×1024, gradients ÷1024 before the step)
is kept when autocast is on: under float16 it avoids underflow in the second-order backward, in float32 it is exact.

:func:`lgm_step_loss` and :func:`sfm_step_loss` build one step's loss from the rendered images; every random draw
(the head, the augmentations) comes from one ``torch.Generator`` in a fixed order: head, real augmentation,
synthetic augmentation.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from .augment import center_crop, normalize, standard_augmentation
from .images import (
    extend_pyramid,
    init_pixels,
    init_pyramid,
    initial_levels,
    levels_due,
    pyramid_optimizer,
    pyramid_resolutions,
    render,
    to_uint8,
)
from .lgm import Encoder, lgm_loss, random_linear_head, real_head_gradient, repeat_for_augmentations
from .sfm import (
    class_feature_sums,
    class_means,
    real_flow,
    sfm_decouple_loss,
    sfm_loss,
    synthetic_denominator,
)

AMP_SCALE = 1024.0  # the official manual loss scale under autocast
StepLoss = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]   # (images, labels, step) -> scalar loss


@dataclass(frozen=True)
class ImageSchedule:
    """The parametrisation and its optimiser (the image fields of LgmParams / SfmParams)."""
    iterations: int = 5000
    lr: float = 2e-3
    image_mode: str = "pyramid"
    pyramid_start_resolution: int = 1
    pyramid_extent_iterations: int = 200
    decorrelate_color: bool = True
    synthetic_resolution: int = 256


def class_major_labels(num_classes: int, images_per_class: int) -> torch.Tensor:
    """0, …, 0, 1, …, 1, …: ``images_per_class`` of each class, as the official ``syn_labels``."""
    return torch.arange(num_classes).repeat_interleave(images_per_class)


def initial_parameters(schedule: ImageSchedule, num_images: int, generator: torch.Generator) -> list[torch.Tensor]:
    """The first pyramid levels, or pixel mode's single tensor."""
    if schedule.image_mode == "pixel":
        return init_pixels(num_images, schedule.synthetic_resolution, generator)
    return init_pyramid(num_images, schedule.pyramid_start_resolution, schedule.synthetic_resolution, generator)


def optimise_images(schedule: ImageSchedule, labels: torch.Tensor, step_loss: StepLoss, generator: torch.Generator,
                    device=None, amp: bool = False) -> tuple[torch.Tensor, list[float]]:
    """Optimise the images of ``labels`` against ``step_loss``; returns the uint8 images (N, 3, R, R) and the
    per-step losses. ``generator`` draws the initial levels and each new level."""
    levels = [t.detach().to(device).requires_grad_(True) for t in
              initial_parameters(schedule, len(labels), generator)]
    optimizer = pyramid_optimizer(levels, schedule.lr)
    max_levels = len(pyramid_resolutions(schedule.synthetic_resolution))
    start_levels = initial_levels(schedule.pyramid_start_resolution, schedule.synthetic_resolution)
    scale = AMP_SCALE if amp else 1.0
    losses = []
    for step in range(schedule.iterations + 1):
        if schedule.image_mode == "pyramid":
            due = levels_due(step, schedule.pyramid_extent_iterations, start_levels, max_levels)
            if due > len(levels):
                levels = extend_pyramid(levels, schedule.synthetic_resolution, generator)
                optimizer = pyramid_optimizer(levels, schedule.lr)
        images = render(levels, schedule.synthetic_resolution, schedule.decorrelate_color)
        loss = step_loss(images, labels.to(images.device), step)
        optimizer.zero_grad()
        (loss * scale).backward()
        for level in levels:
            level.grad /= scale
        optimizer.step()
        losses.append(loss.item())
    with torch.no_grad():
        final = render(levels, schedule.synthetic_resolution, schedule.decorrelate_color)
    return to_uint8(final), losses


def mixed_precision(encoder: Encoder, enabled: bool) -> Encoder:
    """The encoder's forward under autocast when ``enabled`` (official: autocast), its features cast to float32 so
    that the head, the cross-entropy and the gradients taken from them run outside autocast in float32 (the
    official code evaluates the head and the cross-entropy under autocast too)."""
    if not enabled:
        return encoder

    def forward(images: torch.Tensor) -> torch.Tensor:
        with torch.autocast(images.device.type):
            features = encoder(images)
        return features.float()
    return forward


def math_attention(encoder: Encoder) -> Encoder:
    """The encoder with ``scaled_dot_product_attention`` restricted to its math backend: LGM differentiates the
    head's gradient, hence the encoder's backward, and the fused CUDA kernels (flash, memory-efficient) have no
    double backward; the math backend is made of ordinary differentiable ops."""
    def forward(images: torch.Tensor) -> torch.Tensor:
        with sdpa_kernel(SDPBackend.MATH):
            return encoder(images)
    return forward


def lgm_step_loss(encoder: Encoder, real_batches: Iterator[tuple[torch.Tensor, torch.Tensor]], feature_dim: int,
                  num_classes: int, augs_per_batch: int, crop_resolution: int, generator: torch.Generator,
                  head_std: float = 0.01, amp: bool = False) -> StepLoss:
    """LGM's step (§2.2): a fresh head, g_real on the next real batch (images in [0, 1], ipc·A·C of them, each
    augmented once), g_syn on A augmented copies of the synthetic images, 1 − cos."""
    features_of = mixed_precision(math_attention(encoder), amp)

    def step_loss(images: torch.Tensor, labels: torch.Tensor, step: int) -> torch.Tensor:
        head = random_linear_head(feature_dim, num_classes, generator, head_std, device=images.device)
        real_images, real_labels = next(real_batches)
        real_images, real_labels = real_images.to(images.device), real_labels.to(images.device)
        real = normalize(standard_augmentation(real_images, crop_resolution, generator))
        g_real = real_head_gradient(features_of, head, real, real_labels)
        copies, copy_labels = repeat_for_augmentations(images, labels, augs_per_batch)
        synthetic = normalize(standard_augmentation(copies, crop_resolution, generator))
        return lgm_loss(features_of, head, synthetic, copy_labels, g_real)
    return step_loss


def sfm_step_loss(encoder: Encoder, real_means: torch.Tensor, images_per_class: int, augs_per_batch: int,
                  crop_resolution: int, generator: torch.Generator, loss: str = "sfm", alpha: float = 1.0,
                  official_denominator: bool = True, amp: bool = False) -> StepLoss:
    """SFM's step (§3.2): A augmented copies of the synthetic images, their features' class centres, and the flow
    cosine to the real means' flow (``sfm``) or the decoupled MSE (``sfm_decouple``)."""
    num_classes = real_means.shape[0]
    features_of = mixed_precision(encoder, amp)
    target = real_flow(real_means)
    denominator = synthetic_denominator(num_classes, images_per_class, official_denominator)

    def step_loss(images: torch.Tensor, labels: torch.Tensor, step: int) -> torch.Tensor:
        copies, copy_labels = repeat_for_augmentations(images, labels, augs_per_batch)
        features = features_of(normalize(standard_augmentation(copies, crop_resolution, generator)))
        if loss == "sfm_decouple":
            return sfm_decouple_loss(real_means.to(images.device), features, copy_labels, denominator, alpha)
        return sfm_loss(target.to(images.device), features, copy_labels, denominator)
    return step_loss


@torch.no_grad()
def class_statistics(encoder: Encoder, batches: Iterator[tuple[torch.Tensor, torch.Tensor]], num_classes: int,
                     crop_resolution: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """SFM's statistics artifact (§3.2): the class-mean features (C, D, float64) and the class counts of all the
    training images ``batches`` yields (in [0, 1], already resized and centre-cropped to the synthetic resolution),
    centre-cropped to ``crop_resolution`` and normalised, no augmentation."""
    sums, counts = None, None
    for images, labels in batches:
        features = encoder(normalize(center_crop(images.to(device), crop_resolution)))
        batch_sums, batch_counts = class_feature_sums(features.float().cpu(), labels.cpu(), num_classes)
        sums = batch_sums if sums is None else sums + batch_sums
        counts = batch_counts if counts is None else counts + batch_counts
    if sums is None:
        raise ValueError("the class statistics need at least one batch of training images")
    return class_means(sums, counts), counts
