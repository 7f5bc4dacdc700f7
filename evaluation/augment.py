"""Batched training augmentation on the images' device; every random draw comes from ``generator``.

Images are float NCHW tensors. Random numbers are drawn on ``generator.device`` and then moved to the
images' device, so results depend only on the generator state, not on where the images live.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def _uniform(shape: tuple[int, ...], low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    """Float64 draws uniform in [low, high)."""
    draws = torch.rand(shape, generator=generator, device=generator.device, dtype=torch.float64)
    return low + (high - low) * draws


def _fallback_box(height: int, width: int, ratio: tuple[float, float]) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop fallback: the central crop of the image clamped to ``ratio``
    (the whole image when its aspect ratio lies within ``ratio``); returns (top, left, h, w)."""
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


def sample_crop_boxes(count: int, height: int, width: int, scale: tuple[float, float],
                      ratio: tuple[float, float], attempts: int, *,
                      generator: torch.Generator) -> torch.Tensor:
    """``count`` boxes (top, left, h, w) as torchvision's ``RandomResizedCrop.get_params``.

    Each of ``attempts`` tries draws an area fraction uniform in ``scale`` and an aspect ratio
    log-uniform in ``ratio``, rounds the side lengths, and keeps the first box that fits, at an
    offset uniform over the valid positions; with no fitting try the fallback box is used. The
    tries are drawn all at once, so the distribution matches torchvision but not its random stream.
    """
    area = height * width
    target_area = area * _uniform((count, attempts), scale[0], scale[1], generator)
    aspect = torch.exp(_uniform((count, attempts), math.log(ratio[0]), math.log(ratio[1]), generator))
    w = torch.round(torch.sqrt(target_area * aspect))
    h = torch.round(torch.sqrt(target_area / aspect))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    top = torch.floor(_uniform((count, attempts), 0.0, 1.0, generator) * (height - h + 1).clamp(min=1))
    left = torch.floor(_uniform((count, attempts), 0.0, 1.0, generator) * (width - w + 1).clamp(min=1))
    first_fit = fits.to(torch.uint8).argmax(dim=1, keepdim=True)
    boxes = torch.cat([t.gather(1, first_fit) for t in (top, left, h, w)], dim=1).long()
    fallback = torch.tensor(_fallback_box(height, width, ratio), device=boxes.device)
    return torch.where(fits.any(dim=1, keepdim=True), boxes, fallback)


def random_resized_crop(images: torch.Tensor, size: int | tuple[int, int],
                        scale: tuple[float, float] = (0.5, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                        *, generator: torch.Generator, attempts: int = 10) -> torch.Tensor:
    """Per-sample RandomResizedCrop, bilinearly resampled to ``size`` with one ``grid_sample`` call.

    The sampling grid maps the output's pixel edges onto the crop box's edges (``align_corners=False``),
    so a full-image box at the same size reproduces the input. Unlike torchvision, there is no
    antialiasing, and border samples interpolate with the pixels just outside the box (the image
    border is replicated).
    """
    out_h, out_w = (size, size) if isinstance(size, int) else size
    count, channels, height, width = images.shape
    boxes = sample_crop_boxes(count, height, width, scale, ratio, attempts, generator=generator)
    top, left, h, w = boxes.double().unbind(1)
    theta = torch.zeros(count, 2, 3, dtype=torch.float64, device=top.device)
    theta[:, 0, 0] = w / width
    theta[:, 0, 2] = (2 * left + w) / width - 1
    theta[:, 1, 1] = h / height
    theta[:, 1, 2] = (2 * top + h) / height - 1
    theta = theta.to(device=images.device, dtype=images.dtype)
    grid = F.affine_grid(theta, [count, channels, out_h, out_w], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_horizontal_flip(images: torch.Tensor, p: float = 0.5, *,
                           generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability ``p`` (torchvision's RandomHorizontalFlip)."""
    flip = torch.rand(images.shape[0], generator=generator, device=generator.device) < p
    return torch.where(flip.to(images.device)[:, None, None, None], images.flip(-1), images)


def _numpy_rng(generator: torch.Generator) -> np.random.Generator:
    """A numpy Generator seeded by one draw of ``generator`` (torch has no generator-aware Beta)."""
    seed = torch.randint(0, 2 ** 63 - 1, (1,), generator=generator, device=generator.device).item()
    return np.random.default_rng(seed)


def _cut_box(height: int, width: int, lam: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """CutMix's ``rand_bbox``: sides ``int(side * sqrt(1 - lam))``, centre uniform over pixels, clipped
    to the image; returns (top, bottom, left, right)."""
    cut_ratio = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * cut_ratio), int(width * cut_ratio)
    centre_y, centre_x = int(rng.integers(height)), int(rng.integers(width))
    top, bottom = np.clip([centre_y - cut_h // 2, centre_y + cut_h // 2], 0, height)
    left, right = np.clip([centre_x - cut_w // 2, centre_x + cut_w // 2], 0, width)
    return int(top), int(bottom), int(left), int(right)


def cutmix(images: torch.Tensor, labels: torch.Tensor, alpha: float = 1.0, *,
           generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """CutMix as in IDC's training loop: lam ~ Beta(alpha, alpha), a random permutation of the batch,
    the box of ``_cut_box`` pasted from the permuted batch, and lam reset to the kept area fraction.

    Returns (mixed images, labels, permuted labels, lam); the loss is
    ``lam * CE(out, labels_a) + (1 - lam) * CE(out, labels_b)``. ``images`` is not modified.
    """
    if alpha <= 0:
        raise ValueError(f"cutmix alpha {alpha!r} is invalid; valid: alpha > 0")
    rng = _numpy_rng(generator)
    count, _, height, width = images.shape
    lam = float(rng.beta(alpha, alpha))
    permutation = torch.from_numpy(rng.permutation(count)).to(images.device)
    top, bottom, left, right = _cut_box(height, width, lam, rng)
    mixed = images.clone()
    mixed[:, :, top:bottom, left:right] = images[permutation, :, top:bottom, left:right]
    kept = 1.0 - (bottom - top) * (right - left) / (height * width)
    return mixed, labels, labels[permutation.to(labels.device)], kept


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Per-channel ``(images - mean) / std``."""
    mean_t = torch.as_tensor(mean, dtype=images.dtype, device=images.device)[None, :, None, None]
    std_t = torch.as_tensor(std, dtype=images.dtype, device=images.device)[None, :, None, None]
    return (images - mean_t) / std_t
