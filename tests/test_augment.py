"""Tests for evaluation.augment: crop geometry, flip, CutMix bookkeeping, normalisation, seeding."""
from __future__ import annotations

import pytest
import torch

from evaluation.augment import (cutmix, normalize, random_horizontal_flip, random_resized_crop,
                                sample_crop_boxes)


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
