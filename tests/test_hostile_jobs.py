"""Hostile input to the job entry points (issue #15, items 5 and 6): malformed arguments, requests that
cannot fit in memory, images that are bombs or of unknown scale, and full disks or unwritable folders
under every kind of writer (torch, safetensors). Each case runs a real command, as in
``tests/test_hostile.py``, and must end in one line, exit status 2, no traceback and nothing under
``results/``.

Arguments are checked by argparse ``type=`` functions of ``evaluation/core/cli.py``, so their line is
argparse's own (``<rule>.py: error: argument --x: ...``); every other case is the script's
``<rule>.py: error: ...`` line (``evaluation.core.cli.entry_point``).
"""
from __future__ import annotations

import errno
import json
import re
import resource
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from evaluation.config.validate import validate_config
from evaluation.core.artifacts import os_errors_naming, save_torch
from evaluation.data.datasets import dataset_info, prepare_imagenet, read_index
from evaluation.protocols.protocols import resolve_protocol
from tests.conftest import SAMPLER, TINY
from tests.fake_imagenet import make_fake_imagenet
from tests.standin_weights import write_inception_standin, write_resnet_standin
from tests.test_hostile import Case, check_outcome, job_case, limit_file_size, run_selected, unwritable
from tests.workflow_run import script_command

DIGITS_DATA = {"digits_image_size": 16, "digits_test_fraction": 0.2, "digits_val_fraction": 0.1, "split_seed": 0}
RANDOM = {"method": "random", "params": {"selection": "seeded"}, "dataset": "digits", "data": DIGITS_DATA}
INT_FIX = r"; give an integer >= {}$"
SPEC_FIX = r"; pass a JSON object"
KEYS_FIX = (r", read by the job; the spec is the job's config slice written by its rule: run the job through "
            r"snakemake, or pass the keys$")
FULL_FIX = r": the file-size limit is reached; free space on that disk \(or raise the quota or file-size limit"
BOMB = r"has more than 89,478,485 pixels \(MAX_IMAGE_PIXELS of evaluation/data/datasets\.py, the decompression-bomb " \
       r"guard\); downscale it or remove it$"


def limit_file_size_above_configs() -> None:
    """Files of up to 8 KB (a model's config.json) can be written, a backbone's weights cannot."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))


def argument_case(script: str, option: str, expected: str, *args: str, **kwargs) -> Case:
    """A command refused by argparse: ``<script>.py: error: argument <option>: <expected>``."""
    return Case(script_command(script, *args), rf"^{re.escape(script)}\.py: error: argument {option}: " + expected,
                **kwargs)


def spec_lacking_case(script: str, missing: str, *args: str, **kwargs) -> Case:
    """A ``--spec`` without keys its job reads (its ``job_spec``): one argparse line naming them."""
    return argument_case(script, "--spec", rf"missing keys? {re.escape(missing)}" + KEYS_FIX, *args, **kwargs)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, digits_dir, tiny_backbone_dir, latents_path) -> dict[str, Path]:
    """External digit sets holding a decompression bomb or a float image above 1, a prepared fake Woof
    whose first train image is a bomb (named .JPEG), stand-in Inception and ResNet weights."""
    base = tmp_path_factory.mktemp("hostile_jobs")
    made = {"digits": digits_dir, "backbone": tiny_backbone_dir, "latents": latents_path}
    bomb = base / "bomb.png"
    Image.new("1", (10_000, 9_000)).save(bomb)   # 9e7 pixels in a few KB
    for kind, name in (("bomb_set", "bomb.png"), ("float_set", "float.png")):
        made[kind] = base / kind
        for label in range(10):
            (made[kind] / str(label)).mkdir(parents=True)
            Image.new("RGB", (16, 16), (label, 0, 0)).save(made[kind] / str(label) / "b.png")
    (made["bomb_set"] / "0" / "a.png").write_bytes(bomb.read_bytes())
    Image.fromarray(np.full((16, 16), 2.0, np.float32)).save(made["float_set"] / "0" / "a.png", format="TIFF")
    woof = make_fake_imagenet(base / "woof", ["imagenet_woof"], train_per_class=2, val_per_class=1, size=16)
    made["woof_data"] = base / "woof_data"
    prepare_imagenet(made["woof_data"], woof, dataset_info("imagenet_woof"), val_per_class=0, split_seed=0)
    paths, labels = read_index(made["woof_data"], "train")
    Path(paths[labels.tolist().index(0)]).write_bytes(bomb.read_bytes())
    made["inception"] = write_inception_standin(base / "weights" / "inception.pt")
    made["resnet"] = write_resnet_standin(base / "weights" / "resnet18.pth")
    return made


def build_cases(tmp: Path, made: dict[str, Path]) -> dict[str, Case]:
    """Every case; ``tmp`` holds one work folder per case."""
    def results(name: str) -> Path:
        return tmp / name / "results"

    def distill(name: str, spec: dict, *args: str, ipc: str = "1", seed: str = "0") -> list[str]:
        return ["--spec", json.dumps(spec), "--data", str(made["digits"]), "--ipc", ipc, "--seed", seed,
                "--out", str(results(name) / "digits/synsets/digits/m/ipc1/seed0"), *args]

    small = validate_config({"profile": "t", "datasets": ["digits"], "ipcs": [1],
                             "methods": {"r": {"method": "random"}},
                             "teacher": {"epochs": 1, "network": {"arch": "convnet", "depth": 2, "width": 8}},
                             "backbone": {"train": {**TINY, "vae_steps": 2, "dit_steps": 2, "vae_batch_size": 4,
                                                    "dit_batch_size": 4}}})
    teacher_spec = {"dataset": "digits", "teacher": small["teacher"],
                    "protocol_params": small["protocols"]["hard_label"]}
    pretrained_spec = {"dataset": "imagenet_woof", "protocol_params": resolve_protocol("soft_label", None),
                       "teacher": {"source": "torchvision", "weights": str(made["resnet"]),
                                   "network": {"arch": "resnet", "depth": 18, "norm": "batch"}}}
    dit_spec = {"method": "dit", "dataset": "digits", "data": DIGITS_DATA, "sampler": SAMPLER, "params": {}}
    external = {"method": "external", "dataset": "digits", "data": DIGITS_DATA}
    woof_random = {"method": "random", "params": {"selection": "first_k"}, "dataset": "imagenet_woof",
                   "data": {"imagenet_image_size": 16}}
    cases = {
        # ------------------------------------------------------------------ arguments
        "spec_not_json": argument_case(
            "distill", "--spec", r"not valid JSON \(Expecting value: line 1 column 1 \(char 0\)\)" + SPEC_FIX,
            *distill("spec_not_json", RANDOM), "--spec", "not json", results=results("spec_not_json")),
        "spec_truncated_json": argument_case(
            "real_features", "--spec", r"not valid JSON \(Expecting value: .*\)" + SPEC_FIX, "--spec",
            '{"weights": ', "--data", str(made["digits"]), "--split", "val", "--extractor", "inception",
            "--out", str(results("spec_truncated_json") / "f.pt"), results=results("spec_truncated_json")),
        "spec_json_array": argument_case(
            "train_teacher", "--spec", r"a JSON array \('\[\]'\), not an object" + SPEC_FIX,
            "--spec", "[]", "--data", str(made["digits"]), "--out", str(results("spec_json_array") / "t"),
            results=results("spec_json_array")),
        "spec_json_string": argument_case(
            "measure", "--spec", r"a JSON string \('\"digits\"'\), not an object" + SPEC_FIX,
            "--spec", '"digits"', "--synset", "s", "--fid-features", "f.pt", "--features", "f.pt",
            "--out", str(results("spec_json_string") / "m.json"), results=results("spec_json_string")),
        "spec_json_number": argument_case(
            "prepare_data", "--spec", r"a JSON number \('3'\), not an object" + SPEC_FIX, "--dataset",
            "digits", "--spec", "3", "--out", str(results("spec_json_number") / "d"),
            results=results("spec_json_number")),
        "spec_json_null": argument_case(
            "train_backbone", "--spec", r"a JSON null \('null'\), not an object" + SPEC_FIX,
            "--spec", "null", "--data", str(made["digits"]), "--out", str(results("spec_json_null") / "b"),
            "--loss-log", str(results("spec_json_null") / "loss.csv"), results=results("spec_json_null")),
        # every script whose job reads spec keys without a default (tests/test_workflow.py: the others)
        "spec_empty_check_backbone": spec_lacking_case(
            "check_backbone", "dataset, sampler, samples_per_class, seed, min_recognisability", "--spec", "{}",
            "--backbone", str(made["backbone"]), "--teacher", "t",
            "--out", str(results("spec_empty_check_backbone") / "c.json"),
            results=results("spec_empty_check_backbone")),
        "spec_empty_distill": spec_lacking_case(
            "distill", "method, dataset", *distill("spec_empty_distill", {}), results=results("spec_empty_distill")),
        "spec_empty_evaluate": spec_lacking_case(
            "evaluate", "dataset, method, ipc, seed, protocol, repeats, stack_repeats, stacked_forward, network, "
            "network_name, protocol_params",
            "--spec", "{}", "--synset", "s", "--data", str(made["digits"]),
            "--out", str(results("spec_empty_evaluate") / "r.json"), results=results("spec_empty_evaluate")),
        "spec_empty_measure": spec_lacking_case(
            "measure", "dataset, method, ipc, seed, metrics", "--spec", "{}", "--synset", "s", "--fid-features", "f.pt",
            "--features", "f.pt", "--out", str(results("spec_empty_measure") / "m.json"),
            results=results("spec_empty_measure")),
        "spec_empty_prepare_data": spec_lacking_case(
            "prepare_data", "split_seed", "--dataset", "digits", "--spec", "{}",
            "--out", str(results("spec_empty_prepare_data") / "d"), results=results("spec_empty_prepare_data")),
        "spec_empty_train_backbone": spec_lacking_case(
            "train_backbone", "train, numerics, num_classes", "--spec", "{}", "--data", str(made["digits"]),
            "--out", str(results("spec_empty_train_backbone") / "b"),
            "--loss-log", str(tmp / "spec_empty_train_backbone" / "loss.csv"),
            results=results("spec_empty_train_backbone")),
        "spec_empty_train_teacher": spec_lacking_case(
            "train_teacher", "dataset, protocol_params, teacher.source, teacher.network", "--spec", "{}",
            "--data", str(made["digits"]), "--out", str(results("spec_empty_train_teacher") / "t"),
            results=results("spec_empty_train_teacher")),
        "spec_lacking_a_nested_key": spec_lacking_case(
            "train_teacher", "teacher.source", "--spec", json.dumps({**teacher_spec, "teacher": {"network": {}}}),
            "--data", str(made["digits"]), "--out", str(results("spec_lacking_a_nested_key") / "t"),
            results=results("spec_lacking_a_nested_key")),
        "ipc_negative": argument_case(
            "distill", "--ipc", r"-3 is less than 1" + INT_FIX.format(1),
            *distill("ipc_negative", RANDOM, ipc="-3"), results=results("ipc_negative")),
        "ipc_zero": argument_case(
            "distill", "--ipc", r"0 is less than 1" + INT_FIX.format(1),
            *distill("ipc_zero", RANDOM, ipc="0"), results=results("ipc_zero")),
        "ipc_not_an_integer": argument_case(
            "distill", "--ipc", r"'1\.5' is not an integer" + INT_FIX.format(1),
            *distill("ipc_not_an_integer", RANDOM, ipc="1.5"), results=results("ipc_not_an_integer")),
        "seed_negative": argument_case(
            "distill", "--seed", r"-1 is less than 0" + INT_FIX.format(0),
            *distill("seed_negative", RANDOM, seed="-1"), results=results("seed_negative")),
        "threads_zero": argument_case(
            "real_features", "--threads", r"0 is less than 1" + INT_FIX.format(1), "--spec", "{}",
            "--data", str(made["digits"]), "--split", "val", "--extractor", "inception", "--threads", "0",
            "--out", str(results("threads_zero") / "f.pt"), results=results("threads_zero")),
        "threads_negative": argument_case(
            "encode_latents", "--threads", r"-1 is less than 1" + INT_FIX.format(1),
            "--data", str(made["digits"]), "--backbone", str(made["backbone"]), "--threads", "-1",
            "--out", str(results("threads_negative") / "l.pt"), results=results("threads_negative")),
        "image_size_zero": argument_case(
            "encode_latents", "--image-size", r"0 is less than 1" + INT_FIX.format(1),
            "--data", str(made["digits"]), "--backbone", str(made["backbone"]), "--image-size", "0",
            "--out", str(results("image_size_zero") / "l.pt"), results=results("image_size_zero")),
        "classes_reversed": job_case(
            "distill", r"classes 5:2 must be a non-empty range inside 0:10 \(half-open START:STOP",
            *distill("classes_reversed", RANDOM, "--classes", "5:2"), results=results("classes_reversed")),
        "classes_beyond_the_dataset": job_case(
            "distill", r"classes 0:11 must be a non-empty range inside 0:10",
            *distill("classes_beyond_the_dataset", RANDOM, "--classes", "0:11"),
            results=results("classes_beyond_the_dataset")),
        "classes_not_a_range": job_case(
            "distill", r"--classes '3' is not START:STOP; give a half-open range of dataset labels",
            *distill("classes_not_a_range", RANDOM, "--classes", "3"), results=results("classes_not_a_range")),
        # ------------------------------------------------------------------ memory
        "ipc_beyond_memory": job_case(
            "distill", r"ipc 1000000000 x 10 classes at image size 16 needs at least [\d,.]+ GiB of host "
            r"memory, [\d,.]+ GiB free; lower the IPC or distil fewer classes per job \(config "
            r"distill_chunk_classes\)$", *distill("ipc_beyond_memory", RANDOM, ipc="1000000000"),
            results=results("ipc_beyond_memory")),
        "ipc_beyond_memory_when_sampling": job_case(
            "distill", r"ipc 1000000000 x 1 classes at image size 16 needs at least [\d,.]+ GiB of host "
            r"memory", *distill("ipc_beyond_memory_when_sampling", dit_spec, "--classes", "3:4", "--backbone",
                                str(made["backbone"]), ipc="1000000000"),
            results=results("ipc_beyond_memory_when_sampling")),
        # ------------------------------------------------------------------ images
        "bomb_in_external_set": job_case(
            "distill", r"image \S+/bomb_set/0/a\.png " + BOMB,
            *distill("bomb_in_external_set", {**external, "params": {"path": str(made["bomb_set"])}}),
            results=results("bomb_in_external_set")),
        "bomb_in_imagenet_train": job_case(
            "distill", r"image \S+\.JPEG " + BOMB, "--spec", json.dumps(woof_random),
            "--data", str(made["woof_data"]), "--ipc", "1", "--seed", "0",
            "--out", str(results("bomb_in_imagenet_train") / "woof/synsets/imagenet_woof/random/ipc1/seed0"),
            results=results("bomb_in_imagenet_train")),
        "float_image_above_one": job_case(
            "distill", r"image \S+/float_set/0/a\.png: mode F values outside 0\.\.1\.0, of unknown scale; "
            r"save it as an 8- or 16-bit PNG$",
            *distill("float_image_above_one", {**external, "params": {"path": str(made["float_set"])}}),
            results=results("float_image_above_one")),
        # ------------------------------------------------------------------ writes
        "disk_full_writing_prepared_digits": job_case(
            "prepare_data", r"cannot write \S+/train\.pt" + FULL_FIX, "--dataset", "digits",
            "--spec", json.dumps(DIGITS_DATA), "--out", str(results("disk_full_writing_prepared_digits") / "d"),
            preexec=limit_file_size, results=results("disk_full_writing_prepared_digits")),
        "disk_full_writing_latents": job_case(
            "encode_latents", r"cannot write \S+/tiny\.pt" + FULL_FIX, "--data", str(made["digits"]),
            "--backbone", str(made["backbone"]), "--out", str(results("disk_full_writing_latents") / "tiny.pt"),
            preexec=limit_file_size, results=results("disk_full_writing_latents")),
        "disk_full_writing_features": job_case(
            "real_features", r"cannot write \S+/inception-val\.pt" + FULL_FIX,
            "--spec", json.dumps({"weights": str(made["inception"])}), "--data", str(made["digits"]),
            "--split", "val", "--extractor", "inception",
            "--out", str(results("disk_full_writing_features") / "inception-val.pt"),
            preexec=limit_file_size, results=results("disk_full_writing_features")),
        "disk_full_writing_teacher": job_case(
            "train_teacher", r"cannot write \S+/model\.pt" + FULL_FIX, "--spec",
            json.dumps(pretrained_spec), "--data", str(made["woof_data"]),
            "--out", str(results("disk_full_writing_teacher") / "teacher"),
            preexec=limit_file_size, results=results("disk_full_writing_teacher")),
        "disk_full_writing_a_checkpoint": job_case(
            "train_teacher", r"cannot write \S+/teacher\.ckpt" + FULL_FIX, "--spec",
            json.dumps(teacher_spec), "--data", str(made["digits"]),
            "--out", str(results("disk_full_writing_a_checkpoint") / "teacher"),
            env={"DMGD_CHECKPOINT_INTERVAL_S": "0"},
            preexec=limit_file_size, results=results("disk_full_writing_a_checkpoint")),
        "disk_full_writing_a_backbone": job_case(
            "train_backbone", r"cannot write \S+/tiny" + FULL_FIX,
            "--spec", json.dumps({"train": small["backbone"]["train"], "numerics": "official", "num_classes": 10}),
            "--data", str(made["digits"]), "--out", str(results("disk_full_writing_a_backbone") / "tiny"),
            "--loss-log", str(tmp / "disk_full_writing_a_backbone" / "loss.csv"),
            preexec=limit_file_size, results=results("disk_full_writing_a_backbone")),
        "disk_full_writing_backbone_weights": job_case(
            "train_backbone", r"cannot write \S+/tiny" + FULL_FIX,
            "--spec", json.dumps({"train": small["backbone"]["train"], "numerics": "official", "num_classes": 10}),
            "--data", str(made["digits"]), "--out", str(results("disk_full_writing_backbone_weights") / "tiny"),
            "--loss-log", str(tmp / "disk_full_writing_backbone_weights" / "loss.csv"),
            preexec=limit_file_size_above_configs, results=results("disk_full_writing_backbone_weights")),
        "latents_folder_not_writable": job_case(
            "encode_latents", r"cannot write \S+/results/digits: permission denied; choose a writable "
            r"results directory", "--data", str(made["digits"]), "--backbone", str(made["backbone"]),
            "--out", str(results("latents_folder_not_writable") / "digits/latents/tiny.pt"),
            results=results("latents_folder_not_writable")),
    }
    cases["latents_folder_not_writable"].argv = unwritable(cases["latents_folder_not_writable"].argv)
    return cases


CASES = ["spec_not_json", "spec_truncated_json", "spec_json_array", "spec_json_string", "spec_json_number",
         "spec_json_null", "spec_empty_check_backbone", "spec_empty_distill", "spec_empty_evaluate",
         "spec_empty_measure", "spec_empty_prepare_data", "spec_empty_train_backbone", "spec_empty_train_teacher",
         "spec_lacking_a_nested_key",
         "ipc_negative", "ipc_zero", "ipc_not_an_integer", "seed_negative", "threads_zero",
         "threads_negative", "image_size_zero", "classes_reversed", "classes_beyond_the_dataset",
         "classes_not_a_range", "ipc_beyond_memory", "ipc_beyond_memory_when_sampling", "bomb_in_external_set",
         "bomb_in_imagenet_train", "float_image_above_one", "disk_full_writing_prepared_digits",
         "disk_full_writing_latents", "disk_full_writing_features", "disk_full_writing_teacher",
         "disk_full_writing_a_checkpoint", "disk_full_writing_a_backbone", "disk_full_writing_backbone_weights",
         "latents_folder_not_writable"]


@pytest.fixture(scope="module")
def outcomes(request, inputs, tmp_path_factory) -> dict:
    return run_selected(request, build_cases(tmp_path_factory.mktemp("cases"), inputs))


@pytest.mark.parametrize("name", CASES)
def test_hostile_job_input_ends_in_one_line_and_leaves_nothing(name, outcomes):
    check_outcome(*outcomes[name])


def test_safetensors_write_failure_is_the_os_error_naming_the_path(tmp_path):
    from safetensors import SafetensorError

    with pytest.raises(OSError) as err, os_errors_naming(tmp_path / "vae"):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
    assert (err.value.errno, err.value.filename) == (errno.ENOSPC, str(tmp_path / "vae"))


def test_save_torch_into_a_missing_folder_is_the_os_error_naming_the_file(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        save_torch({"x": 1}, tmp_path / "nowhere" / "x.pt")
    assert err.value.filename == str(tmp_path / "nowhere" / "x.pt")
