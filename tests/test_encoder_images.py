"""LGM/SFM image parametrisation (methods/encoder/images.py): pyramid, colour decorrelation, sigmoid."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from methods.encoder.images import (
    COLOR_CORRELATION_SQRT,
    color_decorrelation_matrix,
    decorrelate,
    extend_pyramid,
    init_pyramid,
    levels_due,
    pyramid_optimizer,
    pyramid_resolutions,
    pyramid_sum,
    recorrelate,
    render,
    to_uint8,
)


def test_decorrelation_matrix_is_the_reference_divided_by_its_largest_column_norm():
    raw = np.array(COLOR_CORRELATION_SQRT)
    expected = raw / np.linalg.norm(raw, axis=0).max()
    np.testing.assert_allclose(color_decorrelation_matrix(torch.float64).numpy(), expected)
    assert np.linalg.norm(expected, axis=0).max() == pytest.approx(1.0)


def test_decorrelate_applies_the_matrix_per_pixel_and_recorrelate_inverts_it():
    gen = torch.Generator().manual_seed(0)
    params = torch.randn(2, 3, 4, 5, generator=gen, dtype=torch.float64)
    matrix = color_decorrelation_matrix(torch.float64).numpy()
    pixels = params.permute(0, 2, 3, 1).numpy()                      # (..., 3) colour vectors
    expected = (pixels @ matrix.T).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(decorrelate(params).numpy(), expected, atol=1e-12)
    torch.testing.assert_close(recorrelate(decorrelate(params)), params)
    torch.testing.assert_close(decorrelate(recorrelate(params)), params)


def test_pyramid_resolutions_double_up_to_the_final_resolution():
    assert pyramid_resolutions(1, 256) == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert pyramid_resolutions(256, 256) == [256]   # pixel mode
    with pytest.raises(ValueError):
        pyramid_resolutions(3, 256)


def test_levels_due_adds_one_level_every_extent_and_stops_at_the_top():
    assert [levels_due(i, 200, 9) for i in (0, 199, 200, 399, 400, 1600, 4999)] == [1, 1, 2, 2, 3, 9, 9]


def test_extension_keeps_the_scale_rule_and_doubles_the_resolution():
    gen = torch.Generator().manual_seed(1)
    levels = init_pyramid(4, 1, gen)
    assert [tuple(t.shape) for t in levels] == [(4, 3, 1, 1)] and levels[0].requires_grad
    first = levels[0].detach().clone()
    levels = extend_pyramid(levels, gen)
    assert [t.shape[-1] for t in levels] == [1, 2]
    torch.testing.assert_close(levels[0].detach(), first / 2)           # old_len / new_len = 1/2
    levels = extend_pyramid(levels, gen)
    torch.testing.assert_close(levels[0].detach(), first / 3)           # (1/2)·(2/3)
    assert all(t.is_leaf and t.requires_grad for t in levels)
    new_draw = torch.Generator().manual_seed(99)
    replay = torch.Generator().manual_seed(99)
    newest = extend_pyramid(levels, new_draw)[-1].detach()
    torch.testing.assert_close(newest, torch.randn(4, 3, 8, 8, generator=replay) / 4)


def test_render_has_the_final_shape_lies_in_the_unit_interval_and_is_the_sigmoid_of_twice_the_sum():
    gen = torch.Generator().manual_seed(2)
    levels = init_pyramid(3, 1, gen)
    for _ in range(4):
        levels = extend_pyramid(levels, gen)
    images = render(levels, 16)
    assert images.shape == (3, 3, 16, 16)
    assert ((images > 0) & (images < 1)).all()
    torch.testing.assert_close(images, torch.sigmoid(2 * decorrelate(pyramid_sum(levels, 16))))
    constant = pyramid_sum(levels[:1], 16)                              # a 1×1 level upsamples to a constant
    torch.testing.assert_close(constant, levels[0].detach().expand(3, 3, 16, 16))
    assert to_uint8(images).dtype == torch.uint8


def test_gradient_reaches_every_level_and_the_optimiser_has_one_group_per_level():
    gen = torch.Generator().manual_seed(3)
    levels = extend_pyramid(init_pyramid(2, 2, gen), gen)
    render(levels, 8).square().sum().backward()
    assert all(level.grad is not None and level.grad.abs().sum() > 0 for level in levels)
    optimizer = pyramid_optimizer(levels, lr=2e-3)
    assert len(optimizer.param_groups) == 2 and optimizer.param_groups[0]["lr"] == 2e-3
