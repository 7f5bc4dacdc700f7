"""The shared LGM/SFM optimisation loop (methods/encoder/distill.py) on a tiny frozen encoder: the pyramid's
schedule, the output set, the statistics artifact, and that both losses go down."""
from __future__ import annotations

import itertools

import torch
from torch import nn

from methods.encoder.distill import (
    ImageSchedule,
    class_major_labels,
    class_statistics,
    lgm_step_loss,
    optimise_images,
    sfm_step_loss,
)
from methods.encoder.augment import normalize
from methods.encoder.sfm import class_feature_sums, class_means

CLASSES, FEATURES, RES, CROP = 3, 8, 16, 12


def tiny_encoder() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.GELU(),
                        nn.Conv2d(8, FEATURES, 3, stride=2, padding=1), nn.GELU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return net.eval().requires_grad_(False)


def real_data(n_per_class: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Class c's images: a colour tint c plus noise, in [0, 1]."""
    gen = torch.Generator().manual_seed(11)
    labels = class_major_labels(CLASSES, n_per_class)
    tint = torch.eye(3)[labels].view(-1, 3, 1, 1)
    return (0.6 * tint + 0.4 * torch.rand(len(labels), 3, RES, RES, generator=gen)).clamp(0, 1), labels


def batches(images, labels, size, seed=0):
    """Endless shuffled batches of ``size``."""
    gen = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(labels), generator=gen)
        for start in range(0, len(order) - size + 1, size):
            idx = order[start:start + size]
            yield images[idx], labels[idx]


def test_the_loop_extends_the_pyramid_on_schedule_and_returns_uint8_images():
    """With one 1×1 level every image is flat; the 2×2 level arrives before step 1 + extent = 3."""
    schedule = ImageSchedule(iterations=12, pyramid_extent_iterations=2, synthetic_resolution=RES)
    flat = []

    def record(images, labels, step):
        flat.append(images.flatten(2).std(2).max().item() < 1e-6)
        return images.mean()
    images, losses = optimise_images(schedule, class_major_labels(CLASSES, 2), record, torch.Generator())
    assert flat[:4] == [True, True, True, False] and not any(flat[4:])
    assert images.dtype == torch.uint8 and images.shape == (2 * CLASSES, 3, RES, RES) and len(losses) == 13
    assert class_major_labels(3, 2).tolist() == [0, 0, 1, 1, 2, 2]


def test_pixel_mode_optimises_one_full_resolution_tensor():
    schedule = ImageSchedule(iterations=3, image_mode="pixel", synthetic_resolution=RES)
    flat = []

    def record(images, labels, step):
        flat.append(images.flatten(2).std(2).max().item() < 1e-6)
        return images.mean()
    optimise_images(schedule, class_major_labels(CLASSES, 1), record, torch.Generator())
    assert not any(flat)


def test_lgm_loop_lowers_the_gradient_matching_loss():
    encoder, (real, labels) = tiny_encoder(), real_data()
    schedule = ImageSchedule(iterations=60, lr=0.05, pyramid_extent_iterations=10, synthetic_resolution=RES)
    gen = torch.Generator().manual_seed(0)
    step_loss = lgm_step_loss(encoder, batches(real, labels, 2 * CLASSES), FEATURES, CLASSES, augs_per_batch=2,
                              crop_resolution=CROP, generator=gen)
    images, losses = optimise_images(schedule, class_major_labels(CLASSES, 1), step_loss, gen)
    assert images.shape == (CLASSES, 3, RES, RES)
    assert sum(losses[-15:]) / 15 < sum(losses[:15]) / 15


def test_sfm_loop_lowers_the_flow_loss_and_uses_the_statistics():
    encoder, (real, labels) = tiny_encoder(), real_data()
    means, counts = class_statistics(encoder, iter(zip(real.split(5), labels.split(5))), CLASSES, CROP)
    assert counts.tolist() == [6, 6, 6]
    schedule = ImageSchedule(iterations=40, lr=0.05, pyramid_extent_iterations=8, synthetic_resolution=RES)
    gen = torch.Generator().manual_seed(1)
    for loss in ("sfm", "sfm_decouple"):
        step_loss = sfm_step_loss(encoder, means, images_per_class=1, augs_per_batch=1, crop_resolution=CROP,
                                  generator=gen, loss=loss)
        _, losses = optimise_images(schedule, class_major_labels(CLASSES, 1), step_loss, gen)
        assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10, loss


def test_statistics_are_the_class_means_of_centre_cropped_features():
    encoder, (real, labels) = tiny_encoder(), real_data()
    means, _ = class_statistics(encoder, itertools.islice(zip(real.split(4), labels.split(4)), 100), CLASSES, CROP)
    border = (RES - CROP) // 2
    features = encoder(normalize(real[..., border:border + CROP, border:border + CROP]))
    torch.testing.assert_close(means, class_means(*class_feature_sums(features, labels, CLASSES)))
