"""Tests for evaluation.protocols.augment: crop geometry, flip, CutMix bookkeeping, normalisation, colour
jitter against torchvision, PCA lighting, ShufflePatches, DSA families, seeding."""
from __future__ import annotations

import itertools

import pytest
import torch
import torchvision.transforms.functional as TF

from evaluation.protocols.augment import (
    DSA_FAMILIES,
    IMAGENET_PCA_EIGVAL,
    IMAGENET_PCA_EIGVEC,
    DSAParams,
    color_jitter,
    cutmix,
    dsa,
    dsa_cutout,
    dsa_families,
    dsa_rotate,
    dsa_scale,
    dsa_translate,
    lighting,
    normalize,
    rand_augment,
    random_horizontal_flip,
    random_resized_crop,
    sample_crop_boxes,
    sample_jitter_params,
    shuffle_patches,
)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(count: int = 6, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(count, 3, size, size, generator=gen(seed))


def test_full_image_crop_is_identity():
    x = images()
    out = random_resized_crop(x, 16, scale=(1.0, 1.0), ratio=(1.0, 1.0), generator=gen(1))
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


@pytest.mark.parametrize("size, shape", [(8, (8, 8)), (24, (24, 24)), ((12, 20), (12, 20))])
def test_crop_output_shape(size, shape):
    assert random_resized_crop(images(), size, generator=gen(1)).shape == (6, 3, *shape)


def test_crop_of_a_known_box_matches_slicing():
    # scale 1/4 with ratio 1 is an 8x8 box of a 16x16 image: resampled at size 8 it is exactly that box.
    x = images(count=32)
    out = random_resized_crop(x, 8, scale=(0.25, 0.25), ratio=(1.0, 1.0), generator=gen(3))
    boxes = sample_crop_boxes(32, 16, 16, (0.25, 0.25), (1.0, 1.0), 10, generator=gen(3))
    assert torch.all(boxes[:, 2:] == 8)
    assert len({tuple(b) for b in boxes[:, :2].tolist()}) > 1  # offsets vary per sample
    for sample, (top, left, h, w) in zip(range(32), boxes.tolist()):
        torch.testing.assert_close(out[sample], x[sample, :, top:top + h, left:left + w], atol=1e-5, rtol=0)


def test_crop_boxes_lie_inside_image_and_follow_scale():
    boxes = sample_crop_boxes(2000, 20, 30, (0.3, 0.6), (3 / 4, 4 / 3), 10, generator=gen(5))
    top, left, h, w = boxes.T
    assert torch.all((top >= 0) & (left >= 0) & (top + h <= 20) & (left + w <= 30))
    area = (h * w).double() / 600
    assert area.min() > 0.25 and area.max() < 0.65
    aspect = w.double() / h
    assert aspect.min() > 0.65 and aspect.max() < 1.5


def test_crop_falls_back_to_torchvision_central_crop_when_no_box_fits():
    # Aspect ratio 4 at 90% of a square image never fits: torchvision falls back to the central crop
    # clamped to the ratio range (full width, quarter-height band); for ratio 1, the whole image.
    boxes = sample_crop_boxes(5, 16, 16, (0.9, 0.9), (4.0, 4.0), 10, generator=gen(0))
    assert boxes.tolist() == [[6, 0, 4, 16]] * 5
    whole = sample_crop_boxes(5, 16, 16, (2.0, 2.0), (1.0, 1.0), 10, generator=gen(0))
    assert whole.tolist() == [[0, 0, 16, 16]] * 5


def test_crop_is_seeded_by_generator():
    x = images()
    same = [random_resized_crop(x, 16, generator=gen(7)) for _ in range(2)]
    assert torch.equal(same[0], same[1])
    assert not torch.equal(same[0], random_resized_crop(x, 16, generator=gen(8)))


def test_flip_always_and_never():
    x = images()
    assert torch.equal(random_horizontal_flip(x, p=1.0, generator=gen(0)), torch.flip(x, dims=[-1]))
    assert torch.equal(random_horizontal_flip(x, p=0.0, generator=gen(0)), x)


def test_flip_is_per_sample_and_seeded():
    x = images(count=64)
    out = random_horizontal_flip(x, generator=gen(2))
    flipped = (out == torch.flip(x, dims=[-1])).flatten(1).all(dim=1)
    kept = (out == x).flatten(1).all(dim=1)
    assert torch.all(flipped ^ kept)
    assert 0 < flipped.sum() < 64
    assert torch.equal(out, random_horizontal_flip(x, generator=gen(2)))
    assert not torch.equal(out, random_horizontal_flip(x, generator=gen(3)))


def indexed_batch(count: int = 8, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Image i is constant i, so every pixel tells which sample it came from."""
    labels = torch.arange(count)
    return labels.float()[:, None, None, None].expand(count, 3, size, size).clone(), labels


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("alpha", [1.0, 0.4])
def test_cutmix_lam_is_fraction_of_pixels_kept(seed, alpha):
    x, labels = indexed_batch()
    mixed, labels_a, labels_b, lam = cutmix(x, labels, alpha, generator=gen(seed))
    assert torch.equal(labels_a, labels)
    assert sorted(labels_b.tolist()) == labels.tolist()
    assert 0.0 <= lam <= 1.0
    for sample in range(len(x)):
        from_a = (mixed[sample] == labels_a[sample]).all(dim=0)
        from_b = (mixed[sample] == labels_b[sample]).all(dim=0)
        assert torch.all(from_a | from_b)
        if labels_a[sample] != labels_b[sample]:
            assert from_a.double().mean().item() == pytest.approx(lam)


def test_cutmix_pastes_one_rectangle_and_leaves_input_untouched():
    x, labels = indexed_batch()
    original = x.clone()
    mixed, labels_a, labels_b, lam = cutmix(x, labels, generator=gen(4))
    assert torch.equal(x, original)
    assert lam < 1.0
    sample = int(torch.nonzero(labels_a != labels_b)[0])
    pasted = (mixed[sample, 0] != labels_a[sample])
    rows, cols = torch.nonzero(pasted, as_tuple=True)
    box = pasted[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    assert torch.all(box) and box.sum() == pasted.sum()


def test_cutmix_is_seeded_and_draws_vary():
    x, labels = indexed_batch()
    first, second = (cutmix(x, labels, generator=gen(11)) for _ in range(2))
    assert torch.equal(first[0], second[0]) and torch.equal(first[2], second[2]) and first[3] == second[3]
    lams = {cutmix(x, labels, generator=gen(seed))[3] for seed in range(10)}
    assert len(lams) > 1


def test_cutmix_rejects_non_positive_alpha():
    x, labels = indexed_batch()
    with pytest.raises(ValueError, match="cutmix alpha 0.0 is invalid; valid: alpha > 0"):
        cutmix(x, labels, 0.0, generator=gen(0))


def test_normalize_per_channel():
    x = torch.ones(2, 3, 4, 4) * torch.tensor([0.5, 0.25, 1.0])[None, :, None, None]
    out = normalize(x, mean=(0.5, 0.5, 0.5), std=(0.5, 0.25, 2.0))
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([0.0, -1.0, 0.25]))


# ------------------------------------------------------------------------------------------------
# ColorJitter
# ------------------------------------------------------------------------------------------------

TORCHVISION_OPS = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation)


def test_jitter_factors_follow_torchvision_ranges_and_orders_are_permutations():
    factors, order = sample_jitter_params(4000, 0.4, 0.2, 1.5, generator=gen(0))
    for column, (low, high) in enumerate([(0.6, 1.4), (0.8, 1.2), (0.0, 2.5)]):
        values = factors[:, column]
        assert values.min() >= low and values.max() <= high
        assert values.min() < low + 0.01 and values.max() > high - 0.01
    assert torch.equal(order.sort(dim=1).values, torch.arange(3).expand(4000, 3))
    assert len({tuple(row) for row in order.tolist()}) == 6
    unit, _ = sample_jitter_params(5, 0.0, 0.0, 0.0, generator=gen(0))
    assert torch.equal(unit, torch.ones(5, 3, dtype=torch.float64))


@pytest.mark.parametrize("op", range(3))
def test_single_jitter_op_matches_torchvision(op):
    # Strength 0.9 makes brightness factors up to 1.9, so torchvision's clamping is exercised too.
    x = images(count=12)
    strengths = [0.0, 0.0, 0.0]
    strengths[op] = 0.9
    out = color_jitter(x, *strengths, generator=gen(5))
    factors, _ = sample_jitter_params(12, *strengths, generator=gen(5))
    assert factors[:, op].std() > 0.1
    for sample in range(12):
        expected = TORCHVISION_OPS[op](x[sample], float(factors[sample, op]))
        torch.testing.assert_close(out[sample], expected, atol=1e-5, rtol=0)


def test_full_jitter_applies_torchvision_ops_in_each_samples_order():
    x = images(count=24)
    out = color_jitter(x, 0.4, 0.4, 0.4, generator=gen(6))
    factors, order = sample_jitter_params(24, 0.4, 0.4, 0.4, generator=gen(6))
    assert len({tuple(row) for row in order.tolist()}) > 1   # orders differ between samples
    for sample in range(24):
        expected = x[sample]
        for op in order[sample].tolist():
            expected = TORCHVISION_OPS[op](expected, float(factors[sample, op]))
        torch.testing.assert_close(out[sample], expected, atol=1e-5, rtol=0)
    assert out.min() >= 0 and out.max() <= 1


def test_idc_jitter_is_an_unclamped_lerp_with_idc_grayscale():
    x = images(count=8)
    out = color_jitter(x, 0.0, 0.0, 0.9, generator=gen(2), reference="idc")
    factors, _ = sample_jitter_params(8, 0.0, 0.0, 0.9, generator=gen(2))
    gray = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]
    alpha = (1 - factors[:, 2]).float()[:, None, None, None]
    torch.testing.assert_close(out, x.lerp(gray, alpha), atol=1e-6, rtol=0)
    assert out.min() < 0 or out.max() > 1   # IDC does not clamp


def test_jitter_zero_strength_is_identity_and_seeded():
    x = images()
    assert torch.equal(color_jitter(x, 0.0, 0.0, 0.0, generator=gen(0)), x)
    first, second = (color_jitter(x, 0.4, 0.4, 0.4, generator=gen(9)) for _ in range(2))
    assert torch.equal(first, second)
    assert not torch.equal(first, color_jitter(x, 0.4, 0.4, 0.4, generator=gen(10)))


@pytest.mark.parametrize("call, message", [
    (lambda x: color_jitter(x, -0.1, 0.4, 0.4, generator=gen(0)),
     "color_jitter brightness -0.1 is invalid; valid: brightness >= 0"),
    (lambda x: color_jitter(x, 0.4, 0.4, 0.4, generator=gen(0), reference="pil"),
     "color_jitter reference 'pil' is unknown; valid: torchvision, idc"),
    (lambda x: color_jitter(x[:, :1], 0.4, 0.4, 0.4, generator=gen(0)),
     r"color_jitter images of shape \(6, 1, 16, 16\) are invalid"),
    (lambda x: lighting(x, -1.0, generator=gen(0)), "lighting alphastd -1.0 is invalid; valid: alphastd >= 0"),
])
def test_colour_arguments_are_validated(call, message):
    with pytest.raises(ValueError, match=message):
        call(images())


# ------------------------------------------------------------------------------------------------
# PCA lighting
# ------------------------------------------------------------------------------------------------

def test_lighting_zero_std_is_identity():
    x = images()
    assert torch.equal(lighting(x, 0.0, generator=gen(0)), x)


def test_lighting_adds_one_colour_per_image_from_the_pca_basis():
    x = images(count=4000, size=2)
    offset = (lighting(x, 0.1, generator=gen(1)) - x).double()
    colour = offset[:, :, :1, :1]
    torch.testing.assert_close(offset, colour.expand_as(offset), atol=1e-6, rtol=0)
    # Coordinates in the eigenvector basis are alpha * eigval with alpha ~ N(0, 0.1) per component.
    eigvec = torch.tensor(IMAGENET_PCA_EIGVEC, dtype=torch.float64)
    alpha = torch.linalg.solve(eigvec, colour.flatten(1).T).T / torch.tensor(IMAGENET_PCA_EIGVAL, dtype=torch.float64)
    assert torch.allclose(alpha.std(dim=0), torch.full((3,), 0.1, dtype=torch.float64), rtol=0.1)
    assert alpha.mean(dim=0).abs().max() < 0.01
    assert colour.flatten(1).mean(dim=0).abs().max() < 0.002
    assert torch.equal(lighting(x, 0.1, generator=gen(1)), lighting(x, 0.1, generator=gen(1)))


def test_lighting_offset_lies_in_the_span_of_the_nonzero_eigenvalues():
    x = images(count=50, size=4)
    offset = (lighting(x, 0.5, generator=gen(2), eigval=(1.0, 0.0, 0.0)) - x)[:, :, 0, 0].double()
    first = torch.tensor(IMAGENET_PCA_EIGVEC, dtype=torch.float64)[:, 0]
    torch.testing.assert_close(torch.linalg.cross(offset, first.expand_as(offset)), torch.zeros_like(offset),
                               atol=1e-6, rtol=0)
    assert offset.norm(dim=1).min() > 0


# ------------------------------------------------------------------------------------------------
# ShufflePatches
# ------------------------------------------------------------------------------------------------

def position_image(count: int, height: int, width: int) -> torch.Tensor:
    """Channel 0 holds each pixel's row, channel 1 its column, so outputs tell where pixels came from."""
    rows = torch.arange(height, dtype=torch.float32)[:, None].expand(height, width)
    cols = torch.arange(width, dtype=torch.float32)[None, :].expand(height, width)
    return torch.stack([rows, cols, rows * width + cols])[None].repeat(count, 1, 1, 1)


def rded_strips(side: int, factor: int) -> list[list[int]]:
    """The positions of each strip as RDED's ``shuffle_weight`` slices them (its loop, verbatim logic)."""
    strip_width = side // factor
    strips = []
    for i in range(factor):
        i = i * strip_width
        strips.append(list(range(side))[i:i + strip_width] if i != factor - 1 else list(range(side))[i:])
    return strips


def split_into_strips(sources: list[int], strips: list[list[int]]) -> list[list[int]]:
    """Cut ``sources`` into consecutive pieces of the strips' lengths, matched in the order found."""
    pieces, start = [], 0
    remaining = sorted(strips, key=len)
    while start < len(sources):
        piece = next(s for s in remaining if sources[start:start + len(s)] == s)
        remaining.remove(piece)
        pieces.append(piece)
        start += len(piece)
    return pieces


def source_rows_and_cols(out: torch.Tensor) -> tuple[list[list[int]], list[list[int]]]:
    rows, cols = out[:, 0].long(), out[:, 1].long()
    assert torch.equal(rows, rows[:, :, :1].expand_as(rows))   # every output row comes from one row
    assert torch.equal(cols, cols[:, :1, :].expand_as(cols))
    return rows[:, :, 0].tolist(), cols[:, 0, :].tolist()


def test_shuffle_factor_one_is_identity():
    x = images()
    assert torch.equal(shuffle_patches(x, 1, generator=gen(0)), x)


@pytest.mark.parametrize("height, width, factor", [(16, 16, 2), (16, 16, 4), (17, 13, 3)])
def test_shuffle_permutes_whole_strips_and_last_strip_takes_remainder(height, width, factor):
    out = shuffle_patches(position_image(32, height, width), factor, generator=gen(3))
    assert out.shape == (32, 3, height, width)
    rows, cols = source_rows_and_cols(out)
    row_strips = [list(range(height))[k * (height // factor):(k + 1) * (height // factor)] for k in range(factor)]
    row_strips[-1] += list(range(factor * (height // factor), height))
    col_strips = [list(range(width))[k * (width // factor):(k + 1) * (width // factor)] for k in range(factor)]
    col_strips[-1] += list(range(factor * (width // factor), width))
    row_orders = {tuple(map(tuple, split_into_strips(r, row_strips))) for r in rows}
    col_orders = {tuple(map(tuple, split_into_strips(c, col_strips))) for c in cols}
    assert len(row_orders) > 1 and len(col_orders) > 1   # permutations differ between samples
    x = images(count=32, size=16)
    shuffled = shuffle_patches(x, 4, generator=gen(3))
    torch.testing.assert_close(shuffled.sum(dim=2).sort(dim=-1).values, x.sum(dim=2).sort(dim=-1).values)
    torch.testing.assert_close(shuffled.sum(dim=3).sort(dim=-1).values, x.sum(dim=3).sort(dim=-1).values)


@pytest.mark.parametrize("height, width, factor", [(16, 16, 2), (17, 13, 3), (224, 224, 2), (30, 30, 4)])
def test_shuffle_drop_remainder_keeps_exactly_rdeds_strips(height, width, factor):
    out = shuffle_patches(position_image(8, height, width), factor, generator=gen(4), drop_remainder=True)
    row_strips, col_strips = rded_strips(height, factor), rded_strips(width, factor)
    assert out.shape[-2:] == (sum(map(len, row_strips)), sum(map(len, col_strips)))
    rows, cols = source_rows_and_cols(out)
    for r, c in zip(rows, cols):
        assert sorted(split_into_strips(r, row_strips)) == sorted(row_strips)
        assert sorted(split_into_strips(c, col_strips)) == sorted(col_strips)


def test_shuffle_is_seeded_and_rejects_bad_factors():
    x = images()
    assert torch.equal(shuffle_patches(x, 2, generator=gen(5)), shuffle_patches(x, 2, generator=gen(5)))
    assert not torch.equal(shuffle_patches(x, 4, generator=gen(5)), shuffle_patches(x, 4, generator=gen(6)))
    for factor in (0, 17, 2.0):
        with pytest.raises(ValueError, match=f"shuffle_patches factor {factor!r} is invalid"):
            shuffle_patches(x, factor, generator=gen(0))


# ------------------------------------------------------------------------------------------------
# DSA
# ------------------------------------------------------------------------------------------------

def positive_images(count: int = 32, size: int = 16) -> torch.Tensor:
    """Strictly positive pixels, so that zero marks padding or cutout."""
    return images(count, size) + 0.1


def test_dsa_shape_and_seeding():
    x = images(count=8)
    outs = [dsa(x, generator=gen(seed)) for seed in range(12)]
    assert all(out.shape == x.shape for out in outs)
    assert torch.equal(outs[0], dsa(x, generator=gen(0)))
    assert len({out.sum().item() for out in outs}) > 3


@pytest.mark.parametrize("family", DSA_FAMILIES)
def test_each_dsa_family_changes_the_batch_and_keeps_input(family):
    x = images(count=16)
    original = x.clone()
    out = dsa(x, strategy=family, generator=gen(1))
    assert torch.equal(x, original)
    assert out.shape == x.shape and not torch.equal(out, x)


def test_dsa_flip_mirrors_or_keeps_each_sample():
    x = images(count=64)
    out = dsa(x, strategy="flip", generator=gen(2))
    flipped = (out == x.flip(-1)).flatten(1).all(dim=1)
    kept = (out == x).flatten(1).all(dim=1)
    assert torch.all(flipped ^ kept) and 0 < flipped.sum() < 64


def zero_box(out: torch.Tensor) -> tuple[int, int, int]:
    """(height, width, count) of the zero pixels of one image, asserting they fill a rectangle."""
    zero = (out == 0).all(dim=0)
    rows, cols = torch.nonzero(zero, as_tuple=True)
    if len(rows) == 0:
        return 0, 0, 0
    box = zero[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    assert torch.all(box) and box.sum() == zero.sum()
    return box.shape[0], box.shape[1], int(zero.sum())


def test_dsa_cutout_zeros_one_clipped_square_of_half_the_side():
    x = positive_images(count=64)
    out = dsa(x, strategy="cutout", generator=gen(3))
    boxes = [zero_box(sample) for sample in out]
    assert all(0 < h <= 8 and 0 < w <= 8 for h, w, _ in boxes)
    assert sum(area == 64 for _, _, area in boxes) > 10   # not touching a border: the full 8x8
    assert len({(h, w) for h, w, _ in boxes}) > 1         # clipped at borders for some samples
    inside = dsa_cutout(x[:2], torch.tensor([5, 12]), torch.tensor([8, 0]), (8, 8))
    assert zero_box(inside[0]) == (8, 8, 64)
    assert (inside[0, :, 1:9, 4:12] == 0).all()
    assert zero_box(inside[1]) == (8, 4, 32)               # columns -4..3 clipped to 0..3


def test_dsa_translate_shifts_with_zero_fill():
    x = positive_images(count=2)
    out = dsa_translate(x, torch.tensor([1, 0]), torch.tensor([-2, 3]))
    torch.testing.assert_close(out[0, :, :-1, 2:], x[0, :, 1:, :-2], atol=0, rtol=0)
    assert (out[0, :, -1, :] == 0).all() and (out[0, :, :, :2] == 0).all()
    torch.testing.assert_close(out[1, :, :, :-3], x[1, :, :, 3:], atol=0, rtol=0)
    assert (out[1, :, :, -3:] == 0).all()


def test_dsa_crop_is_a_translation_of_at_most_an_eighth_with_zero_fill():
    x = positive_images(count=32)
    out = dsa(x, strategy="crop", generator=gen(4))
    shifts = list(itertools.product(range(-2, 3), repeat=2))   # int(16 * 0.125 + 0.5) = 2
    found = set()
    for sample in range(32):
        candidates = [s for s in shifts
                      if torch.equal(out[sample], dsa_translate(x[sample:sample + 1], *map(torch.tensor, ([s[0]], [s[1]])))[0])]
        assert len(candidates) == 1
        found.add(candidates[0])
    assert len(found) > 3


def test_dsa_scale_and_rotate_geometry():
    x = images(count=3)
    ones = torch.ones(3)
    torch.testing.assert_close(dsa_scale(x, ones, ones), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(dsa_scale(x, -ones, ones), x.flip(-1), atol=1e-5, rtol=0)  # x factor acts on width
    torch.testing.assert_close(dsa_rotate(x, torch.zeros(3)), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(dsa_rotate(x, torch.full((3,), 90.0)), torch.rot90(x, 1, (2, 3)), atol=1e-5, rtol=0)
    shrunk = dsa_scale(positive_images(count=1), torch.tensor([2.0]), torch.tensor([2.0]))
    assert (shrunk[0, :, 0] == 0).all() and (shrunk[0, :, 6:10, 6:10] > 0).all()   # zero padding outside


@pytest.mark.parametrize("family, params", [("scale", DSAParams(ratio_scale=1.0)),
                                            ("rotate", DSAParams(ratio_rotate=0.0))])
def test_dsa_scale_and_rotate_with_neutral_parameters_are_identity(family, params):
    x = images()
    torch.testing.assert_close(dsa(x, strategy=family, params=params, generator=gen(0)), x, atol=1e-5, rtol=0)


def test_dsa_color_shifts_brightness_within_bounds_and_saturation_zero_is_gray():
    x = images(count=64)
    out = dsa(x, strategy="color", generator=gen(7))
    shift = out.mean(dim=(1, 2, 3)) - x.mean(dim=(1, 2, 3))   # saturation and contrast keep the mean
    assert shift.abs().max() <= 0.5 + 1e-5 and shift.std() > 0.1
    gray = dsa(x, strategy="color", params=DSAParams(saturation=0.0), generator=gen(7))
    torch.testing.assert_close(gray, gray[:, :1].expand_as(gray), atol=1e-6, rtol=0)


def test_dsa_is_differentiable_and_range_agnostic():
    x = (images(count=4) - 0.5).requires_grad_()
    for family in DSA_FAMILIES:
        dsa(x, strategy=family, generator=gen(0)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_dsa_strategy_parsing_and_validation():
    assert dsa_families("color_crop_cutout_flip_scale_rotate") == list(DSA_FAMILIES)
    assert dsa_families("none") == []
    x = images()
    assert torch.equal(dsa(x, strategy="none", generator=gen(0)), x)
    with pytest.raises(ValueError, match="DSA family 'noise' in strategy 'color_noise' is unknown; "
                                         "valid: color, crop, cutout, flip, scale, rotate"):
        dsa(x, strategy="color_noise", generator=gen(0))
    with pytest.raises(ValueError, match="DSA ratio_rotate -15.0 is invalid; valid: ratio_rotate >= 0"):
        DSAParams(ratio_rotate=-15.0)
    with pytest.raises(ValueError, match="DSA prob_flip 1.5 is invalid"):
        DSAParams(prob_flip=1.5)


# ------------------------------------------------------------------------------------------------
# Inputs are never modified
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("augment", [
    lambda x: color_jitter(x, 0.4, 0.4, 0.4, generator=gen(0)),
    lambda x: color_jitter(x, 0.4, 0.4, 0.4, generator=gen(0), reference="idc"),
    lambda x: lighting(x, 0.1, generator=gen(0)),
    lambda x: shuffle_patches(x, 2, generator=gen(0)),
    lambda x: shuffle_patches(x, 1, generator=gen(0)),
    lambda x: dsa(x, generator=gen(0)),
    lambda x: dsa_cutout(x, torch.zeros(6, dtype=torch.long), torch.zeros(6, dtype=torch.long), (4, 4)),
])
def test_new_augmentations_leave_input_untouched(augment):
    x = images()
    original = x.clone()
    out = augment(x)
    assert torch.equal(x, original)
    out.add_(1.0)   # the result never aliases the input, even for identity settings
    assert torch.equal(x, original)


# ------------------------------------------------------------------------------------------------
# RandAugment (IMS3's evaluation)
# ------------------------------------------------------------------------------------------------

def test_rand_augment_is_seeded_by_the_generator_alone_and_leaves_the_global_rng():
    x = torch.rand(6, 3, 16, 16, generator=gen(0))
    state = torch.get_rng_state()
    first = rand_augment(x, 1, 6, generator=gen(3))
    assert torch.equal(torch.get_rng_state(), state)          # the global stream is untouched
    torch.manual_seed(123)                                    # and does not matter
    assert torch.equal(rand_augment(x, 1, 6, generator=gen(3)), first)
    assert not torch.equal(rand_augment(x, 1, 6, generator=gen(4)), first)
    assert first.shape == x.shape and 0 <= first.min() and first.max() <= 1


def test_rand_augment_picks_an_op_per_image_and_zero_ops_is_identity():
    x = torch.rand(1, 3, 16, 16, generator=gen(1)).expand(32, -1, -1, -1)
    out = rand_augment(x, 2, 9, generator=gen(5))
    assert len({tuple(image.flatten()[:40].tolist()) for image in out}) > 4   # the same image, different ops
    assert torch.equal(rand_augment(x, 0, 9, generator=gen(5)), x)
    with pytest.raises(ValueError, match=r"rand_augment \(1, 31\) is invalid"):
        rand_augment(x, 1, 31, generator=gen(5))


def test_protocol_randaugment_runs_after_flip_and_before_colour():
    """hard_label with randaugment [1, 6] draws one more value from the batch's stream than without."""
    from evaluation.protocols.protocols import reference_protocols
    from evaluation.protocols.training import augment_batch

    base = {**reference_protocols()["hard_label"], "cutmix_prob": 0.0}
    x, labels = torch.rand(4, 3, 16, 16, generator=gen(2)), torch.arange(4)
    plain, _, _, _ = augment_batch(x, labels, base, generator=gen(7))
    again, _, _, _ = augment_batch(x, labels, {**base, "randaugment": None}, generator=gen(7))
    augmented, _, _, _ = augment_batch(x, labels, {**base, "randaugment": [1, 6]}, generator=gen(7))
    assert torch.equal(plain, again) and not torch.equal(plain, augmented)
    assert reference_protocols()["hard_label"]["randaugment"] is None
