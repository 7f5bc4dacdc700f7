"""Differentiable augmentations of LGM and SFM (reference ims3_lgm_sfm.md §2.3 "standard", §2.4 "AugBasic").

``standard`` (distillation, both real and synthetic batches), in order: horizontal flip (p 0.5), RandomResizedCrop
to ``size`` (scale 0.08–1, ratio 3/4–4/3) by ``affine_grid`` + ``grid_sample`` (bilinear), then Gaussian noise with
p 0.5, which the official ``AugStandard`` builds as ``RandomGaussianNoise(mean=0.5, std=0.2)``: the added term is
noise·0.2 + 0.5, a brightness shift of 0.5 included (the reference's reading, kept as written). ``basic``
(the linear probe's training augmentation): flip and the same crop, no noise.

Interpretations (the official ``augmentation/ops`` were not seen): every draw is per image; the crop's side
fractions are √(s·r) and √(s/r) of the image's, each clipped to 1 (no torchvision rejection loop), its centre
uniform where the box stays inside; the flip is folded into the crop's affine map (x → −x), which gives the same
distribution as flipping first since the centre's distribution is symmetric. Draws come from ``generator`` (on its
device) in a fixed order and are moved to the images' device, as evaluation/protocols/augment.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class CropBoxes:
    """Per-image crop boxes in ``affine_grid`` coordinates (the image spans [−1, 1]) and flips."""
    width: torch.Tensor      # (N,) half-width of the box, as a fraction of the image's half-width, in (0, 1]
    height: torch.Tensor     # (N,) the same for the height
    centre_x: torch.Tensor   # (N,) box centre, in [−(1 − width), 1 − width]
    centre_y: torch.Tensor   # (N,)
    flip: torch.Tensor       # (N,) bool: mirror horizontally

    def theta(self) -> torch.Tensor:
        """(N, 2, 3) affine maps from output to input coordinates: x_in = ±width·x_out + centre_x, likewise y."""
        sign = 1.0 - 2.0 * self.flip.to(self.width.dtype)
        zeros = torch.zeros_like(self.width)
        rows_x = torch.stack([sign * self.width, zeros, self.centre_x], dim=1)
        rows_y = torch.stack([zeros, self.height, self.centre_y], dim=1)
        return torch.stack([rows_x, rows_y], dim=1)


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, device=generator.device, dtype=torch.float64)


def sample_crop_boxes(n: int, generator: torch.Generator, scale: tuple[float, float] = (0.08, 1.0),
                      ratio: tuple[float, float] = (3 / 4, 4 / 3), flip_p: float = 0.5) -> CropBoxes:
    """Draws in order: flip uniforms, area fractions s ~ U(scale), log-ratios ~ U(log ratio), centre x, centre y."""
    flip = _uniform(n, 0.0, 1.0, generator) < flip_p
    area = _uniform(n, *scale, generator)
    aspect = torch.exp(_uniform(n, math.log(ratio[0]), math.log(ratio[1]), generator))
    width, height = (area * aspect).sqrt().clamp(max=1.0), (area / aspect).sqrt().clamp(max=1.0)
    centre_x = (2 * _uniform(n, 0.0, 1.0, generator) - 1) * (1 - width)
    centre_y = (2 * _uniform(n, 0.0, 1.0, generator) - 1) * (1 - height)
    return CropBoxes(width, height, centre_x, centre_y, flip)


def resized_crops(images: torch.Tensor, boxes: CropBoxes, size: int) -> torch.Tensor:
    """Each image's box resampled bilinearly to ``size``×``size`` (align_corners=False), differentiable in the
    images."""
    theta = boxes.theta().to(device=images.device, dtype=images.dtype)
    grid = F.affine_grid(theta, [images.shape[0], images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def gaussian_noise(images: torch.Tensor, generator: torch.Generator, p: float = 0.5, mean: float = 0.5,
                   std: float = 0.2) -> torch.Tensor:
    """With probability ``p`` per image, add noise·std + mean (official ``RandomGaussianNoise(mean=0.5, std=0.2)``).
    Draws: the per-image uniforms, then the noise."""
    n = images.shape[0]
    apply = (_uniform(n, 0.0, 1.0, generator) < p).to(device=images.device, dtype=images.dtype)
    noise = torch.randn(images.shape, generator=generator, device=generator.device, dtype=images.dtype)
    return images + apply.view(n, 1, 1, 1) * (noise.to(images.device) * std + mean)


def basic_augmentation(images: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """AugBasic: flip and RandomResizedCrop to ``size`` (the linear probe's training augmentation, §2.4)."""
    return resized_crops(images, sample_crop_boxes(images.shape[0], generator), size)


def standard_augmentation(images: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """The distillation augmentation: flip, RandomResizedCrop to ``size``, Gaussian noise (§2.3)."""
    return gaussian_noise(basic_augmentation(images, size, generator), generator)


def normalize(images: torch.Tensor, mean: tuple[float, ...] = IMAGENET_MEAN,
              std: tuple[float, ...] = IMAGENET_STD) -> torch.Tensor:
    """(x − mean) / std per channel, the encoder's input normalisation (ImageNet statistics by default)."""
    shape = (1, -1, 1, 1)
    mean_t = torch.tensor(mean, dtype=images.dtype, device=images.device).view(shape)
    std_t = torch.tensor(std, dtype=images.dtype, device=images.device).view(shape)
    return (images - mean_t) / std_t


def center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """The central ``size``×``size`` window (SFM's statistics: kornia CenterCrop(224) of 256-px images, §3.2)."""
    top, left = (images.shape[-2] - size) // 2, (images.shape[-1] - size) // 2
    return images[..., top:top + size, left:left + size]
