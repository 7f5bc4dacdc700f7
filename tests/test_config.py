"""The config schema: profiles validate, enums match the registries, bad values fail in one line."""
from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from evaluation.config.schema import SCHEMA_FILE
from evaluation.config.validate import ConfigError, load_schema, schema_error, validate_config
from evaluation.data.datasets import DATASETS
from evaluation.metrics.extractors import EXTRACTORS
from evaluation.protocols.networks import list_networks
from evaluation.protocols.protocols import reference_protocols
from methods.registry import list_methods

ROOT = Path(__file__).resolve().parent.parent
PROFILES = sorted((ROOT / "config").glob("**/*.yaml"))


def default_config() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_profile_satisfies_the_schema(path):
    assert schema_error(yaml.safe_load(path.read_text())) is None


def test_schema_enums_are_generated_from_the_registries():
    """The YAML names the registry where a value must be one of its names; the schema the validator
    uses holds their names, and each method's params block is its dataclass's."""
    raw = SCHEMA_FILE.read_text()
    assert "registry: methods" in raw and "const: random" not in raw and "enum: [alexnet" not in raw
    assert "registry: extractors" in raw and "enum: [inception" not in raw
    schema = load_schema()
    props = schema["properties"]
    method_enum = props["methods"]["additionalProperties"]["properties"]["method"]["enum"]
    arch_enum = schema["$defs"]["network"]["properties"]["arch"]["enum"]
    base_enum = schema["$defs"]["protocol"]["properties"]["base"]["enum"]
    assert base_enum == list(reference_protocols())
    assert sorted(method_enum) == list_methods()
    assert sorted(arch_enum) == sorted(list_networks())
    assert props["datasets"]["items"]["enum"] == list(DATASETS)
    for key in ("fid_extractor", "feature_extractor"):
        assert props["metrics"]["properties"][key]["enum"] == list(EXTRACTORS)
    blocks = props["methods"]["additionalProperties"]["allOf"]
    assert [block["if"]["properties"]["method"]["const"] for block in blocks] == method_enum
    params = {block["if"]["properties"]["method"]["const"]: block["then"]["properties"]["params"] for block in blocks}
    assert params["mgd3"]["properties"]["strength"] == {
        "type": "number", "minimum": 0, "default": 0.1, "description": "Mode-guidance scale lambda (MGD3 reference: 0.1)."}
    assert params["dmgd"]["properties"]["guidance_window"]["items"] == {"type": "integer", "minimum": 0}
    assert params["external"]["required"] == ["path"] and params["dit"]["properties"] == {}


def test_schema_imports_no_feature_network_library():
    """The DAG's start-up imports the schema and so the extractor registry; torchvision and
    clean-fid (seconds) wait until an extractor is created."""
    probe = "import sys, evaluation.config.schema; print(sorted({'torchvision', 'cleanfid'} & set(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    assert proc.stdout.strip() == "[]"


def test_defaults_are_filled_in():
    config = validate_config(default_config())
    assert config["sampler"]["steps"] == 50 and config["sampler"]["cfg_channels"] is None
    assert config["protocols"]["hard_label"]["lr"] == 0.01
    assert config["protocols"]["hard_label"]["epoch_scale"] == 0.04          # the profile's override
    assert config["protocols"]["soft_label"]["temperature"] == 20.0          # the reference value
    assert config["metrics"]["nearest_k"] == 5


def test_protocol_variant_runs_beside_its_base():
    config = default_config()
    config["evaluation"]["protocols"] = ["hard_label", "hard_label_adamw"]
    config["protocols"]["hard_label_adamw"] = {"base": "hard_label", "optimizer": "adamw", "lr": 0.001,
                                               "weight_decay": 0.01}
    protocols = validate_config(config)["protocols"]
    assert protocols["hard_label_adamw"]["optimizer"] == "adamw" and protocols["hard_label"]["optimizer"] == "sgd"
    assert protocols["hard_label_adamw"]["epoch_scale"] == 1.0   # the variant starts from the reference
    assert config["methods"]["dit"]["params"] == {}
    assert config["backbone"]["train"]["ema_decay"] == 0.995


def test_docs_document_every_top_level_key():
    page = (ROOT / "docs" / "configuration.md").read_text()
    missing = [k for k in load_schema()["properties"] if f"`{k}`" not in page]
    assert not missing, f"docs/configuration.md lacks {missing}"


BAD = {
    "unknown method": (lambda c: c["methods"].update(x={"method": "foo"}), r"methods\.x\.method: 'foo' is not one of \['random', 'dit', 'dmgd', 'mgd3', 'd4m', 'minimax', 'ims3', 'ims3-imonly', 'ims3-s3only', 'external', 'lgm', 'sfm'\]"),
    "unknown dataset": (lambda c: c.update(datasets=["cifar"]), r"'cifar' is not one of \['digits'"),
    "ipc zero": (lambda c: c.update(ipcs=[0]), r"ipcs\.0: 0 is less than the minimum of 1"),
    "negative ipc": (lambda c: c.update(ipcs=[-3]), r"ipcs\.0: -3 is less than the minimum"),
    "wrong type": (lambda c: c["sampler"].update(steps="fifty"), r"sampler\.steps: 'fifty' is not of type 'integer'"),
    "unknown protocol": (lambda c: c["evaluation"].update(protocols=["soft"]),
                         r"evaluation\.protocols: unknown protocol 'soft'; valid: classifier_inheritance, glad, hard_label, linear_probe, soft_label"),
    "variant of an unknown base": (lambda c: c["protocols"].update(mine={"base": "idc"}),
                                   r"protocols\.mine\.base: 'idc' is not one of \['hard_label', 'soft_label', 'glad', 'linear_probe', 'classifier_inheritance'\]"),
    "protocol key of the wrong type": (lambda c: c["protocols"].update(glad={"ema_decay": "yes"}),
                                       r"protocols\.glad\.ema_decay: 'yes' is not of type 'number', 'null'"),
    "unknown protocol key": (lambda c: c["protocols"].update(glad={"warmup": 5}), r"'warmup' was unexpected"),
    "lr for an unknown arch": (lambda c: c["protocols"].update(glad={"lr_by_arch": {"vgg16": 0.1}}),
                               r"protocols\.glad\.lr_by_arch: unknown arch 'vgg16'"),
    "pretrained teacher on digits": (lambda c: c.update(teacher={"source": "torchvision", "network": {
        "arch": "resnet", "depth": 18, "norm": "batch"}}), r"teacher\.source torchvision knows ImageNet classes only"),
    "pretrained teacher of another arch": (lambda c: c.update(teacher={"source": "torchvision"}),
                                           r"teacher\.source torchvision needs teacher\.network \{arch: resnet"),
    "unknown extractor": (lambda c: c["metrics"].update(fid_extractor="clip"),
                          r"metrics\.fid_extractor: 'clip' is not one of \['inception', 'vgg16_fc7', 'teacher'\]"),
    "unknown network": (lambda c: c["evaluation"].update(networks={"v": {"arch": "vgg16"}}), r"'vgg16' is not one of"),
    "unknown method parameter": (lambda c: c["methods"]["random"].update(params={"k": 1}), r"'k' was unexpected"),
    "negative mode guidance": (lambda c: c["methods"].update(m={"method": "mgd3", "params": {"strength": -0.1}}),
                               r"methods\.m\.params\.strength: -0\.1 is less than the minimum of 0"),
    "unknown top-level key": (lambda c: c.update(bogus=1), r"'bogus' was unexpected"),
    # step-index windows are indices of the sampler's own schedule: lowering the steps must not turn a stage off
    "guidance window beyond the steps": (
        lambda c: (c["sampler"].update(steps=10), c.update(methods={"dmgd": {"method": "dmgd"}})),
        r"methods\.dmgd: guidance_window \[30, 45\] holds none of the step indices 9 … 0 of the sampler's 10 steps"),
    "semantic window beyond a variant's steps": (
        lambda c: c["methods"].update(d={"method": "dmgd", "sampler": {"steps": 10},
                                         "params": {"distribution_matching": False}}),
        r"methods\.d: semantic_window \[25, 45\] leaves every one of the sampler's 10 steps at the plain label"),
    "mode guidance stop beyond the steps": (
        lambda c: c["methods"].update(m={"method": "mgd3", "sampler": {"steps": 20}}),
        r"methods\.m: t_stop 25 is at or above the first step index 19 of the sampler's 20 steps"),
    "missing imagenet root": (lambda c: c.update(datasets=["imagenet_woof"], imagenet_root="/nonexistent"),
                                  r"ImageNet root /nonexistent does not exist"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_values_fail_in_one_line(case):
    mutate, pattern = BAD[case]
    config = copy.deepcopy(default_config())
    mutate(config)
    with pytest.raises(ValueError, match=pattern) as err:
        validate_config(config)
    assert "\n" not in str(err.value)


def test_backbone_trained_on_digits_refuses_other_classes(tmp_path):
    from tests.fake_imagenet import make_fake_imagenet
    root = make_fake_imagenet(tmp_path / "imagenet", ["imagenet_woof"])
    config = default_config()
    config.update(datasets=["imagenet_woof"], imagenet_root=str(root))
    with pytest.raises(ConfigError, match="needs a backbone with its classes"):
        validate_config(config)


def test_snakemake_refuses_bad_config_before_any_job(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path / "work"),
         "--configfile", str(ROOT / "config" / "config.yaml"), "--cores", "1",
         "--config", 'methods={"x": {"method": "foo"}}'],
        capture_output=True, text=True, env=env)
    assert proc.returncode != 0
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert lines[-1].startswith("config error: methods.x.method: 'foo' is not one of ['random', 'dit', 'dmgd', 'mgd3', 'd4m', 'minimax', 'ims3', 'ims3-imonly', 'ims3-s3only', 'external', 'lgm', 'sfm']")
    assert not (tmp_path / "work" / "results").exists()


def test_windows_scaled_to_the_steps_or_switched_off_on_purpose_are_accepted():
    config = default_config()
    config["sampler"]["steps"] = 10
    config["methods"] = {
        "dmgd": {"method": "dmgd", "params": {"semantic_window": [5, 9], "guidance_window": [6, 9]}},
        "dmgd-no-guidance": {"method": "dmgd", "params": {"semantic_window": [5, 9], "guidance_window": [1, 0]}},
        "dmgd-plain": {"method": "dmgd", "params": {"rho": 0.0, "beta_n": 0.0, "beta_s": 0.0}},
        "mgd3": {"method": "mgd3", "params": {"t_stop": 5}}, "mgd3-off": {"method": "mgd3", "params": {"strength": 0.0}}}
    validate_config(config)


def test_defaults_are_copies_not_shared_between_variants():
    config = default_config()
    config["methods"] = {"r": {"method": "random"}, "d": {"method": "dit"}, "r2": {"method": "random"}}
    validate_config(config)
    assert config["methods"]["r"]["params"] == {"selection": "seeded"}
    assert config["methods"]["d"]["params"] == {}
    assert config["methods"]["r"]["params"] is not config["methods"]["r2"]["params"]
