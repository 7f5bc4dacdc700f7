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
    init_pixels,
    init_pyramid,
    initial_levels,
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


def test_pyramid_resolutions_double_up_to_the_final_resolution_clamping_the_last():
    assert pyramid_resolutions(256) == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert pyramid_resolutions(28) == [1, 2, 4, 8, 16, 28]
    assert pyramid_resolutions(1) == [1]


def test_initial_levels_cover_the_resolutions_up_to_the_start():
    assert initial_levels(1, 256) == 1
    assert initial_levels(4, 256) == 3
    assert initial_levels(256, 256) == 9


def test_levels_due_follow_the_official_upkeep_steps():
    """One level more before the steps 201, 401, …; eight extensions reach 256 px at step 1601."""
    steps = (0, 1, 200, 201, 400, 401, 1600, 1601, 5000)
    assert [levels_due(step, 200, 1, 9) for step in steps] == [1, 1, 1, 2, 2, 3, 8, 9, 9]
    assert levels_due(201, 200, 3, 9) == 4


def test_init_draws_every_starting_level_divided_by_their_number():
    levels = init_pyramid(4, 2, 256, torch.Generator().manual_seed(1))
    replay = torch.Generator().manual_seed(1)
    expected = [torch.randn(4, 3, 1, 1, generator=replay) / 2, torch.randn(4, 3, 2, 2, generator=replay) / 2]
    for level, want in zip(levels, expected, strict=True):
        torch.testing.assert_close(level.detach(), want)
        assert level.is_leaf and level.requires_grad
    pixels = init_pixels(2, 16, torch.Generator().manual_seed(2))
    assert [tuple(t.shape) for t in pixels] == [(2, 3, 16, 16)]


def test_extension_keeps_the_scale_rule_and_doubles_the_resolution_up_to_the_final_one():
    gen = torch.Generator().manual_seed(1)
    levels = init_pyramid(4, 1, 8, gen)
    assert [tuple(t.shape) for t in levels] == [(4, 3, 1, 1)]
    first = levels[0].detach().clone()
    levels = extend_pyramid(levels, 8, gen)
    assert [t.shape[-1] for t in levels] == [1, 2]
    torch.testing.assert_close(levels[0].detach(), first / 2)           # old_len / new_len = 1/2
    levels = extend_pyramid(levels, 8, gen)
    torch.testing.assert_close(levels[0].detach(), first / 3)           # (1/2)·(2/3)
    assert all(t.is_leaf and t.requires_grad for t in levels)
    replay_state = gen.get_state()
    levels = extend_pyramid(levels, 8, gen)
    replay = torch.Generator().set_state(replay_state)
    torch.testing.assert_close(levels[-1].detach(), torch.randn(4, 3, 8, 8, generator=replay) / 4)
    with pytest.raises(ValueError, match="already reaches"):
        extend_pyramid(levels, 8, gen)
    clamped = extend_pyramid(init_pyramid(1, 8, 12, gen), 12, gen)
    assert [t.shape[-1] for t in clamped] == [1, 2, 4, 8, 12]


def test_render_has_the_final_shape_lies_in_the_unit_interval_and_is_the_sigmoid_of_twice_the_sum():
    gen = torch.Generator().manual_seed(2)
    levels = init_pyramid(3, 1, 16, gen)
    for _ in range(4):
        levels = extend_pyramid(levels, 16, gen)
    images = render(levels, 16)
    assert images.shape == (3, 3, 16, 16)
    assert ((images > 0) & (images < 1)).all()
    torch.testing.assert_close(images, torch.sigmoid(2 * decorrelate(pyramid_sum(levels, 16))))
    torch.testing.assert_close(render(levels, 16, decorrelate_color=False), torch.sigmoid(2 * pyramid_sum(levels, 16)))
    constant = pyramid_sum(levels[:1], 16)                              # a 1×1 level upsamples to a constant
    torch.testing.assert_close(constant, levels[0].detach().expand(3, 3, 16, 16))
    assert to_uint8(images).dtype == torch.uint8


def test_gradient_reaches_every_level_and_the_optimiser_has_one_group_per_level():
    gen = torch.Generator().manual_seed(3)
    levels = extend_pyramid(init_pyramid(2, 2, 8, gen), 8, gen)
    render(levels, 8).square().sum().backward()
    assert all(level.grad is not None and level.grad.abs().sum() > 0 for level in levels)
    optimizer = pyramid_optimizer(levels, lr=2e-3)
    assert len(optimizer.param_groups) == 3 and optimizer.param_groups[0]["lr"] == 2e-3
