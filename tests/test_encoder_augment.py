"""LGM/SFM differentiable augmentations (methods/encoder/augment.py): crops against slicing, flips, noise, draws."""
from __future__ import annotations

import pytest
import torch

from methods.encoder.augment import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CropBoxes,
    basic_augmentation,
    gaussian_noise,
    normalize,
    resized_crops,
    sample_crop_boxes,
    standard_augmentation,
)


def boxes(width, centre_x, centre_y=0.0, flip=False, n=1) -> CropBoxes:
    """``n`` equal square boxes."""
    def full(value):
        return torch.full((n,), float(value), dtype=torch.float64)
    return CropBoxes(full(width), full(width), full(centre_x), full(centre_y), torch.full((n,), flip))


def test_a_pixel_aligned_box_is_the_slice_of_the_image():
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.float64).view(2, 3, 8, 8)
    torch.testing.assert_close(resized_crops(images, boxes(1.0, 0.0, n=2), 8), images)
    torch.testing.assert_close(resized_crops(images, boxes(0.5, 0.0, n=2), 4), images[..., 2:6, 2:6])
    torch.testing.assert_close(resized_crops(images, boxes(0.5, 0.25, -0.25, n=2), 4), images[..., 1:5, 3:7])


def test_flip_mirrors_the_crop():
    images = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(resized_crops(images, boxes(1.0, 0.0, flip=True), 8), images.flip(-1))


def test_sampled_boxes_stay_inside_with_the_drawn_area_and_ratio():
    crops = sample_crop_boxes(4000, torch.Generator().manual_seed(0))
    assert ((crops.width > 0) & (crops.width <= 1) & (crops.height > 0) & (crops.height <= 1)).all()
    assert (crops.centre_x.abs() <= 1 - crops.width + 1e-12).all()
    assert (crops.centre_y.abs() <= 1 - crops.height + 1e-12).all()
    unclipped = (crops.width < 1) & (crops.height < 1)
    area, ratio = (crops.width * crops.height)[unclipped], (crops.width / crops.height)[unclipped]
    assert area.min() >= 0.08 - 1e-12 and area.max() <= 1 + 1e-12
    assert ratio.min() >= 3 / 4 - 1e-12 and ratio.max() <= 4 / 3 + 1e-12
    assert crops.flip.double().mean().item() == pytest.approx(0.5, abs=0.03)


def test_noise_adds_shifted_gaussians_to_about_half_the_images():
    images = torch.zeros(400, 1, 16, 16)
    noisy = gaussian_noise(images, torch.Generator().manual_seed(1))
    touched = noisy.flatten(1).abs().sum(1) > 0
    assert touched.double().mean().item() == pytest.approx(0.5, abs=0.08)
    values = noisy[touched]
    assert values.mean().item() == pytest.approx(0.5, abs=0.01) and values.std().item() == pytest.approx(0.2, abs=0.01)


def test_augmentations_are_deterministic_shaped_and_differentiable():
    images = torch.rand(3, 3, 32, 32, requires_grad=True)
    first = standard_augmentation(images, 16, torch.Generator().manual_seed(2))
    again = standard_augmentation(images, 16, torch.Generator().manual_seed(2))
    assert first.shape == (3, 3, 16, 16)
    torch.testing.assert_close(first, again)
    first.sum().backward()
    assert images.grad.abs().sum() > 0
    assert basic_augmentation(images, 16, torch.Generator().manual_seed(2)).shape == (3, 3, 16, 16)


def test_normalize_uses_the_imagenet_statistics():
    images = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) + torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(normalize(images), torch.ones(1, 3, 1, 1))
