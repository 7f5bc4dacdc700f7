"""The image parametrisation LGM and SFM share (reference ims3_lgm_sfm.md §2.3, official ``synsets/pyramid.py``).

An image is a function of its parameters, never stored as pixels while it is optimised:

    image = sigmoid(2 · decorrelate(Σ_levels upsample(level)))

* **Pyramid**: a list of levels, (N, 3, r, r) tensors at resolutions 1, 2, 4, … up to the final one (256); each is
  upsampled bilinearly (no antialiasing, align_corners=False) to the final resolution and the levels are summed. It
  starts with the levels up to ``pyramid_start_res`` (default 1: one level), each randn / #levels; every
  ``extent_iterations`` (200) steps a level at twice the resolution is added, the old levels scaled by
  old_len / new_len and the new one drawn randn / new_len, so that the sum keeps its scale. The optimiser (Adam, one
  parameter group per level) is re-created on each extension.
* **Colour decorrelation**: the parameters live in a decorrelated colour space; a fixed 3×3 matrix (the square root
  of ImageNet's colour correlation, Lucid's values) divided by its largest column norm maps them to RGB.
* **Sigmoid(2x)** maps to (0, 1); ImageNet normalisation happens later, with the encoder.

``pixel`` mode (the official ``PixelDataset``) is one randn tensor at the final resolution, through the same
decorrelation and sigmoid and never extended: :func:`init_pixels`, rendered by :func:`render` as a one-level list.
``decorrelate_color=False`` is the official ablation flag (§2.5's "−colour decorrelation").
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# Square root of ImageNet's RGB correlation (Lucid's ``color_correlation_svd_sqrt``), rows = RGB output channels.
COLOR_CORRELATION_SQRT = ((0.26, 0.09, 0.02),
                          (0.27, 0.00, -0.05),
                          (0.27, -0.09, 0.03))


def color_decorrelation_matrix(dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """The 3×3 matrix from decorrelated parameters to RGB: ``COLOR_CORRELATION_SQRT`` divided by its largest
    column norm (§2.3)."""
    matrix = torch.tensor(COLOR_CORRELATION_SQRT, dtype=torch.float64)
    matrix = matrix / matrix.norm(dim=0).max()
    return matrix.to(dtype=dtype, device=device)


def decorrelate(params: torch.Tensor) -> torch.Tensor:
    """RGB from decorrelated colour parameters: rgb[i] = Σ_j M[i, j] · params[j] at every pixel, NCHW."""
    matrix = color_decorrelation_matrix(params.dtype, params.device)
    return torch.einsum("ij,njhw->nihw", matrix, params)


def recorrelate(rgb: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`decorrelate` (decorrelated parameters of an RGB tensor), NCHW."""
    inverse = torch.linalg.inv(color_decorrelation_matrix(torch.float64)).to(device=rgb.device, dtype=rgb.dtype)
    return torch.einsum("ij,njhw->nihw", inverse, rgb)


def pyramid_resolutions(final_resolution: int) -> list[int]:
    """The level resolutions 1, 2, 4, … doubling up to ``final_resolution``, the last one clamped to it
    (1, 2, …, 256 at 256; 1, …, 16, 28 at 28), as the official pyramid clamps a doubled resolution."""
    if final_resolution < 1:
        raise ValueError(f"the final resolution {final_resolution} is not positive")
    resolutions = [1]
    while resolutions[-1] < final_resolution:
        resolutions.append(min(2 * resolutions[-1], final_resolution))
    return resolutions


def initial_levels(start_resolution: int, final_resolution: int) -> int:
    """How many levels the pyramid starts with: every resolution of :func:`pyramid_resolutions` up to
    ``start_resolution`` (one at the default start 1)."""
    return max(1, sum(res <= start_resolution for res in pyramid_resolutions(final_resolution)))


def levels_due(step: int, extent_iterations: int, start_levels: int, max_levels: int) -> int:
    """How many levels the pyramid has at optimisation ``step`` (0, 1, …, iterations): the official ``upkeep`` adds
    one before the steps 1 + k·extent_iterations, k ≥ 1 (201, 401, …), until ``max_levels``."""
    return min(start_levels + max(step - 1, 0) // extent_iterations, max_levels)


def init_pyramid(num_images: int, start_resolution: int, final_resolution: int, generator: torch.Generator,
                 channels: int = 3) -> list[torch.Tensor]:
    """The first levels as leaves, lowest resolution first, each randn / #levels drawn from ``generator`` in that
    order (§2.3)."""
    resolutions = pyramid_resolutions(final_resolution)[:initial_levels(start_resolution, final_resolution)]
    draws = [torch.randn(num_images, channels, res, res, generator=generator) for res in resolutions]
    return [(draw / len(draws)).requires_grad_(True) for draw in draws]


def init_pixels(num_images: int, final_resolution: int, generator: torch.Generator,
                channels: int = 3) -> list[torch.Tensor]:
    """Pixel mode's parameters: one randn leaf at ``final_resolution``, a one-level list for :func:`render`."""
    draw = torch.randn(num_images, channels, final_resolution, final_resolution, generator=generator)
    return [draw.requires_grad_(True)]


def extend_pyramid(levels: list[torch.Tensor], final_resolution: int,
                   generator: torch.Generator) -> list[torch.Tensor]:
    """New leaf tensors: the old levels scaled by old_len / new_len, and a new level at twice the last resolution
    (clamped to ``final_resolution``) drawn randn / new_len from ``generator`` (§2.3). The caller re-creates its
    optimiser on them. A pyramid already at ``final_resolution`` is an error."""
    top = levels[-1]
    if top.shape[-1] >= final_resolution:
        raise ValueError(f"the pyramid already reaches the final resolution {final_resolution}")
    old_len, new_len = len(levels), len(levels) + 1
    res = min(2 * top.shape[-1], final_resolution)
    new_level = torch.randn((top.shape[0], top.shape[1], res, res), generator=generator, dtype=top.dtype) / new_len
    scaled = [level.detach() * (old_len / new_len) for level in levels]
    return [tensor.requires_grad_(True) for tensor in [*scaled, new_level.to(top.device)]]


def pyramid_sum(levels: list[torch.Tensor], resolution: int) -> torch.Tensor:
    """Σ of the levels, each upsampled bilinearly (align_corners=False) to ``resolution``."""
    total = 0
    for level in levels:
        if level.shape[-1] != resolution:
            level = F.interpolate(level, size=(resolution, resolution), mode="bilinear", align_corners=False)
        total = total + level
    return total


def render(levels: list[torch.Tensor], resolution: int, decorrelate_color: bool = True) -> torch.Tensor:
    """The images in (0, 1): sigmoid(2 · decorrelate(pyramid_sum(levels))), differentiable in the levels
    (without the decorrelation when ``decorrelate_color`` is false)."""
    summed = pyramid_sum(levels, resolution)
    return torch.sigmoid(2.0 * (decorrelate(summed) if decorrelate_color else summed))


def pyramid_optimizer(levels: list[torch.Tensor], lr: float) -> torch.optim.Adam:
    """Adam with one parameter group per level (§2.3: lr 2e-3), fresh state."""
    return torch.optim.Adam([{"params": [level]} for level in levels], lr=lr)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] as uint8 in [0, 255] (rounded), for the suite's ``SyntheticSet``."""
    return (images.detach().clamp(0, 1) * 255).round().to(torch.uint8)
