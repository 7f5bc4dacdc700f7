"""Batched training augmentation on the images' device; every random draw comes from ``generator``.

Images are float NCHW tensors. Random numbers are drawn on ``generator.device`` and then moved to the
images' device, so results depend only on the generator state, not on where the images live. No
function modifies its input, and augmented images never alias it (identity settings return a copy).

Geometry (RandomResizedCrop, flip, CutMix) comes first, then IMS3's RandAugment, colour (IDC's ColorJitter and PCA
lighting), RDED's ShufflePatches, and DC/GLaD's Differentiable Siamese Augmentation (DSA).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F

from evaluation.core.errors import InputError


def _uniform(shape: tuple[int, ...], low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    """Float64 draws uniform in [low, high)."""
    draws = torch.rand(shape, generator=generator, device=generator.device, dtype=torch.float64)
    return low + (high - low) * draws


def _fallback_box(height: int, width: int, ratio: tuple[float, float]) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop fallback: the central crop of the image clamped to ``ratio``
    (the whole image when its aspect ratio lies within ``ratio``); returns (top, left, h, w)."""
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        h, w = height, round(height * max(ratio))
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


def _check_non_negative(function: str, name: str, value: float) -> None:
    if not value >= 0:   # also rejects NaN
        raise ValueError(f"{function} {name} {value!r} is invalid; valid: {name} >= 0")


def _check_rgb(function: str, images: torch.Tensor) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"{function} images of shape {tuple(images.shape)} are invalid; valid: (N, 3, H, W) RGB")


def _per_sample(values: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """(N,) draws as an (N, 1, 1, 1) tensor on the images' device and dtype."""
    return values.to(device=images.device, dtype=images.dtype)[:, None, None, None]


# ------------------------------------------------------------------------------------------------
# RandAugment (IMS3's evaluation: IDC's transform_imagenet with --randaug, after RRC + flip)
# ------------------------------------------------------------------------------------------------

def rand_augment(images: torch.Tensor, num_ops: int, magnitude: int, *, generator: torch.Generator) -> torch.Tensor:
    """torchvision's ``RandAugment(num_ops, magnitude)`` (v2) applied to each image on its own, as a per-image
    dataset transform (IMS3 official ``data.py``: RandAugment(1, 6) after RandomResizedCrop and flip, before
    colour jitter and lighting), on RGB images in [0, 1].

    RandAugment draws from torch's global CPU generator; here that generator is seeded by one draw of
    ``generator`` inside ``torch.random.fork_rng`` (the global state is restored), so the result depends only
    on ``generator``'s state. ``num_ops`` 0 returns a copy after that one draw.
    """
    from torchvision.transforms import v2

    _check_rgb("rand_augment", images)
    if num_ops < 0 or not 0 <= magnitude < 31:
        raise ValueError(f"rand_augment ({num_ops}, {magnitude}) is invalid; valid: num_ops >= 0, 0 <= magnitude <= 30")
    seed = torch.randint(0, 2 ** 63 - 1, (1,), generator=generator, device=generator.device).item()
    transform = v2.RandAugment(num_ops=num_ops, magnitude=magnitude)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.stack([transform(image.clamp(0.0, 1.0)) for image in images])


# ------------------------------------------------------------------------------------------------
# Colour: ColorJitter (torchvision, IDC/Minimax) and AlexNet PCA lighting (IDC, fb.resnet.torch)
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class JitterReference:
    """How one reference ColorJitter blends an image with its brightness/contrast/saturation target."""
    gray_weights: tuple[float, float, float]   # luma weights (R, G, B) of the grayscale image
    clamp: bool                                # clamp to [0, 1] after each op


COLOR_JITTER_REFERENCES = {
    # torchvision.transforms.ColorJitter on float tensors: ``_blend`` clamps to [0, 1] after each op,
    # and the tensor ``rgb_to_grayscale`` weighs red 0.2989 (PIL's convert("L") uses 0.299).
    "torchvision": JitterReference((0.2989, 0.587, 0.114), clamp=True),
    # IDC's and Minimax's ``utils.ColorJitter`` (from eladhoffer/convNet.pytorch): ``img.lerp(target,
    # alpha)`` with alpha ~ U(-x, x), i.e. factor 1 - alpha; grayscale 0.299/0.587/0.114; no clamping.
    "idc": JitterReference((0.299, 0.587, 0.114), clamp=False),
}
JITTER_OPS = ("brightness", "contrast", "saturation")   # column order of sample_jitter_params' factors


def sample_jitter_params(count: int, brightness: float, contrast: float, saturation: float, *,
                         generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample ColorJitter draws: ``(factors, order)`` on ``generator.device``.

    ``factors`` (count, 3), float64, columns in ``JITTER_OPS`` order, each uniform in
    [max(0, 1 - x), 1 + x] as torchvision's ``ColorJitter._check_input``/``get_params`` (a zero
    strength gives factor exactly 1). ``order`` (count, 3): per sample, a uniformly random
    permutation of the op indices 0..2, applied first to last, as torchvision's ``randperm`` per call
    and IDC's ``random.shuffle`` per image.
    """
    strengths = (brightness, contrast, saturation)
    for name, value in zip(JITTER_OPS, strengths):
        _check_non_negative("color_jitter", name, value)
    options = {"dtype": torch.float64, "device": generator.device}
    low = torch.tensor([max(0.0, 1.0 - x) for x in strengths], **options)
    high = torch.tensor([1.0 + x for x in strengths], **options)
    factors = low + (high - low) * torch.rand((count, 3), generator=generator, **options)
    order = torch.rand((count, 3), generator=generator, **options).argsort(dim=1)
    return factors, order


def _grayscale(images: torch.Tensor, weights: tuple[float, float, float]) -> torch.Tensor:
    r, g, b = images.unbind(dim=1)
    return (weights[0] * r + weights[1] * g + weights[2] * b).unsqueeze(1)


def _blend(images: torch.Tensor, target: torch.Tensor | float, factor: torch.Tensor, clamp: bool) -> torch.Tensor:
    """torchvision's ``_blend``: ``factor * images + (1 - factor) * target``, optionally clamped."""
    out = factor * images + (1.0 - factor) * target
    return out.clamp(0.0, 1.0) if clamp else out


def _jitter_op(op: int, images: torch.Tensor, factor: torch.Tensor, reference: JitterReference) -> torch.Tensor:
    """Brightness blends with black, contrast with the mean of the grayscale image, saturation with
    the grayscale image (torchvision's adjust_brightness/adjust_contrast/adjust_saturation)."""
    if op == 0:
        return _blend(images, 0.0, factor, reference.clamp)
    gray = _grayscale(images, reference.gray_weights)
    if op == 1:
        return _blend(images, gray.mean(dim=(1, 2, 3), keepdim=True), factor, reference.clamp)
    return _blend(images, gray, factor, reference.clamp)


def color_jitter(images: torch.Tensor, brightness: float, contrast: float, saturation: float, *,
                 generator: torch.Generator, reference: str = "torchvision") -> torch.Tensor:
    """ColorJitter(brightness, contrast, saturation) per sample, on RGB images in [0, 1].

    Factors and per-sample op order come from ``sample_jitter_params`` (its first and only draws);
    ops with zero strength are skipped, so all-zero strengths return a copy of ``images``.
    ``reference`` picks the blend of ``COLOR_JITTER_REFERENCES``: "torchvision" (clamped after
    each op, grayscale red weight 0.2989) or "idc", the jitter IDC/Minimax's hard-label protocol
    actually runs (unclamped lerp, 0.299). The two draw factors from the same range for strengths
    up to 1 (IDC's range would go negative above 1; torchvision's stops at 0).
    """
    if reference not in COLOR_JITTER_REFERENCES:
        raise ValueError(f"color_jitter reference {reference!r} is unknown; "
                         f"valid: {', '.join(COLOR_JITTER_REFERENCES)}")
    _check_rgb("color_jitter", images)
    factors, order = sample_jitter_params(len(images), brightness, contrast, saturation, generator=generator)
    active = [op for op, strength in enumerate((brightness, contrast, saturation)) if strength > 0]
    if not active:
        return images.clone()
    factors, order = factors.to(device=images.device, dtype=images.dtype), order.to(images.device)
    out = images
    # Each stage applies, per sample, the op at that position of its order: every active op is
    # computed on the whole batch and selected, which keeps the batch on the device without loops.
    for stage in range(len(JITTER_OPS)):
        for op in active:
            chosen = (order[:, stage] == op)[:, None, None, None]
            jittered = _jitter_op(op, out, factors[:, op, None, None, None], COLOR_JITTER_REFERENCES[reference])
            out = torch.where(chosen, jittered, out)
    return out


IMAGENET_PCA_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_PCA_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)


def lighting(images: torch.Tensor, alphastd: float, *, generator: torch.Generator,
             eigval: Sequence[float] = IMAGENET_PCA_EIGVAL,
             eigvec: Sequence[Sequence[float]] = IMAGENET_PCA_EIGVEC) -> torch.Tensor:
    """AlexNet-style PCA lighting noise, IDC's ``Lighting(alphastd)`` (fb.resnet.torch's constants).

    Per sample, alpha ~ N(0, alphastd) for each of the three principal components, and the colour
    offset ``eigvec @ (alpha * eigval)`` is added to every pixel, unclamped. ``alphastd`` 0 returns a
    copy without drawing.
    """
    _check_non_negative("lighting", "alphastd", alphastd)
    _check_rgb("lighting", images)
    if alphastd == 0:
        return images.clone()
    options = {"dtype": torch.float64, "device": generator.device}
    alpha = alphastd * torch.randn((len(images), 3), generator=generator, **options)
    offset = (alpha * torch.tensor(eigval, **options)) @ torch.tensor(eigvec, **options).T
    return images + offset.to(device=images.device, dtype=images.dtype)[:, :, None, None]


# ------------------------------------------------------------------------------------------------
# RDED's ShufflePatches (soft-label protocol)
# ------------------------------------------------------------------------------------------------

def _strip_source_index(side: int, factor: int, permutation: torch.Tensor, drop_remainder: bool) -> torch.Tensor:
    """(N, side') source positions of the strips laid out in ``permutation`` order per sample.

    Strips are ``side // factor`` wide; the last one takes the remainder, or the remainder is cut off
    (``drop_remainder``, side' = factor * (side // factor)).
    """
    width = side // factor
    sizes = torch.full((factor,), width, dtype=torch.long, device=permutation.device)
    if not drop_remainder:
        sizes[-1] += side - factor * width
    starts = sizes.cumsum(0) - sizes
    placed = sizes[permutation]                       # (N, factor) size of the strip in each slot
    slot_end = placed.cumsum(dim=1)
    positions = torch.arange(int(sizes.sum()), device=permutation.device).expand(len(permutation), -1)
    slot = torch.searchsorted(slot_end, positions.contiguous(), right=True)
    return starts[permutation.gather(1, slot)] + positions - (slot_end - placed).gather(1, slot)


def shuffle_patches(images: torch.Tensor, factor: int, *, generator: torch.Generator,
                    drop_remainder: bool = False) -> torch.Tensor:
    """RDED's ``ShufflePatches(factor)`` (validation/utils.py) with per-sample permutations.

    Each image is cut into ``factor`` vertical strips that are shuffled, then the result into
    ``factor`` horizontal strips that are shuffled, by one gather per axis. ``factor`` 1 returns a
    copy. When a side is not divisible by ``factor`` the last strip takes the remainder, so the shape
    is kept. RDED itself slices ``img[..., i:i + tw]`` with ``i`` already multiplied by the strip
    width, so its ``i != factor - 1`` test compares a pixel offset with a strip index: for practical
    sizes every strip is ``side // factor`` wide and the remainder is silently cut off (and for tiny
    sides a strip can run to the end); ``drop_remainder=True`` reproduces the cut-off. At RDED's
    sizes (224, 32, 64 with factor 1 or 2) the two agree.
    """
    count, channels, height, width = images.shape
    if not isinstance(factor, int) or not 1 <= factor <= min(height, width):
        raise ValueError(f"shuffle_patches factor {factor!r} is invalid; "
                         f"valid: an integer in [1, {min(height, width)}] for {height}x{width} images")
    if factor == 1:
        return images.clone()
    options = {"dtype": torch.float64, "device": generator.device}
    column_order = torch.rand((count, factor), generator=generator, **options).argsort(dim=1)
    row_order = torch.rand((count, factor), generator=generator, **options).argsort(dim=1)
    columns = _strip_source_index(width, factor, column_order, drop_remainder).to(images.device)
    out = images.gather(3, columns[:, None, None, :].expand(count, channels, height, -1))
    rows = _strip_source_index(height, factor, row_order, drop_remainder).to(images.device)
    return out.gather(2, rows[:, None, :, None].expand(-1, channels, -1, out.shape[3]))


# ------------------------------------------------------------------------------------------------
# Differentiable Siamese Augmentation (DC/DSA ``DiffAugment``, as run by GLaD's evaluation)
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DSAParams:
    """DC's ``ParamDiffAug`` defaults (copied unchanged into MTT and GLaD); ``ratio_noise`` is unused
    by the strategies here and left out."""
    prob_flip: float = 0.5         # probability of mirroring an image left-right
    ratio_scale: float = 1.2       # per-axis scale factors uniform in [1 / ratio_scale, ratio_scale]
    ratio_rotate: float = 15.0     # rotation angle uniform in [-ratio_rotate, ratio_rotate] degrees
    ratio_crop_pad: float = 0.125  # translation by up to this fraction of each side, zero filled
    ratio_cutout: float = 0.5      # side of the zeroed rectangle as a fraction of each side
    brightness: float = 1.0        # x + (u - 0.5) * brightness
    saturation: float = 2.0        # channel-mean blend with factor u * saturation
    contrast: float = 0.5          # image-mean blend with factor u + contrast

    def __post_init__(self) -> None:
        for field in fields(self):
            _check_non_negative("DSA", field.name, getattr(self, field.name))
        if not 0 <= self.prob_flip <= 1:
            raise ValueError(f"DSA prob_flip {self.prob_flip!r} is invalid; valid: 0 <= prob_flip <= 1")
        if not self.ratio_scale > 0:
            raise ValueError(f"DSA ratio_scale {self.ratio_scale!r} is invalid; valid: ratio_scale > 0")


DSA_PARAMS = DSAParams()


def _affine(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    # GLaD (and MTT) pass align_corners=True to both calls; DC used the default (False). Samples
    # outside the image read zeros, i.e. the dataset mean once the images are normalised.
    theta = theta.to(device=images.device, dtype=images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=True)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def dsa_scale(images: torch.Tensor, scale_x: torch.Tensor, scale_y: torch.Tensor) -> torch.Tensor:
    """DSA's ``rand_scale`` for given (N,) factors: output pixel at normalised (x, y) samples the input
    at (scale_x * x, scale_y * y), so factors above 1 shrink the content (1 is the identity)."""
    theta = torch.zeros(len(images), 2, 3, dtype=torch.float64, device=scale_x.device)
    theta[:, 0, 0], theta[:, 1, 1] = scale_x, scale_y
    return _affine(images, theta)


def dsa_rotate(images: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """DSA's ``rand_rotate`` for given (N,) angles: theta [[cos, -sin, 0], [sin, cos, 0]] about the
    image centre."""
    radians = degrees.double() * (math.pi / 180)
    cos, sin = torch.cos(radians), torch.sin(radians)
    theta = torch.stack([torch.stack([cos, -sin, torch.zeros_like(cos)], dim=1),
                         torch.stack([sin, cos, torch.zeros_like(cos)], dim=1)], dim=1)
    return _affine(images, theta)


def dsa_translate(images: torch.Tensor, shift_h: torch.Tensor, shift_w: torch.Tensor) -> torch.Tensor:
    """DSA's ``rand_crop`` for given (N,) integer shifts: ``out[i, j] = in[i + shift_h, j + shift_w]``
    and zero where that falls outside the image (DC indexes a 1-pixel zero pad with clamped indices)."""
    _, channels, height, width = images.shape
    rows = torch.arange(height, device=images.device) + shift_h.to(images.device)[:, None]
    cols = torch.arange(width, device=images.device) + shift_w.to(images.device)[:, None]
    out = images.gather(2, rows.clamp(0, height - 1)[:, None, :, None].expand(-1, channels, -1, width))
    out = out.gather(3, cols.clamp(0, width - 1)[:, None, None, :].expand(-1, channels, height, -1))
    inside = ((rows >= 0) & (rows < height))[:, None, :, None] & ((cols >= 0) & (cols < width))[:, None, None, :]
    return torch.where(inside, out, torch.zeros((), dtype=images.dtype, device=images.device))


def dsa_cutout(images: torch.Tensor, centre_h: torch.Tensor, centre_w: torch.Tensor,
               size: tuple[int, int]) -> torch.Tensor:
    """DSA's ``rand_cutout`` for given (N,) centres: rows ``[centre_h - size[0] // 2, + size[0])`` by
    the same for columns, clipped to the image, are multiplied by zero."""
    height, width = images.shape[-2:]
    top = (centre_h.to(images.device) - size[0] // 2)[:, None]
    left = (centre_w.to(images.device) - size[1] // 2)[:, None]
    rows, cols = torch.arange(height, device=images.device), torch.arange(width, device=images.device)
    in_rows = (rows >= top) & (rows < top + size[0])
    in_cols = (cols >= left) & (cols < left + size[1])
    keep = ~(in_rows[:, None, :, None] & in_cols[:, None, None, :])
    return images * keep.to(images.dtype)


def _dsa_color(images: torch.Tensor, params: DSAParams, generator: torch.Generator) -> torch.Tensor:
    """DSA's 'color': rand_brightness, rand_saturation, rand_contrast in sequence."""
    def draw() -> torch.Tensor:
        return _per_sample(_uniform((len(images),), 0.0, 1.0, generator), images)
    out = images + (draw() - 0.5) * params.brightness
    mean = out.mean(dim=1, keepdim=True)
    out = (out - mean) * (draw() * params.saturation) + mean
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    return (out - mean) * (draw() + params.contrast) + mean


def _dsa_crop(images: torch.Tensor, params: DSAParams, generator: torch.Generator) -> torch.Tensor:
    height, width = images.shape[-2:]
    limit_h, limit_w = int(height * params.ratio_crop_pad + 0.5), int(width * params.ratio_crop_pad + 0.5)
    shift_h = torch.randint(-limit_h, limit_h + 1, (len(images),), generator=generator, device=generator.device)
    shift_w = torch.randint(-limit_w, limit_w + 1, (len(images),), generator=generator, device=generator.device)
    return dsa_translate(images, shift_h, shift_w)


def _dsa_cutout(images: torch.Tensor, params: DSAParams, generator: torch.Generator) -> torch.Tensor:
    height, width = images.shape[-2:]
    size = int(height * params.ratio_cutout + 0.5), int(width * params.ratio_cutout + 0.5)
    # DC's centre range: [0, side - 1] for odd cutout sizes, [0, side] for even ones.
    centre_h = torch.randint(0, height + 1 - size[0] % 2, (len(images),), generator=generator,
                             device=generator.device)
    centre_w = torch.randint(0, width + 1 - size[1] % 2, (len(images),), generator=generator,
                             device=generator.device)
    return dsa_cutout(images, centre_h, centre_w, size)


def _dsa_flip(images: torch.Tensor, params: DSAParams, generator: torch.Generator) -> torch.Tensor:
    return random_horizontal_flip(images, params.prob_flip, generator=generator)


def _dsa_scale(images: torch.Tensor, params: DSAParams, generator: torch.Generator) -> torch.Tensor:
    low, high = 1.0 / params.ratio_scale, params.ratio_scale
    scale_x = _uniform((len(images),), low, high, generator)
    return dsa_scale(images, scale_x, _uniform((len(images),), low, high, generator))


def _dsa_rotate(images: torch.Tensor, params: DSAParams, generator: torch.Generator) -> torch.Tensor:
    return dsa_rotate(images, _uniform((len(images),), -params.ratio_rotate, params.ratio_rotate, generator))


DSA_FAMILIES: dict[str, Callable[[torch.Tensor, DSAParams, torch.Generator], torch.Tensor]] = {
    "color": _dsa_color,
    "crop": _dsa_crop,
    "cutout": _dsa_cutout,
    "flip": _dsa_flip,
    "scale": _dsa_scale,
    "rotate": _dsa_rotate,
}
DSA_NONE = ("none", "None", "")   # DC's DiffAugment returns its input for these strategies


def dsa_families(strategy: str) -> list[str]:
    """The families of an underscore-joined DSA strategy, in order (repeats kept: DC draws uniformly
    over the split list); empty for "none"."""
    if strategy in DSA_NONE:
        return []
    families = strategy.split("_")
    for family in families:
        if family not in DSA_FAMILIES:
            raise InputError(f"DSA family {family!r} in strategy {strategy!r} is unknown; "
                             f"valid: {', '.join(DSA_FAMILIES)} joined by '_', or 'none'")
    return families


def dsa(images: torch.Tensor, *, generator: torch.Generator,
        strategy: str = "color_crop_cutout_flip_scale_rotate", params: DSAParams = DSA_PARAMS) -> torch.Tensor:
    """DC/DSA's ``DiffAugment(x, strategy, param=ParamDiffAug())`` in aug_mode 'S', as in GLaD's
    ``evaluate_synset``: per call, ONE family drawn uniformly from the strategy's families, applied
    with per-sample random parameters (no Siamese seed: a training batch, not a matching pair).

    Range-agnostic: GLaD and DC apply it to normalised images (the caller does so after
    ``normalize``); zero fill from crop, cutout, scale and rotate is then the dataset's mean colour.
    Differentiable in ``images``.
    """
    families = dsa_families(strategy)
    if not families:
        return images.clone()
    choice = int(torch.randint(len(families), (1,), generator=generator, device=generator.device))
    return DSA_FAMILIES[families[choice]](images, params, generator)
