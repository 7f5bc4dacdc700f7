"""IMS3's parameter dataclasses (methods/ims3.py): the reference's defaults, every field documented in the
generated schema, inherited fields included (methods/params.py field_comments walks the dataclass bases)."""
from __future__ import annotations

from dataclasses import dataclass, fields

import pytest

from methods.encoder.encoders import encoder_names
from methods.ims3 import Ims3Params, InversionMatchingParams, SubgroupSelectionParams
from methods.minimax import MinimaxParams
from methods.params import field_comments, param, params_schema


@dataclass(frozen=True)
class Base:
    kept: int = param(1)        # Base's comment.
    redeclared: int = param(2)  # Base's comment, replaced.


@dataclass(frozen=True)
class Derived(Base):
    redeclared: int = param(3)  # Derived's comment.
    added: int = param(4)       # Added in Derived.


def test_field_comments_walk_the_dataclass_bases():
    assert field_comments(Derived) == {"kept": "Base's comment.", "redeclared": "Derived's comment.",
                                       "added": "Added in Derived."}
    assert params_schema(Derived)["properties"]["redeclared"]["default"] == 3


@pytest.mark.parametrize("cls", [Ims3Params, InversionMatchingParams, SubgroupSelectionParams])
def test_every_field_is_documented_in_the_schema(cls):
    properties = params_schema(cls)["properties"]
    assert list(properties) == [f.name for f in fields(cls)]
    assert all(p["description"] for p in properties.values())


def test_ims3_has_both_stages_with_the_official_run_sh_settings():
    stages = {f.name for f in fields(InversionMatchingParams)} | {f.name for f in fields(SubgroupSelectionParams)}
    assert {f.name for f in fields(Ims3Params)} == stages
    ims3 = Ims3Params()
    assert (ims3.steps, ims3.lambda_match, ims3.pairing) == (8000, 0.002, "all_pairs")
    assert (ims3.lambda_pos, ims3.lambda_neg, ims3.batch_size, ims3.lr) == (0.002, 0.008, 8, 0.001)
    assert (ims3.groups, ims3.alpha, ims3.beta, ims3.eps, ims3.max_sweeps, ims3.real_per_class) == \
        (5, 0.4, 0.9, 0.0, 5, 200)
    assert isinstance(ims3, MinimaxParams)   # minimax_finetune's loop reads its fine-tuning fields


def test_schema_bounds_the_pairing_and_the_extractor():
    properties = params_schema(Ims3Params)["properties"]
    assert properties["pairing"]["enum"] == ["all_pairs", "per_sample"]
    assert properties["features"]["enum"] == encoder_names()   # the frozen encoders of methods/encoder/encoders.py
    assert {"resnet18", "teacher"} <= set(encoder_names())
