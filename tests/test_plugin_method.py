"""A method added as one file outside methods/ (config ``method_modules``): its parameter dataclass
becomes its schema block (defaults filled, bounds refused in one line), and the workflow distils,
evaluates and tabulates it like a built-in method."""
from __future__ import annotations

import json

import pytest
import yaml

import methods.registry as registry
from evaluation.config.validate import ConfigError, validate_config
from tests.workflow_run import snakemake

TOY_METHOD = '''
"""``toy``: one uniform grey image per sample (a method written outside methods/)."""
from dataclasses import dataclass

import torch

from methods.params import param
from methods.registry import DistillContext, SyntheticSet, register_method


@dataclass(frozen=True)
class ToyParams:
    level: int = param(128, minimum=0, maximum=255)  # grey level of every pixel


@register_method("toy", needs_backbone=False, params=ToyParams)
def distill(ctx: DistillContext) -> SyntheticSet:
    size = ctx.data["digits_image_size"]
    labels = torch.tensor(ctx.classes).repeat_interleave(ctx.ipc)
    return SyntheticSet(torch.full((len(labels), 3, size, size), ctx.params.level, dtype=torch.uint8), labels)
'''


@pytest.fixture
def toy_module(tmp_path, monkeypatch):
    """The toy method's file; the registry it joins is restored after the test."""
    monkeypatch.setattr(registry, "METHODS", dict(registry.METHODS))
    monkeypatch.setattr(registry, "LOADED_MODULES", dict(registry.LOADED_MODULES))
    path = tmp_path / "toy_method.py"
    path.write_text(TOY_METHOD)
    return path


def toy_config(path, **params) -> dict:
    return {"profile": "plugin", "datasets": ["digits"], "ipcs": [1], "method_modules": [str(path)],
            "methods": {"toy": {"method": "toy", "params": params}}}


def test_a_method_file_joins_the_schema(toy_module):
    config = validate_config(toy_config(toy_module))
    assert config["methods"]["toy"]["params"] == {"level": 128}
    assert registry.method_names()[-1] == "toy"


@pytest.mark.parametrize("params, message", [
    ({"level": 300}, r"methods\.toy\.params\.level: 300 is greater than the maximum of 255"),
    ({"colour": 1}, r"'colour' was unexpected"),
])
def test_a_bad_toy_parameter_is_refused_in_one_line(toy_module, params, message):
    with pytest.raises(ConfigError, match=message) as err:
        validate_config(toy_config(toy_module, **params))
    assert "\n" not in str(err.value)


def test_a_missing_method_file_is_refused_in_one_line(tmp_path):
    with pytest.raises(ValueError, match=r"method_modules: '.*nope\.py' is not a Python file") as err:
        validate_config(toy_config(tmp_path / "nope.py"))
    assert "\n" not in str(err.value)


def test_the_workflow_distils_and_tabulates_a_method_file(toy_module, tmp_path):
    profile = {
        **toy_config(toy_module, level=200), "seeds": [0],
        "methods": {"random": {"method": "random"}, "toy": {"method": "toy", "params": {"level": 200}}},
        "backbone": {"check": False},
        "evaluation": {"protocols": ["hard_label"], "repeats": 1,
                       "networks": {"convnet-2": {"arch": "convnet", "depth": 2, "width": 16}}},
        "protocols": {"hard_label": {"epoch_scale": 0.002, "num_evals": 1}},
        "metrics": {"enabled": False},
        "teacher": {"network": {"arch": "convnet", "depth": 2, "width": 16}, "epochs": 1},
    }
    configfile = tmp_path / "plugin.yaml"
    configfile.write_text(yaml.safe_dump(profile))
    proc = snakemake(tmp_path / "work", "--cores", "2", "--configfile", str(configfile))
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = tmp_path / "work" / "results" / "plugin"
    manifest = json.loads((results / "synsets" / "digits" / "toy" / "ipc1" / "seed0" / "manifest.json").read_text())
    assert manifest["config"]["params"] == {"level": 200}
    accuracy = (results / "tables" / "accuracy.md").read_text()
    assert "| toy" in accuracy and "| random" in accuracy
