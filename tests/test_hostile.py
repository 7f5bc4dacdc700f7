"""Hostile input (issue #7, part 4): every case runs a real command and must end in one line naming
the problem and the fix, a non-zero exit, no traceback, and nothing under ``results/``.

Config-level cases run ``snakemake`` (refused before any job, ``workflow/rules/common.smk``); job
level cases run the rule's script (``workflow/scripts/<rule>.py``, ``evaluation/core/cli.py``) with its output
under an empty ``results/``. The commands are independent, so the module runs them all at once
(``outcomes``) and each test checks its own.
"""
from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from evaluation.data.datasets import dataset_info, prepare_imagenet, read_index
from evaluation.data.synsets import write_synset
from evaluation.protocols.networks import create_network
from tests.conftest import SAMPLER, method_params
from tests.fake_imagenet import make_fake_imagenet
from tests.standin_weights import write_inception_standin
from tests.workflow_run import script_command

ROOT = Path(__file__).resolve().parent.parent
PARALLEL = 3
SCHEMA_FIX = r"\(see workflow/schemas/config\.schema\.yaml\)"
WRITE_LIMIT = 100   # bytes: below one PNG of the synthetic set, above nothing the job needs to start


@dataclass
class Case:
    """A command, the regex its last line must match, and how to run it."""
    argv: list[str]
    expected: str
    env: dict = field(default_factory=dict)
    preexec: object = None
    results: Path | None = None   # the results/ folder of the command (snakemake: under its -d)


def snakemake_case(work: Path, expected: str, *config: str, configfile: str = "config/config.yaml",
                   overlay: str | None = None) -> Case:
    """``snakemake`` on ``configfile`` with ``--config`` overrides, or a YAML ``overlay`` file (where
    ``--config`` would read the value as a string, e.g. list items)."""
    configfiles = [str(ROOT / configfile)]
    if overlay is not None:
        work.mkdir(parents=True)
        (work / "overlay.yaml").write_text(overlay)
        configfiles.append(str(work / "overlay.yaml"))
    argv = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(work), "--cores", "1",
            "--configfile", *configfiles]
    if config:
        argv += ["--config", *config]
    return Case(argv, r"^config error: " + expected, results=work / "results")


def job_case(script: str, expected: str, *args: str, **kwargs) -> Case:
    """``workflow/scripts/<script>.py`` refusing its input: ``<script>.py: error: <expected>``."""
    return Case(script_command(script, *args), rf"^{re.escape(script)}\.py: error: " + expected, **kwargs)


def limit_file_size() -> None:
    """A full disk, simulated: writes past WRITE_LIMIT bytes fail with EFBIG (CPython ignores SIGXFSZ)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (WRITE_LIMIT, WRITE_LIMIT))


def unwritable(argv: list[str]) -> list[str]:
    """Root ignores file permissions; without these capabilities it respects them like anyone."""
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *argv] if os.geteuid() == 0 else argv


# ----------------------------------------------------------------------------- inputs

@pytest.fixture(scope="module")
def inputs(tmp_path_factory, digits_dir, tiny_backbone_dir, latents_path) -> dict[str, Path]:
    """Shared inputs: fake ImageNet roots (a wnid folder missing, a folder empty), a prepared fake
    Woof with a truncated and a non-image file, synthetic sets (a class missing, a file missing from
    labels.csv, a complete one), a teacher and a backbone whose weights are of another width than their
    config says, an empty TORCH_HOME and HF_HOME, and an Inception stand-in (a TorchScript file)."""
    base = tmp_path_factory.mktemp("hostile")
    made = {"digits": digits_dir, "backbone": tiny_backbone_dir, "latents": latents_path}
    info = dataset_info("imagenet_woof")
    for kind in ("missing_wnid", "empty_folder", "woof"):
        made[kind] = make_fake_imagenet(base / kind, ["imagenet_woof"], train_per_class=3, val_per_class=1, size=16)
    gone = made["missing_wnid"] / "train" / info.wnids[3]
    for image in gone.iterdir():
        image.unlink()
    gone.rmdir()
    for image in (made["empty_folder"] / "val" / info.wnids[5]).iterdir():
        image.unlink()
    made["woof_data"] = base / "woof_data"
    prepare_imagenet(made["woof_data"], made["woof"], info, val_per_class=1, split_seed=0)
    paths, labels = read_index(made["woof_data"], "train")
    first = {int(label): Path(path) for path, label in reversed(list(zip(paths, labels.tolist())))}
    first[0].write_bytes(first[0].read_bytes()[:200])   # a truncated JPEG (its header intact)
    first[1].write_bytes(b"not an image\n")               # a text file named .JPEG
    images = torch.randint(0, 256, (10, 3, 16, 16), dtype=torch.uint8)
    names = dataset_info("digits").class_names
    made["complete_set"] = base / "complete_set"
    write_synset(made["complete_set"], images, torch.arange(10), names, {})
    made["missing_class_set"] = base / "missing_class_set"
    write_synset(made["missing_class_set"], images[:9], torch.arange(9), names, {})
    made["stale_labels_set"] = base / "stale_labels_set"
    write_synset(made["stale_labels_set"], images, torch.arange(10), names, {})
    (made["stale_labels_set"] / "00004" / "0000.png").unlink()
    made["teacher"] = base / "teacher"
    made["teacher"].mkdir()
    narrow = create_network("convnet", 10, 16, depth=3, width=32)
    torch.save({"state_dict": narrow.state_dict(), "network": {"arch": "convnet", "depth": 3, "width": 128},
                "num_classes": 10, "image_size": 16, "mean": [0.5] * 3, "std": [0.5] * 3},
               made["teacher"] / "model.pt")
    made["wide_backbone"] = base / "wide_backbone"
    shutil.copytree(tiny_backbone_dir, made["wide_backbone"])
    config = made["wide_backbone"] / "transformer" / "config.json"
    config.write_text(config.read_text().replace('"attention_head_dim": 8', '"attention_head_dim": 16'))
    made["torch_home"] = base / "torch_home"
    made["torch_home"].mkdir()
    made["hf_home"] = base / "hf_home"
    made["hf_home"].mkdir()
    made["inception"] = write_inception_standin(base / "weights" / "inception.pt")
    return made


def build_cases(tmp: Path, made: dict[str, Path]) -> dict[str, Case]:
    """Every hostile case; ``tmp`` holds one work folder per case."""
    def work(name: str) -> Path:
        return tmp / name

    def results(name: str) -> Path:
        return tmp / name / "results"

    woof = str(ROOT / "config" / "paper" / "woof.yaml")
    wnids = dataset_info("imagenet_woof").wnids
    digits_data = {"digits_image_size": 16, "digits_test_fraction": 0.2, "digits_val_fraction": 0.1, "split_seed": 0}
    random_spec = {"method": "random", "params": {"selection": "first_k"}, "dataset": "imagenet_woof",
                   "data": {"imagenet_image_size": 16}}
    dmgd_spec = {"method": "dmgd", "dataset": "digits", "data": digits_data, "sampler": {**SAMPLER, "steps": 4},
                 "params": method_params("dmgd", sinkhorn_epsilon=1e-9, guidance_window=[0, 3])}
    soft = {"dataset": "digits", "method": "m", "ipc": 1, "seed": 0, "protocol": "soft_label", "repeats": [0],
            "stack_repeats": True, "stacked_forward": "auto",
            "network_name": "convnet-3", "network": {"arch": "convnet", "depth": 3, "width": 128},
            "protocol_params": {"loss": "soft", "image_size": None, "mean": [0.5] * 3, "std": [0.5] * 3}}
    torchvision_teacher = {"dataset": "imagenet_woof", "protocol_params": {"mean": [0.5] * 3, "std": [0.5] * 3},
                           "teacher": {"source": "torchvision", "network": {"arch": "resnet", "depth": 18,
                                                                             "norm": "batch"}}}
    synset_out = "digits/synsets/digits/random/ipc1/seed0"
    cases = {
        "unknown_method": snakemake_case(
            work("unknown_method"), r"methods\.x\.method: 'foo' is not one of \['random', .*\] " + SCHEMA_FIX,
            'methods={"x": {"method": "foo"}}'),
        "unknown_dataset": snakemake_case(
            work("unknown_dataset"), r"datasets\.0: 'cifar10' is not one of \['digits', .*\] " + SCHEMA_FIX,
            'datasets=["cifar10"]'),
        "unknown_network": snakemake_case(
            work("unknown_network"), r"evaluation\.networks\.lenet\.arch: 'lenet' is not one of \['alexnet', .*\] "
            + SCHEMA_FIX, 'evaluation={"networks": {"lenet": {"arch": "lenet"}}}'),
        "unknown_protocol": snakemake_case(
            work("unknown_protocol"), r"evaluation\.protocols: unknown protocol 'nosuch'; valid: classifier_inheritance, glad, "
            r"hard_label, linear_probe, soft_label \(define a variant under protocols with a base\)$", 'evaluation={"protocols": ["nosuch"]}'),
        "external_set_missing": snakemake_case(
            work("external_set_missing"), r"methods\.ext: external set /nonexistent/set does not exist; set "
            r"params\.path to an ImageFolder directory$",
            'methods={"ext": {"method": "external", "params": {"path": "/nonexistent/set"}}}'),
        "ipc_zero": snakemake_case(work("ipc_zero"), r"ipcs\.0: 0 is less than the minimum of 1 " + SCHEMA_FIX,
                                   overlay="ipcs: [0]\n"),
        "ipc_negative": snakemake_case(work("ipc_negative"), r"ipcs\.0: -3 is less than the minimum of 1 "
                                       + SCHEMA_FIX, overlay="ipcs: [-3]\n"),
        "ipc_larger_than_a_class": snakemake_case(
            work("ipc_larger_than_a_class"), r"ipcs: ipc 500 exceeds the 125 training images of class 8 of digits, "
            r"and method variant 'random' \(random\) needs ipc real images per class; lower the IPC to at most 125 "
            r"or remove the variant$", overlay="ipcs: [500]\n"),
        "config_value_of_wrong_type": snakemake_case(
            work("config_value_of_wrong_type"), r"sampler\.steps: 'ten' is not of type 'integer' " + SCHEMA_FIX,
            'sampler={"steps": "ten"}'),
        "wnid_absent_from_imagenet_root": snakemake_case(
            work("wnid_absent_from_imagenet_root"), rf"missing class folder \S+/train/{wnids[3]} \(imagenet_woof\); "
            r"expected <root>/train/<wnid>/\*\.JPEG", f"imagenet_root={made['missing_wnid']}", configfile=woof),
        "empty_class_folder": snakemake_case(
            work("empty_class_folder"), rf"class folder \S+/val/{wnids[5]} holds no images \(\.JPEG/\.jpg/\.png\); "
            r"expected <root>/train/<wnid>/\*\.JPEG", f"imagenet_root={made['empty_folder']}", configfile=woof),
        "truncated_image": job_case(
            "distill", r"unreadable image \S+\.JPEG \(OSError\); replace or remove the file",
            "--spec", json.dumps(random_spec), "--data", str(made["woof_data"]), "--ipc", "1", "--seed", "0",
            "--out", str(results("truncated_image") / "woof/synsets/imagenet_woof/random/ipc1/seed0"),
            results=results("truncated_image")),
        "non_image_file": job_case(
            "distill", r"unreadable image \S+\.JPEG \(UnidentifiedImageError\); replace or remove the file",
            "--spec", json.dumps(random_spec), "--data", str(made["woof_data"]), "--ipc", "1", "--seed", "0",
            "--classes", "1:2", "--out", str(results("non_image_file") / "woof/chunks/random/ipc1/seed0/1-2"),
            results=results("non_image_file")),
        "synthetic_set_missing_a_class": job_case(
            "evaluate", r"\S+/missing_class_set: no images of class 00009 \(1 classes missing\); every class "
            r"needs at least one image$", "--spec", json.dumps(soft), "--synset",
            str(made["missing_class_set"]), "--data", str(made["digits"]), "--teacher", str(made["teacher"]),
            "--out", str(results("synthetic_set_missing_a_class") / "digits/eval/x.json"),
            results=results("synthetic_set_missing_a_class")),
        "labels_csv_disagrees_with_folder": job_case(
            "measure", r"\S+/stale_labels_set: 00004/0000\.png is listed in labels\.csv but missing; "
            r"regenerate the set or fix labels\.csv$", "--spec",
            json.dumps({"dataset": "digits", "method": "m", "ipc": 1, "seed": 0, "metrics": {}}),
            "--synset", str(made["stale_labels_set"]), "--fid-features", "x.pt", "--features", "x.pt",
            "--out", str(results("labels_csv_disagrees_with_folder") / "digits/metrics/x.json"),
            results=results("labels_csv_disagrees_with_folder")),
        "dit_weights_offline": job_case(
            "load_backbone", r"DiT transformer: cannot load hub id 'facebook/DiT-XL-2-256' \(offline or "
            r"not cached: \w+\); run `hf download facebook/DiT-XL-2-256`",
            "--source", "facebook/DiT-XL-2-256", "--out", str(results("dit_weights_offline") / "woof/backbones/dit"),
            env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(made["hf_home"])}, results=results("dit_weights_offline")),
        "teacher_weights_offline": job_case(
            "train_teacher", r"teacher weights \S+/resnet18-f37072fd\.pth are missing \(offline\); download "
            r"https://\S+ to that path", "--spec", json.dumps(torchvision_teacher), "--data",
            str(made["woof_data"]), "--out", str(results("teacher_weights_offline") / "woof/teachers/imagenet_woof"),
            env={"TORCH_HOME": str(made["torch_home"])}, results=results("teacher_weights_offline")),
        "extractor_weights_offline": job_case(
            "real_features", r"VGG-16 ImageNet weights missing: put vgg16-397923af\.pth \(\S+\) in \S+/hub/"
            r"checkpoints/ \(\$TORCH_HOME/hub/checkpoints\) or set metrics\.vgg16_weights to a copy elsewhere; "
            r"offline runs never download$", "--spec", "{}",
            "--data", str(made["digits"]), "--split", "train", "--extractor", "vgg16_fc7",
            "--out", str(results("extractor_weights_offline") / "digits/features/digits/vgg16_fc7-train.pt"),
            env={"TORCH_HOME": str(made["torch_home"])}, results=results("extractor_weights_offline")),
        "configured_extractor_weights_missing": job_case(
            "real_features", r"clean-fid Inception weights missing: metrics\.inception_weights is "
            r"/nonexistent/inception\.pt, which is not a file; put inception-2015-12-05\.pt \(https://\S+\) there "
            r"under any name, or set metrics\.inception_weights to where it is$",
            "--spec", json.dumps({"weights": "/nonexistent/inception.pt"}), "--data", str(made["digits"]),
            "--split", "train", "--extractor", "inception",
            "--out", str(results("configured_extractor_weights_missing") / "digits/features/digits/inception-train.pt"),
            results=results("configured_extractor_weights_missing")),
        "configured_teacher_weights_missing": job_case(
            "train_teacher", r"teacher weights /nonexistent/resnet18\.pth \(teacher\.weights\) are missing; put "
            r"torchvision's resnet18-f37072fd\.pth \(https://\S+\) there under any name, or set teacher\.weights "
            r"to where it is$", "--spec",
            json.dumps({**torchvision_teacher, "teacher": {**torchvision_teacher["teacher"],
                                                            "weights": "/nonexistent/resnet18.pth"}}),
            "--data", str(made["woof_data"]),
            "--out", str(results("configured_teacher_weights_missing") / "woof/teachers/imagenet_woof"),
            results=results("configured_teacher_weights_missing")),
        "extractor_weights_of_another_kind": job_case(
            "real_features", r"\S+/inception\.pt: not a state dict \(Cannot use .*TorchScript archives.*\); "
            r"replace it with torchvision's https://\S+/vgg16-397923af\.pth$",
            "--spec", json.dumps({"weights": str(made["inception"])}), "--data", str(made["digits"]),
            "--split", "train", "--extractor", "vgg16_fc7",
            "--out", str(results("extractor_weights_of_another_kind") / "digits/features/digits/vgg16_fc7-train.pt"),
            results=results("extractor_weights_of_another_kind")),
        "checkpoint_of_wrong_architecture": job_case(
            "evaluate", r"\S+/teacher/model\.pt: weights of another architecture than ConvNet \(size mismatch "
            r"for .*\); re-make the teacher for network .* \(delete \S+ and re-run\)$", "--spec",
            json.dumps(soft), "--synset", str(made["complete_set"]), "--data", str(made["digits"]), "--teacher",
            str(made["teacher"]), "--out", str(results("checkpoint_of_wrong_architecture") / "digits/eval/x.json"),
            results=results("checkpoint_of_wrong_architecture")),
        "backbone_of_wrong_architecture": job_case(
            "encode_latents", r"DiT transformer: the weights in \S+/wide_backbone/transformer are of "
            r"another architecture than its config\.json \(size mismatch for .*\); save the backbone again or set "
            r"backbone\.source to a checkpoint that matches its config\.json$", "--data", str(made["digits"]),
            "--backbone", str(made["wide_backbone"]),
            "--out", str(results("backbone_of_wrong_architecture") / "digits/latents/digits/tiny.pt"),
            results=results("backbone_of_wrong_architecture")),
        "non_finite_guidance": job_case(
            "distill", r"non-finite OT guidance at step index 3 \(t=\d+\) for class 0; lower rho, raise "
            r"sinkhorn_epsilon or set log_domain: true$", "--spec", json.dumps(dmgd_spec), "--data",
            str(made["digits"]), "--ipc", "1", "--seed", "0", "--backbone", str(made["backbone"]), "--latents",
            str(made["latents"]), "--out", str(results("non_finite_guidance") / "digits/synsets/digits/dmgd/ipc1/seed0"),
            results=results("non_finite_guidance")),
        "output_directory_not_writable": job_case(
            "prepare_data", r"cannot write \S+/results/digits: permission denied; choose a writable results "
            r"directory .* or fix its permissions$", "--dataset", "digits", "--spec", json.dumps(digits_data),
            "--out", str(results("output_directory_not_writable") / "digits/data/digits"),
            results=results("output_directory_not_writable")),
        "disk_fills_during_writing": job_case(
            "distill", r"cannot write a file: the file-size limit is reached; free space on that disk \(or "
            r"raise the quota or file-size limit, ulimit -f\) and re-run$", "--spec",
            json.dumps({"method": "random", "params": {"selection": "seeded"}, "dataset": "digits",
                        "data": digits_data}), "--data", str(made["digits"]), "--ipc", "1", "--seed", "0",
            "--out", str(results("disk_fills_during_writing") / synset_out), preexec=limit_file_size,
            results=results("disk_fills_during_writing")),
    }
    unwritable_case = cases["output_directory_not_writable"]
    unwritable_case.argv = unwritable(unwritable_case.argv)
    return cases


CASES = ["unknown_method", "unknown_dataset", "unknown_network", "unknown_protocol", "external_set_missing",
         "ipc_zero", "ipc_negative",
         "ipc_larger_than_a_class", "config_value_of_wrong_type", "wnid_absent_from_imagenet_root",
         "empty_class_folder", "truncated_image", "non_image_file", "synthetic_set_missing_a_class",
         "labels_csv_disagrees_with_folder", "dit_weights_offline", "teacher_weights_offline",
         "extractor_weights_offline", "configured_extractor_weights_missing", "configured_teacher_weights_missing",
         "extractor_weights_of_another_kind", "checkpoint_of_wrong_architecture", "backbone_of_wrong_architecture",
         "non_finite_guidance",
         "output_directory_not_writable", "disk_fills_during_writing"]


def run_case(case: Case) -> subprocess.CompletedProcess:
    case.results.mkdir(parents=True)
    if case.argv[0] == "setpriv":
        case.results.chmod(0o555)
    env = {**os.environ, "XDG_CACHE_HOME": str(case.results.parent / "cache"), "HF_HUB_OFFLINE": "1", **case.env}
    try:
        return subprocess.run(case.argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                              check=False, preexec_fn=case.preexec)
    finally:
        case.results.chmod(0o755)


def run_selected(request, cases: dict[str, Case], parallel: int = PARALLEL) -> dict:
    """``{name: (case, completed process)}`` of the cases this session selected from the requesting
    module's ``name``-parametrised tests, run ``parallel`` at a time (each command is mostly the
    import of torch)."""
    selected = [item.callspec.params["name"] for item in request.session.items
                if item.path == request.path and "name" in getattr(getattr(item, "callspec", None), "params", {})]
    with ThreadPoolExecutor(parallel) as pool:
        procs = dict(zip(selected, pool.map(run_case, [cases[name] for name in selected])))
    return {name: (cases[name], procs[name]) for name in selected}


def check_outcome(case: Case, proc: subprocess.CompletedProcess) -> None:
    """One line naming the problem as the last line, a non-zero exit (2 for a job), no traceback,
    nothing left under results/."""
    output = proc.stdout + proc.stderr if case.argv[2] == "snakemake" else proc.stderr
    lines = [line for line in output.splitlines() if line.strip()]
    assert proc.returncode != 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert re.search(case.expected, lines[-1]), lines[-1]
    if case.argv[2] != "snakemake":
        assert proc.returncode == 2
    assert leftovers(case.results) == []


@pytest.fixture(scope="module")
def outcomes(request, inputs, tmp_path_factory) -> dict[str, tuple[Case, subprocess.CompletedProcess]]:
    return run_selected(request, build_cases(tmp_path_factory.mktemp("cases"), inputs))


def leftovers(results: Path) -> list[str]:
    return sorted(str(p.relative_to(results)) for p in results.rglob("*"))


@pytest.mark.parametrize("name", CASES)
def test_hostile_input_ends_in_one_line_and_leaves_nothing(name, outcomes):
    check_outcome(*outcomes[name])
