"""The image parametrisation LGM and SFM share (reference ims3_lgm_sfm.md §2.3, official ``synsets/pyramid.py``).

An image is a function of its parameters, never stored as pixels while it is optimised:

    image = sigmoid(2 · decorrelate(Σ_levels upsample(level)))

* **Pyramid**: a list of levels, (N, 3, r, r) tensors at resolutions start, 2·start, 4·start, … (1, 2, 4, …, 256
  by default); each is upsampled bilinearly to the final resolution and the levels are summed. It starts with one
  level, randn / #levels; every ``extent_iterations`` (200) iterations a level at twice the resolution is added,
  the old levels scaled by old_len / new_len and the new one drawn randn / new_len, so that the sum keeps its scale.
  The optimiser (Adam, one parameter group per level) is re-created on each extension.
* **Colour decorrelation**: the parameters live in a decorrelated colour space; a fixed 3×3 matrix (the square root
  of ImageNet's colour correlation, Lucid's values) divided by its largest column norm maps them to RGB.
* **Sigmoid(2x)** maps to (0, 1); ImageNet normalisation happens later, with the encoder.

``pixel`` mode (the official alternative) is a pyramid with a single level at the final resolution.
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


def pyramid_resolutions(start_resolution: int, final_resolution: int) -> list[int]:
    """The level resolutions start, 2·start, … up to the final resolution (1, 2, …, 256 by default)."""
    if start_resolution < 1 or final_resolution % start_resolution:
        raise ValueError(f"the final resolution {final_resolution} is not start_resolution {start_resolution}·2^k")
    resolutions = [start_resolution]
    while resolutions[-1] < final_resolution:
        resolutions.append(resolutions[-1] * 2)
    if resolutions[-1] != final_resolution:
        raise ValueError(f"the final resolution {final_resolution} is not start_resolution {start_resolution}·2^k")
    return resolutions


def levels_due(iteration: int, extent_iterations: int, max_levels: int) -> int:
    """How many levels the pyramid has at 0-based ``iteration``: one at the start, one more every
    ``extent_iterations`` (extensions at iterations 200, 400, …), at most ``max_levels``."""
    return min(1 + iteration // extent_iterations, max_levels)


def init_pyramid(num_images: int, start_resolution: int, generator: torch.Generator,
                 channels: int = 3) -> list[torch.Tensor]:
    """The first level, a leaf: randn / #levels (= 1) at ``start_resolution``, drawn from ``generator``."""
    level = torch.randn(num_images, channels, start_resolution, start_resolution, generator=generator)
    return [level.requires_grad_(True)]


def extend_pyramid(levels: list[torch.Tensor], generator: torch.Generator) -> list[torch.Tensor]:
    """New leaf tensors: the old levels scaled by old_len / new_len, and a new level at twice the last resolution
    drawn randn / new_len from ``generator`` (§2.3). The caller re-creates its optimiser on them."""
    old_len, new_len = len(levels), len(levels) + 1
    top = levels[-1]
    shape = (top.shape[0], top.shape[1], 2 * top.shape[2], 2 * top.shape[3])
    new_level = torch.randn(shape, generator=generator, dtype=top.dtype).to(top.device) / new_len
    scaled = [(level.detach() * (old_len / new_len)) for level in levels]
    return [tensor.requires_grad_(True) for tensor in [*scaled, new_level]]


def pyramid_sum(levels: list[torch.Tensor], resolution: int) -> torch.Tensor:
    """Σ of the levels, each upsampled bilinearly (align_corners=False) to ``resolution``."""
    total = 0
    for level in levels:
        if level.shape[-1] != resolution:
            level = F.interpolate(level, size=(resolution, resolution), mode="bilinear", align_corners=False)
        total = total + level
    return total


def render(levels: list[torch.Tensor], resolution: int) -> torch.Tensor:
    """The images in (0, 1): sigmoid(2 · decorrelate(pyramid_sum(levels))), differentiable in the levels."""
    return torch.sigmoid(2.0 * decorrelate(pyramid_sum(levels, resolution)))


def pyramid_optimizer(levels: list[torch.Tensor], lr: float) -> torch.optim.Adam:
    """Adam with one parameter group per level (§2.3: lr 2e-3), fresh state."""
    return torch.optim.Adam([{"params": [level]} for level in levels], lr=lr)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] as uint8 in [0, 255] (rounded), for the suite's ``SyntheticSet``."""
    return (images.detach().clamp(0, 1) * 255).round().to(torch.uint8)
