"""Hostile input (issue #15): names that would escape their folder, non-finite numbers, duplicate
YAML keys, damaged records and ``--cores 0``. The real commands (``snakemake`` and the entry
points) must end in one line, a non-zero exit, no traceback and nothing under ``results/``, as in
tests/test_hostile.py; the unit tests cover the many variants of each kind more cheaply.
"""
from __future__ import annotations

import copy
import json
import math
import re
import time
from pathlib import Path

import pytest
import torch
import yaml

from evaluation.config.validate import ConfigError, check_unique_keys, load_schema, non_finite_number, validate_config
from evaluation.core.artifacts import atomic_path, check_inside_parent
from evaluation.core.errors import InputError
from evaluation.report.build import read_backbone_check
from evaluation.report.quality_tables import BOUNDS, METRICS, load_metrics
from evaluation.report.reported import load_reference
from evaluation.report.tables import load_runs
from methods.diffusion.backbone import load_backbone
from methods.diffusion.randomness import seeded
from methods.diffusion.sampler import NonFiniteSampleError, Sampler
from tests.conftest import SAMPLER
from tests.test_hostile import SCHEMA_FIX, Case, check_outcome, job_case, run_selected, snakemake_case

ROOT = Path(__file__).resolve().parent.parent
PROFILES = sorted((ROOT / "config").glob("**/*.yaml"))
NAME = load_schema()["$defs"]["name"]["pattern"]
PROTOCOL_NAME = load_schema()["$defs"]["protocol_name"]["allOf"][1]["pattern"]
NAME_FIX = re.escape(f"does not match '{NAME}' ") + SCHEMA_FIX
LONG = "m" * 300
PARALLEL = 2


def default_config() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


# ----------------------------------------------------------------------------- names

def profile_names(config: dict) -> list[tuple[str, str]]:
    """(kind, name) of every config value of a profile that becomes a path component."""
    evaluation = config.get("evaluation") or {}
    backbone = config.get("backbone") or {}
    return ([("name", config["profile"]), ("name", backbone.get("name", "tiny")),
             ("name", (backbone.get("train") or {}).get("dataset", "digits"))]
            + [("name", name) for name in config["methods"]]
            + [("name", name) for name in evaluation.get("networks") or {}]
            + [("protocol", name) for name in [*(config.get("protocols") or {}), *evaluation.get("protocols", [])]])


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_name_is_a_valid_name(path):
    for kind, name in profile_names(yaml.safe_load(path.read_text())):
        assert re.fullmatch(NAME, name), name
        assert kind == "name" or re.fullmatch(PROTOCOL_NAME, name), name


BAD_NAMES = {
    "profile with a separator": (lambda c: c.update(profile="a/b"), r"profile: 'a/b' "),
    "profile dot-dot": (lambda c: c.update(profile=".."), r"profile: '\.\.' "),
    "profile dot": (lambda c: c.update(profile="."), r"profile: '\.' "),
    "hidden profile": (lambda c: c.update(profile=".hidden"), r"profile: '\.hidden' "),
    "empty profile": (lambda c: c.update(profile=""), r"profile: '' "),
    "backbone dot-dot": (lambda c: c.update(backbone={"name": ".."}), r"backbone\.name: '\.\.' "),
    "backbone absolute": (lambda c: c.update(backbone={"name": "/tmp"}), r"backbone\.name: '/tmp' "),
    "backbone training set dot-dot": (lambda c: c.update(backbone={"train": {"dataset": ".."}}),
                                      r"backbone\.train\.dataset: '\.\.' "),
    "method dot-dot": (lambda c: c["methods"].update({"..": {"method": "dit"}}), r"methods: '\.\.' "),
    "method of 300 characters": (lambda c: c["methods"].update({LONG: {"method": "dit"}}), rf"methods: '{LONG}' "),
    "method with a separator": (lambda c: c["methods"].update({"a/b": {"method": "dit"}}), r"methods: 'a/b' "),
    "method with a space": (lambda c: c["methods"].update({"a b": {"method": "dit"}}), r"methods: 'a b' "),
    "method starting with a dash": (lambda c: c["methods"].update({"-x": {"method": "dit"}}), r"methods: '-x' "),
    "network dot-dot": (lambda c: c["evaluation"].update(networks={"..": {"arch": "convnet"}}),
                        r"evaluation\.networks: '\.\.' "),
    "network with a separator": (lambda c: c["evaluation"].update(networks={"../x": {"arch": "convnet"}}),
                                 r"evaluation\.networks: '\.\./x' "),
    "protocol key dot-dot": (lambda c: c["protocols"].update({"..": {"base": "hard_label"}}), r"protocols: '\.\.' "),
    "protocol of 300 characters": (lambda c: c["evaluation"].update(protocols=["p" * 300]),
                                   r"evaluation\.protocols\.0: 'p{300}' "),
}


@pytest.mark.parametrize("case", BAD_NAMES, ids=list(BAD_NAMES))
def test_a_name_that_would_escape_its_folder_is_refused(case):
    mutate, pattern = BAD_NAMES[case]
    config = default_config()
    mutate(config)
    with pytest.raises(ConfigError, match=f"^{pattern}does not match") as err:
        validate_config(config)
    assert "\n" not in str(err.value) and str(err.value).endswith("(see workflow/schemas/config.schema.yaml)")


def test_a_protocol_name_with_a_dash_is_refused():
    """The protocol is the part of an evaluation record's name before the network."""
    config = default_config()
    config["protocols"]["hard-label"] = {"base": "hard_label"}
    with pytest.raises(ConfigError, match=r"^protocols: 'hard-label' does not match '\^\[A-Za-z0-9_\]\+\$'"):
        validate_config(config)


def test_names_of_64_characters_pass_and_of_65_fail():
    assert re.fullmatch(NAME, "a" * 64) and not re.fullmatch(NAME, "a" * 65)


def test_atomic_path_refuses_a_name_that_leaves_its_folder(tmp_path):
    profile = tmp_path / "results" / "p"
    (profile / "backbones").mkdir(parents=True)
    (profile / "eval.json").write_text("{}")
    for path in (profile / "backbones" / "..", Path(".")):
        with pytest.raises(InputError, match=r"^refusing to replace '.*': its name is empty, '\.' or '\.\.'; "):
            with atomic_path(path) as tmp:
                tmp.mkdir()
    assert (profile / "eval.json").exists()


def test_atomic_path_refuses_a_link_to_elsewhere(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep").write_text("x")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "set").symlink_to(elsewhere)
    with pytest.raises(InputError, match=r"resolves to \S+/elsewhere, not inside \S+/out; remove the link"):
        check_inside_parent(tmp_path / "out" / "set")
    (tmp_path / "out" / "same").symlink_to(tmp_path / "out" / "other")
    check_inside_parent(tmp_path / "out" / "same")   # a link within the folder stays inside it
    check_inside_parent(tmp_path / "out" / "new")
    assert (elsewhere / "keep").exists()


# ----------------------------------------------------------------------------- numbers

NON_FINITE = {
    "cfg_scale nan": (lambda c: c["sampler"].update(cfg_scale=math.nan), r"sampler\.cfg_scale: nan"),
    "cfg_scale inf": (lambda c: c["sampler"].update(cfg_scale=math.inf), r"sampler\.cfg_scale: inf"),
    "variant cfg_scale nan": (lambda c: c["methods"]["dit"].update(sampler={"cfg_scale": math.nan}),
                              r"methods\.dit\.sampler\.cfg_scale: nan"),
    "checkpoint interval inf": (lambda c: c.update(checkpoint_interval_s=math.inf), r"checkpoint_interval_s: inf"),
    "method parameter inf": (lambda c: c["methods"]["dmgd"].update(params={"rho": math.inf}),
                             r"methods\.dmgd\.params\.rho: inf"),
    "method parameter nan": (lambda c: c["methods"]["mgd3"].update(params={"strength": math.nan}),
                             r"methods\.mgd3\.params\.strength: nan"),
    "protocol momentum inf": (lambda c: c["protocols"]["hard_label"].update(momentum=math.inf),
                              r"protocols\.hard_label\.momentum: inf"),
    "nan in a protocol mean": (lambda c: c["protocols"]["hard_label"].update(mean=[0.5, math.nan, 0.5]),
                               r"protocols\.hard_label\.mean\.1: nan"),
    "nan in lr_by_arch": (lambda c: c["protocols"]["hard_label"].update(lr_by_arch={"vgg": math.nan}),
                          r"protocols\.hard_label\.lr_by_arch\.vgg: nan"),
    "backbone training lr nan": (lambda c: c.update(backbone={"train": {"vae_lr": math.nan}}),
                                 r"backbone\.train\.vae_lr: nan"),
    "recognisability nan": (lambda c: c.update(backbone={"min_recognisability": math.nan}),
                            r"backbone\.min_recognisability: nan"),
    "t-SNE perplexity inf": (lambda c: c["metrics"].update(tsne_perplexity=math.inf), r"metrics\.tsne_perplexity: inf"),
}


@pytest.mark.parametrize("case", NON_FINITE, ids=list(NON_FINITE))
def test_a_non_finite_number_is_refused_naming_its_key(case):
    mutate, pattern = NON_FINITE[case]
    config = copy.deepcopy(default_config())
    mutate(config)
    with pytest.raises(ConfigError, match=f"^{pattern} is not a finite number; give a finite value "
                       + SCHEMA_FIX) as err:
        validate_config(config)
    assert "\n" not in str(err.value)


def test_a_negative_infinity_below_a_bound_is_refused_by_the_schema():
    config = default_config()
    config["protocols"]["hard_label"]["lr"] = -math.inf
    with pytest.raises(ConfigError, match=r"^protocols\.hard_label\.lr: -inf is less than or equal to the minimum"):
        validate_config(config)


def test_the_finite_walk_passes_finite_values_and_other_types():
    assert non_finite_number({"a": [1, 2.5, {"b": "nan", "c": None, "d": True}], "e": 1e308}) is None
    assert non_finite_number({"a": [{"b": [0.0, -math.inf]}]}) == "a.0.b.1: -inf is not a finite number; " \
                                                                    "give a finite value"


def test_the_sampler_refuses_non_finite_guided_noise(tiny_backbone_dir):
    sampler = Sampler(load_backbone(str(tiny_backbone_dir)), steps=4, cfg_scale=1e308)
    with pytest.raises(NonFiniteSampleError, match=r"^non-finite guided noise of the backbone at step index 3 "
                       r"\(t=\d+\) for backbone class 2; lower sampler\.cfg_scale"):
        sampler.sample(torch.tensor([2, 5]), seeded([0, 1]))


def test_the_sampler_refuses_non_finite_samples_after_a_hook(tiny_backbone_dir):
    sampler = Sampler(load_backbone(str(tiny_backbone_dir)), steps=4, cfg_scale=4.0)

    def hook(state):
        return state.mean * math.inf if state.index == 1 else None
    with pytest.raises(NonFiniteSampleError, match=r"^non-finite samples at step index 1 \(t=\d+\) for backbone "
                       r"class 7; lower the method's guidance scale"):
        sampler.sample(torch.tensor([7, 5]), seeded([0, 1]), hooks=[hook])


def run_record(**overrides) -> dict:
    record = {"dataset": "digits", "method": "dit", "ipc": 1, "seed": 0, "protocol": "hard_label",
              "network": "convnet-3", "repeat": 0, "best_top1": 50.0, "last_top1": 40.0,
              "curve": [{"epoch": 1, "top1": 40.0, "val_top1": 45.0}]}
    return {**record, **overrides}


BAD_RUNS = {
    "top-1 of 1e9": (run_record(best_top1=1e9), r"best_top1 is 1000000000\.0, not a number in \[0, 100\]"),
    "negative last top-1": (run_record(last_top1=-1.0), r"last_top1 is -1\.0, not a number in \[0, 100\]"),
    "nan top-1": (run_record(best_top1=math.nan), r"best_top1 is nan, not a number in \[0, 100\]"),
    "validation top-1 inf": (run_record(val_selected_top1=math.inf), r"val_selected_top1 is inf, not a number in"),
    "nan in the curve": (run_record(curve=[{"epoch": 1, "top1": math.nan}]), r"curve\[0\]\.top1 is nan"),
    "text in the curve": (run_record(curve=[{"epoch": 1, "top1": 5, "val_top1": "high"}]),
                          r"curve\[0\]\.val_top1 is 'high'"),
}


@pytest.mark.parametrize("case", BAD_RUNS, ids=list(BAD_RUNS))
def test_a_run_record_out_of_range_is_refused(case, tmp_path):
    record, pattern = BAD_RUNS[case]
    path = tmp_path / "run.json"
    path.write_text(json.dumps(record))
    with pytest.raises(InputError, match=f"^{re.escape(str(path))}: {pattern}.*; delete the file and run snakemake "
                       r"again to re-make it \(rule evaluate\)$"):
        load_runs([path])


def metrics_record(metric: str, **entry) -> dict:
    return {"dataset": "digits", "method": "dit", "ipc": 1, "seed": 0, "reference_split": "train",
            "reference_count": 10, "count": 10, "extractors": {"fid": {"name": "t"}, "features": {"name": "t"}},
            "metrics": {metric: entry}}


BAD_METRICS = {
    "precision above 1": (metrics_record("precision", value=1.5), r"metrics\.precision\.value is 1\.5, not a number "
                          r"in \[0, 1\]"),
    "negative recall": (metrics_record("recall", value=-0.1), r"metrics\.recall\.value is -0\.1"),
    "coverage of 80 percent": (metrics_record("coverage", value=80.0), r"metrics\.coverage\.value is 80\.0"),
    "negative density": (metrics_record("density", value=-1.0), r"metrics\.density\.value is -1\.0, not a number in "
                         r"\[0, inf\]"),
    "negative FID": (metrics_record("fid", value=-3.0), r"metrics\.fid\.value is -3\.0"),
    "infinite FID": (metrics_record("fid", value=math.inf), r"metrics\.fid\.value is inf"),
    "nan KID": (metrics_record("kid", value=math.nan), r"metrics\.kid\.value is nan"),
    "nan interval end": (metrics_record("fid", value=3.0, ci_low=math.nan), r"metrics\.fid\.ci_low is nan"),
    "negative OT distance": (metrics_record("ot_distance", value=-2.0), r"metrics\.ot_distance\.value is -2\.0"),
    "text diversity": (metrics_record("diversity", value="many"), r"metrics\.diversity\.value is 'many'"),
}


@pytest.mark.parametrize("case", BAD_METRICS, ids=list(BAD_METRICS))
def test_a_metrics_record_out_of_range_is_refused(case, tmp_path):
    record, pattern = BAD_METRICS[case]
    path = tmp_path / "seed0.json"
    path.write_text(json.dumps(record))
    with pytest.raises(InputError, match=f"^{re.escape(str(path))}: {pattern}.*; delete the file and run snakemake "
                       r"again to re-make it \(rule measure\)$"):
        load_metrics([path])


def test_negative_kid_and_intervals_beyond_the_bounds_are_kept(tmp_path):
    """KID's unbiased estimate may be negative; normal intervals may leave [0, 1]."""
    path = tmp_path / "seed0.json"
    record = metrics_record("kid", value=-0.001)
    record["metrics"]["precision"] = {"value": 0.99, "ci_low": 0.95, "ci_high": 1.03}
    path.write_text(json.dumps(record))
    assert len(load_metrics([path])) == len(METRICS)


def test_every_metric_has_bounds():
    assert set(BOUNDS) == set(METRICS)


@pytest.mark.parametrize("record, pattern", [
    ({"dataset": "digits", "samples": 10, "recognisability": 2.0, "per_class": [1.0]}, r"recognisability is 2\.0"),
    ({"dataset": "digits", "samples": 10, "recognisability": 0.5, "per_class": [0.5, math.nan]},
     r"per_class\[1\] is nan"),
    ({"dataset": "digits", "samples": 10, "recognisability": 0.5, "per_class": []}, r"per_class is \[\], not a list"),
    ({"dataset": "digits", "samples": 10, "per_class": [0.5]}, r"missing required key 'recognisability'"),
], ids=["recognisability 2", "nan per class", "no classes", "no recognisability"])
def test_a_backbone_check_record_out_of_range_is_refused(record, pattern, tmp_path):
    path = tmp_path / "digits.json"
    path.write_text(json.dumps(record))
    with pytest.raises(InputError, match=f"^{re.escape(str(path))}: {pattern}.*\\(rule check_backbone\\)$"):
        read_backbone_check(path)


def test_a_non_finite_reported_number_is_refused(tmp_path):
    lines = (ROOT / "evaluation" / "report" / "reported_results.csv").read_text().splitlines()
    header, row = lines[0], lines[1].rsplit(",", 2)
    path = tmp_path / "reported.csv"
    path.write_text(f"{header}\n{row[0]},inf,{row[2]}\n")
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))}: row 2: value is 'inf', not a finite number; "):
        load_reference(path)


# ----------------------------------------------------------------------------- duplicate keys

DUPLICATES = {
    "method variant": ("methods:\n  dit: {method: dit}\n  dit: {method: dmgd}\n", 3, "methods.dit", 2),
    "two levels deep": ("protocols:\n  hard_label:\n    lr: 0.1\n    epoch_scale: 0.5\n    lr: 0.2\n", 5,
                        "protocols.hard_label.lr", 3),
    "in a list item": ("evaluation:\n  networks:\n    a: {arch: convnet, depth: 3, depth: 4}\n", 3,
                       "evaluation.networks.a.depth", 3),
    "top level": ("ipcs: [1]\nprofile: a\nprofile: b\n", 3, "profile", 2),
    "json": ('{"profile": "a", "ipcs": [1], "profile": "b"}\n', 1, "profile", 1),
}


@pytest.mark.parametrize("case", DUPLICATES, ids=list(DUPLICATES))
def test_a_duplicate_key_is_refused_naming_file_key_and_line(case, tmp_path):
    text, line, key, first = DUPLICATES[case]
    path = tmp_path / "profile.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: line {line}: duplicate key '{re.escape(key)}' "
                       rf"\(first at line {first}\); keep one of them$"):
        check_unique_keys(path)


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_profile_has_unique_keys(path):
    check_unique_keys(path)


def alias_bomb(levels: int = 12) -> str:
    """A "billion laughs" YAML: 9**levels leaves when expanded, a few hundred bytes on disk."""
    lines = ['a0: &a0 {k0: lol, k1: lol, k2: lol, k3: lol, k4: lol, k5: lol, k6: lol, k7: lol, k8: lol}']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_read_in_its_size_on_disk(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb())
    started = time.perf_counter()
    check_unique_keys(path)
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", b"a: [1\n"], ids=["binary", "unclosed"])
def test_an_unreadable_config_file_is_one_line(content, tmp_path):
    path = tmp_path / "profile.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: not a readable YAML file \(.*\); give a YAML "
                       r"config file$") as err:
        check_unique_keys(path)
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------- real commands

def cores_zero(work: Path) -> Case:
    case = snakemake_case(work, "")
    case.argv[case.argv.index("--cores") + 1] = "0"
    case.expected = r"^error: --cores 0 runs no job and waits forever; give --cores N with N >= 1, or --cores all$"
    return case


def report_case(tmp: Path, name: str, record: dict) -> Case:
    """``workflow/scripts/tables.py`` (the tables rule) on one edited run record."""
    (tmp / name).mkdir(parents=True)
    run = tmp / name / "hard_label-convnet-3-rep0.json"
    run.write_text(json.dumps(record))
    return job_case("tables", rf"\S+/{name}/hard_label-convnet-3-rep0\.json: .*; delete the file and run "
                    r"snakemake again to re-make it \(rule evaluate\)$", "--runs", str(run), "--out",
                    str(tmp / name / "results" / "digits" / "tables"), results=tmp / name / "results")


def build_cases(tmp: Path, digits_dir: Path, backbone_dir: Path) -> dict[str, Case]:
    def work(name: str) -> Path:
        return tmp / name

    dit_spec = {"method": "dit", "dataset": "digits", "params": {},
                "sampler": {**SAMPLER, "steps": 4, "cfg_scale": 1e308},   # finite, yet ε overflows
                "data": {"digits_image_size": 16, "digits_test_fraction": 0.2, "digits_val_fraction": 0.1,
                         "split_seed": 0}}
    return {
        "backbone_named_dot_dot": snakemake_case(work("backbone_named_dot_dot"), r"backbone\.name: '\.\.' "
                                                 + NAME_FIX, 'backbone={"name": ".."}'),
        "profile_with_a_separator": snakemake_case(work("profile_with_a_separator"), r"profile: 'a/b' " + NAME_FIX,
                                                   "profile=a/b"),
        "method_name_of_300_characters": snakemake_case(
            work("method_name_of_300_characters"), rf"methods: '{LONG}' " + NAME_FIX,
            overlay=f"methods:\n  {LONG}: {{method: dit}}\n"),
        "network_named_dot_dot": snakemake_case(
            work("network_named_dot_dot"), r"evaluation\.networks: '\.\.' " + NAME_FIX,
            overlay="evaluation:\n  networks:\n    ..: {arch: convnet}\n"),
        "cfg_scale_nan": snakemake_case(work("cfg_scale_nan"), r"sampler\.cfg_scale: nan is not a finite number; give "
                                        r"a finite value " + SCHEMA_FIX + "$", overlay="sampler: {cfg_scale: .nan}\n"),
        "nan_in_a_protocol_mean": snakemake_case(
            work("nan_in_a_protocol_mean"), r"protocols\.hard_label\.mean\.2: nan is not a finite number",
            overlay="protocols:\n  hard_label: {mean: [0.5, 0.5, .nan]}\n"),
        "negative_infinite_lr": snakemake_case(
            work("negative_infinite_lr"), r"protocols\.hard_label\.lr: -inf is less than or equal to the minimum of 0 "
            + SCHEMA_FIX, overlay="protocols:\n  hard_label: {lr: -.inf}\n"),
        "duplicate_method": snakemake_case(
            work("duplicate_method"), r"\S+/overlay\.yaml: line 3: duplicate key 'methods\.dit' \(first at line 2\); "
            r"keep one of them$", overlay="methods:\n  dit: {method: dit}\n  dit: {method: dmgd}\n"),
        "duplicate_key_two_levels_deep": snakemake_case(
            work("duplicate_key_two_levels_deep"), r"\S+/overlay\.yaml: line 4: duplicate key "
            r"'sampler\.steps' \(first at line 2\)", overlay="sampler:\n  steps: 10\n  batch_size: 5\n  steps: 20\n"),
        "cores_zero": cores_zero(work("cores_zero")),
        "run_record_of_top1_1e9": report_case(tmp, "run_record_of_top1_1e9", run_record(best_top1=1e9)),
        "guided_noise_overflows": job_case(
            "distill", r"non-finite guided noise of the backbone at step index 3 \(t=\d+\) for backbone class "
            r"0; lower sampler\.cfg_scale", "--spec", json.dumps(dit_spec), "--data", str(digits_dir), "--ipc", "1",
            "--seed", "0", "--backbone", str(backbone_dir),
            "--out", str(tmp / "guided_noise_overflows" / "results" / "digits/synsets/digits/dit/ipc1/seed0"),
            results=tmp / "guided_noise_overflows" / "results"),
    }


CASES = ["backbone_named_dot_dot", "profile_with_a_separator", "method_name_of_300_characters",
         "network_named_dot_dot", "cfg_scale_nan", "nan_in_a_protocol_mean", "negative_infinite_lr",
         "duplicate_method", "duplicate_key_two_levels_deep", "cores_zero", "run_record_of_top1_1e9",
         "guided_noise_overflows"]


@pytest.fixture(scope="module")
def outcomes(request, tmp_path_factory, digits_dir, tiny_backbone_dir):
    """The selected commands, run two at a time."""
    return run_selected(request, build_cases(tmp_path_factory.mktemp("cases"), digits_dir, tiny_backbone_dir),
                        PARALLEL)


@pytest.mark.parametrize("name", CASES)
def test_hostile_config_ends_in_one_line_and_leaves_nothing(name, outcomes):
    check_outcome(*outcomes[name])
