"""`smoke: true` (evaluation/config/smoke.py): what it shrinks, what it keeps, and the step windows it rescales."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from evaluation.data.datasets import dataset_info
from evaluation.config.smoke import rescale_step, rescale_window, smoke_settings
from evaluation.config.validate import ConfigError, load_schema, prepare_config, validate_config
from methods.diffusion.semantic import respaced_timesteps
from methods.registry import METHODS
from tests.fake_imagenet import make_fake_imagenet

ROOT = Path(__file__).resolve().parent.parent
PAPER = sorted((ROOT / "config" / "paper").glob("*.yaml"))


def paper_config(name: str, root: Path) -> dict:
    config = yaml.safe_load((ROOT / "config" / "paper" / f"{name}.yaml").read_text())
    return {**config, "imagenet_root": str(root), "smoke": True}


@pytest.fixture(scope="module")
def woof_root(tmp_path_factory):
    return make_fake_imagenet(tmp_path_factory.mktemp("imagenet"), ["imagenet_woof"], train_per_class=2,
                              val_per_class=1, size=8)


def test_rescale_keeps_sentinels_and_non_empty_windows():
    assert rescale_step(-1, 50, 10) == -1
    assert rescale_step(50, 50, 10) == 10          # "at or past the first step" stays past it
    assert rescale_window([25, 45], 50, 10) == [5, 9]
    for lo in range(50):
        for hi in range(lo, 50):
            new_lo, new_hi = rescale_window([lo, hi], 50, 10)
            assert 0 <= new_lo <= new_hi <= 9


def test_woof_smoke_keeps_the_profile_and_shrinks_the_work(woof_root):
    full = validate_config(copy.deepcopy({**paper_config("woof", woof_root), "smoke": False}))
    config = paper_config("woof", woof_root)
    reductions = prepare_config(config)
    assert config["profile"] == "woof-smoke" and config["ipcs"] == [1] and config["seeds"] == [0]
    assert config["evaluation"]["repeats"] == 1 and config["sampler"]["steps"] == 10
    for key in ("datasets", "backbone", "methods"):
        assert config[key].keys() == full[key].keys() if isinstance(config[key], dict) else config[key] == full[key]
    assert config["backbone"]["source"] == full["backbone"]["source"]
    assert config["evaluation"]["networks"] == full["evaluation"]["networks"]
    assert config["evaluation"]["protocols"] == full["evaluation"]["protocols"]
    assert config["protocols"]["hard_label"]["image_size"] == 224      # the protocol's size is kept
    assert config["protocols"]["hard_label"]["epochs"] == smoke_settings()["protocol"]["epochs"]
    dmgd = config["methods"]["dmgd"]["params"]
    assert dmgd["guidance_window"] == [6, 9] and dmgd["semantic_window"] == [5, 9]
    assert dmgd["rho"] == full["methods"]["dmgd"]["params"]["rho"]    # method settings are kept
    assert config["methods"]["mgd3"]["params"]["t_stop"] == 5
    assert 'profile: "woof" -> "woof-smoke"' in reductions
    assert any(line.startswith("methods.dmgd.params.guidance_window (step indices of 50 -> 10 steps)")
               for line in reductions)


def test_smoke_windows_still_act_in_every_ablation(woof_root):
    """Table 7/8's windows, rescaled to the smoke steps, pass the config check that refuses windows no
    step falls in, and keep their meaning: full-stage stays full, "no exploration" stays none."""
    config = paper_config("ablations", woof_root)
    prepare_config(config)
    steps = config["sampler"]["steps"]
    methods = config["methods"]
    assert methods["t7-full-stage-guidance"]["params"]["guidance_window"] == [0, steps - 1]
    assert methods["t7-with-refinement"]["params"]["semantic_window"][1] >= steps
    assert methods["t7-dynamic-soft-label"]["params"]["semantic_window"][0] == -1
    assert len(respaced_timesteps(steps)) == steps


@pytest.mark.parametrize("profile", [p.stem for p in PAPER])
def test_every_paper_profile_has_a_valid_smoke_config(profile, tmp_path):
    """The smoke reductions of every shipped profile pass the schema and the config checks; the
    ImageNet root only needs the profile's class folders, so a 1K profile is checked over a 1K tree."""
    from tests.fake_imagenet import make_fake_imagenet_1k
    raw = yaml.safe_load((ROOT / "config" / "paper" / f"{profile}.yaml").read_text())
    subsets = [name for name in raw["datasets"] if name != "imagenet_1k"]
    if "imagenet_1k" in raw["datasets"]:   # 1K's 1000 folders: fake wnids, then the real ones of the subsets beside it
        fake = 1000 - sum(dataset_info(name).num_classes for name in subsets)
        root = make_fake_imagenet(make_fake_imagenet_1k(tmp_path / "1k", count=fake, size=8), subsets,
                                  train_per_class=1, val_per_class=1, size=8) if subsets else \
            make_fake_imagenet_1k(tmp_path / "1k", size=8)
    else:
        root = make_fake_imagenet(tmp_path / "sub", raw["datasets"], train_per_class=2, val_per_class=1, size=8)
    config = paper_config(profile, root)
    reductions = prepare_config(config)
    assert config["profile"].endswith("-smoke") and reductions
    assert set(config["ipcs"]) == {1} and config["evaluation"]["repeats"] == 1


def test_smoke_caps_name_real_keys():
    """Every cap of evaluation/config/smoke.yaml names a key of the schema (a renamed key would
    otherwise add an unknown one) or a parameter of a registered method."""
    schema, caps = load_schema()["properties"], smoke_settings()
    assert set(caps["metrics"]) <= set(schema["metrics"]["properties"])
    assert set(caps["backbone_train"]) <= set(schema["backbone"]["properties"]["train"]["properties"])
    assert set(caps["protocol"]) <= set(load_schema()["$defs"]["protocol"]["properties"])
    methods = schema["methods"]["additionalProperties"]["allOf"]
    for method, params in caps["method_params"].items():
        assert method in METHODS
        block = next(b for b in methods if b["if"]["properties"]["method"]["const"] == method)
        assert set(params) <= set(block["then"]["properties"]["params"]["properties"])


def test_without_smoke_nothing_changes(woof_root):
    config = {**paper_config("woof", woof_root), "smoke": False}
    assert prepare_config(config) == [] and config["profile"] == "woof"


def test_smoke_from_the_command_line_string(woof_root):
    config = {**paper_config("woof", woof_root), "smoke": "true"}
    assert prepare_config(config) and config["profile"] == "woof-smoke"


def test_a_second_configfile_removes_entries_with_null(woof_root):
    config = paper_config("woof", woof_root)
    config["methods"]["d4m"] = None
    config["evaluation"]["networks"]["resnet-18"] = None
    validate_config(config)
    assert "d4m" not in config["methods"] and "resnet-18" not in config["evaluation"]["networks"]
    config = paper_config("woof", woof_root)
    config["methods"] = {name: None for name in config["methods"]}
    with pytest.raises(ConfigError, match="methods"):
        validate_config(config)


def test_a_second_configfile_removes_a_variant_and_a_network_from_the_dag(tmp_path):
    """Snakemake deep-merges a second --configfile, so null is the way it removes an entry."""
    from tests.workflow_run import TEST_PROFILE, snakemake
    base = yaml.safe_load(TEST_PROFILE.read_text())
    network = next(iter(base["evaluation"]["networks"]))
    overlay = tmp_path / "quick.yaml"
    overlay.write_text(yaml.safe_dump({"methods": {"d4m": None},
                                       "evaluation": {"networks": {network: None, "convnet-quick": {"arch": "convnet", "depth": 1, "width": 8}}}}))
    proc = snakemake(tmp_path / "work", "-n", "--configfile", str(TEST_PROFILE), str(overlay))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "/d4m/" not in proc.stdout and f"-{network}-rep" not in proc.stdout
    assert "-convnet-quick-rep" in proc.stdout
