"""The parameter dataclasses of lgm and sfm generate a documented schema with the reference defaults."""
from __future__ import annotations

from dataclasses import fields

import pytest

from methods.encoder.params import LgmParams, SfmParams
from methods.params import params_schema


@pytest.mark.parametrize("cls", [LgmParams, SfmParams])
def test_every_field_has_a_default_and_a_description(cls):
    schema = params_schema(cls)
    assert "required" not in schema
    assert set(schema["properties"]) == {f.name for f in fields(cls)}
    assert all(prop["description"] for prop in schema["properties"].values())


def test_defaults_are_the_reference_values():
    lgm, sfm = LgmParams(), SfmParams()
    assert (lgm.iterations, lgm.lr, lgm.augs_per_batch, lgm.head_std) == (5000, 2e-3, 10, 0.01)
    assert (lgm.pyramid_start_resolution, lgm.pyramid_extent_iterations) == (1, 200)
    assert (lgm.synthetic_resolution, lgm.crop_resolution) == (256, 224)
    assert (sfm.augs_per_batch, sfm.loss, sfm.alpha, sfm.official_denominator) == (1, "sfm", 1.0, True)
