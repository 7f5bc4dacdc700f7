"""A method added as one file outside methods/ (config ``method_modules``; tests/toy_method.py): its
parameter dataclass becomes its schema block (defaults filled, bounds refused in one line, a field's
step-window flag rescaled by smoke mode), and the workflow distils, evaluates and tabulates it like a
built-in method."""
from __future__ import annotations

import json

import pytest
import yaml

import methods.registry as registry
from evaluation.config.validate import ConfigError, prepare_config, validate_config
from tests.conftest import TOY_METHOD_FILE, plugin_registry
from tests.workflow_run import snakemake


@pytest.fixture
def toy_module():
    """The toy method's file (tests/toy_method.py), not yet loaded; the registry is put back after the test."""
    with plugin_registry():
        yield TOY_METHOD_FILE


def toy_config(path, **params) -> dict:
    return {"profile": "plugin", "datasets": ["digits"], "ipcs": [1], "method_modules": [str(path)],
            "methods": {"toy": {"method": "toy", "params": params}}}


def test_a_method_file_joins_the_schema(toy_module):
    assert "toy" not in registry.METHODS
    config = validate_config(toy_config(toy_module))
    assert config["methods"]["toy"]["params"] == {"level": 128, "mark_step": 25}
    assert registry.method_names()[-1] == "toy"


def test_smoke_mode_rescales_the_step_window_a_field_declares(toy_module):
    """The toy's ``mark_step = param(..., step_window=True)`` makes it a step window: smoke mode
    rescales it from the sampler's 50 steps to its 10 as it does DMGD's and MGD3's windows."""
    config = {**toy_config(toy_module, mark_step=45), "smoke": True}
    reductions = prepare_config(config)
    assert registry.get_method("toy").step_windows == ("mark_step",)
    assert config["methods"]["toy"]["params"] == {"level": 128, "mark_step": 9}
    assert "methods.toy.params.mark_step (step indices of 50 -> 10 steps): 45 -> 9" in reductions


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
    assert manifest["config"]["params"] == {"level": 200, "mark_step": 25}
    accuracy = (results / "tables" / "accuracy.md").read_text()
    assert "| toy" in accuracy and "| random" in accuracy
