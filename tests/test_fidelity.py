"""DMGD's fidelity fields: presets, overrides, errors, the schema's enums and the table of docs/methods.md."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from evaluation.config.schema import load_schema
from evaluation.core.errors import InputError
from methods.dmgd_fidelity import CHOICES, PRESETS, Fidelity, fidelity_table, resolve_fidelity

ROOT = Path(__file__).resolve().parents[1]


def test_presets_fill_every_field_with_a_valid_value():
    names = [f.name for f in fields(Fidelity)]
    assert list(CHOICES) == names
    for preset in PRESETS.values():
        assert set(preset) == set(names) and all(preset[n] in CHOICES[n] for n in names)


def test_one_field_overrides_its_preset():
    fid = resolve_fidelity({"preset": "official", "other_class": "per_step"})
    assert fid.other_class == "per_step"
    assert {n: getattr(fid, n) for n in CHOICES if n != "other_class"} == \
        {n: v for n, v in PRESETS["official"].items() if n != "other_class"}
    assert resolve_fidelity({}) == resolve_fidelity({"preset": "official"})


@pytest.mark.parametrize("spec, match", [({"preset": "code"}, "preset 'code' is unknown"),
                                         ({"sinkhorn_order": "diagonal"}, "sinkhorn_order: 'diagonal' is not valid"),
                                         ({"typo": "x"}, "typo: 'x' is not valid")])
def test_bad_fields_are_one_line_errors(spec, match):
    with pytest.raises(InputError, match=match):
        resolve_fidelity(spec)


def test_schema_enums_are_the_fields_choices():
    schema = load_schema()   # the YAML completed from the registries (DmgdParams.fidelity)
    dmgd = next(rule["then"] for rule in schema["properties"]["methods"]["additionalProperties"]["allOf"]
                if rule["if"]["properties"]["method"]["const"] == "dmgd")
    block = dmgd["properties"]["params"]["properties"]["fidelity"]
    assert block["properties"]["preset"]["enum"] == list(PRESETS)
    for name, choices in CHOICES.items():
        assert block["properties"][name]["enum"] == list(choices), name
        assert "default" not in block["properties"][name]   # a default would override the preset


def test_docs_table_is_generated_from_the_fields():
    readme = (ROOT / "docs" / "methods.md").read_text()
    table = readme.split("<!-- fidelity-table:start -->\n")[1].split("<!-- fidelity-table:end -->")[0]
    assert table == fidelity_table()
