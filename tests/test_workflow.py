"""The DAG end to end on the smallest profile, a second run that does nothing, and dry runs of the
paper profile over a fake ImageNet tree."""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pandas as pd
import pytest

from tests.fake_imagenet import make_fake_imagenet, make_fake_imagenet_1k
from tests.workflow_run import ROOT, SCRIPTS, load_script, snakemake

# test_profile_run (tests/conftest.py): the test profile end to end, once per session

def test_tables_hold_every_method_and_ipc(test_profile_run):
    results, _ = test_profile_run
    runs = pd.read_csv(results / "tables" / "runs.csv")
    methods = {"random", "random-first-k", "dit", "mgd3", "d4m", "minimax", "dmgd", "lgm", "sfm"}
    assert set(runs.method) == methods and set(runs.ipc) == {1, 2}
    assert set(runs.protocol) == {"hard_label", "soft_label"}
    assert len(runs) == len(methods) * 2 * 2 and runs.best_top1.ge(runs.last_top1).all()
    assert runs.val_selected_top1.notna().all()   # the digits have a validation split
    accuracy = (results / "tables" / "accuracy.md").read_text()
    assert "### digits · hard_label · convnet-2" in accuracy and "| random-first-k |" in accuracy
    assert "### digits · soft_label · convnet-2" in accuracy
    for table in ("accuracy_val.md", "model_selection.md", "generation.md", "distribution.md"):
        assert "| dmgd" in (results / "tables" / table).read_text(), table
    assert "teacher extractor" in (results / "tables" / "generation.md").read_text()
    assert "d4m is a port of D4M to the shared DiT backbone" in accuracy  # the registry's table note
    assert "with encoder 'teacher' (the digits profile) that is the suite's supervised teacher" in accuracy
    for suffix in ("csv", "tex"):
        assert (results / "tables" / f"accuracy.{suffix}").exists()
    assert "Backbone recognisability" in (results / "tables" / "backbone.md").read_text()


def test_every_artifact_has_a_manifest_and_every_rule_a_log(test_profile_run):
    results, workdir = test_profile_run
    synsets = sorted((results / "synsets" / "digits").glob("*/ipc*/seed*"))
    assert len(synsets) == 18
    assert (results / "backbones" / "tiny-finetuned" / "minimax" / "digits" / "transformer").is_dir()
    ot = json.loads((results / "synsets" / "digits" / "dmgd" / "ipc2" / "seed0" / "manifest.json").read_text())
    assert len(ot["records"]["final_ot_loss"]) == 10 and len(ot["records"]["final_ot_loss"][0]) == 2
    for synset in synsets:
        record = json.loads((synset / "manifest.json").read_text())
        assert {"config", "seed", "code_version", "packages", "device", "wall_time_s"} <= set(record)
    assert (results / "backbones" / "tiny" / "transformer").is_dir()
    assert (results / "teachers" / "digits" / "model.pt").exists()
    assert (results / "class_statistics" / "digits" / "teacher-r16-c16.pt").exists()   # sfm's, once
    logged = " ".join(str(p.relative_to(workdir / "logs" / "test")) for p in (workdir / "logs" / "test").rglob("*.log"))
    metrics = json.loads((results / "metrics" / "digits" / "dmgd" / "ipc2" / "seed0.json").read_text())
    run = json.loads((results / "eval" / "digits" / "dmgd" / "ipc2" / "seed0" / "hard_label-convnet-2-rep0.json").read_text())
    for record in (run, metrics):   # results name the set they were made from (tables compare it)
        assert record["manifest"]["synset"]["config"] == ot["config"]
        assert record["manifest"]["synset"]["code_version"] == ot["code_version"]
    assert metrics["extractors"]["fid"]["name"] == "teacher" and metrics["count"] == 20
    assert (results / "features" / "digits" / "teacher-train.pt").exists()
    for rule in ("prepare_data", "train_backbone", "train_teacher", "check_backbone", "distill", "evaluate",
                 "real_features", "measure", "tables", "class_statistics"):
        assert rule in logged
    assert (workdir / "logs" / "test" / "train_backbone_loss.csv").read_text().startswith("phase,step,loss")


def test_figures_and_the_html_report(test_profile_run):
    results, workdir = test_profile_run
    index = (results / "figures" / "index.md").read_text()
    for figure in ("samples/digits/dmgd-ipc2-seed0.png", "tsne/digits-ipc2.png", "ot_loss/digits-ipc2.png",
                   "accuracy/digits-hard_label-convnet-2.png"):
        assert (results / "figures" / figure).stat().st_size > 1000 and figure in index
    assert (results / "tables" / "costs.md").exists() and (results / "tables" / "variance.csv").exists()
    report = workdir / "report.html"
    proc = snakemake(workdir, "--configfile", str(ROOT / "config" / "test.yaml"), "--report", str(report))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-2000:]
    assert report.stat().st_size > 10_000


def test_chunked_distillation_dag(tmp_path):
    overlay = tmp_path / "chunks.yaml"
    overlay.write_text("distill_chunk_classes: 4\n")
    proc = snakemake(tmp_path / "work", "-n", "--configfile", str(ROOT / "config" / "test.yaml"), str(overlay))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-2000:]
    counts = job_stats(out, {"distill", "merge_chunks"})
    # 10 classes in chunks 0-4, 4-8, 8-10; lgm and sfm (joint_classes, 2 IPCs each) in one chunk of all 10
    assert counts == {"distill": 14 * 3 + 4, "merge_chunks": 18}


# the linear probe and classifier inheritance on the teacher encoder, over the test profile
ENCODER_PROTOCOLS = """
evaluation:
  protocols: [hard_label, soft_label, linear_probe, classifier_inheritance]
  networks:
    convnet-2: {protocols: [hard_label, soft_label]}
    probe-teacher: {arch: linear_probe, encoder: teacher, protocols: [linear_probe]}
    ci-teacher: {arch: inherited_classifier, encoder: teacher, protocols: [classifier_inheritance]}
"""


def test_classifier_inheritance_reads_one_golden_head_per_dataset_and_encoder(tmp_path):
    """The golden head is a DAG artifact keyed by (dataset, encoder): one job however many sets and
    repeats read it, each classifier_inheritance job gets it (and the teacher) on its command line."""
    overlay = tmp_path / "encoder_protocols.yaml"
    overlay.write_text(ENCODER_PROTOCOLS)
    proc = snakemake(tmp_path / "work", "-n", "-p", "--configfile", str(ROOT / "config" / "test.yaml"), str(overlay))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-2000:]
    assert job_stats(out, {"golden_head"}) == {"golden_head": 1}
    golden = job_specs(out)["golden_head"]
    assert [(spec["dataset"], spec["encoder"], spec["golden_head"]["epochs"]) for spec in golden] == [("digits", "teacher", 10)]
    commands = [c for c in re.findall(r"^Shell command: (.*)$", out, re.M) if "evaluate.py" in c and "classifier_inheritance" in c]
    assert len(commands) == 9 * 2 and all("--golden results/test/golden_heads/digits/teacher" in c and "--teacher" in c
                                          for c in commands)   # 9 variants x 2 IPCs, 1 repeat


# the scripts whose job reads every key of its spec with a default: a spec of {} is valid
SPEC_WITHOUT_REQUIRED_KEYS = {"finetune_backbone", "real_features"}


def job_specs(out: str) -> dict[str, list[dict]]:
    """The ``--spec`` of every job in the shell commands a (dry) run prints, by script."""
    specs = {}
    for command in re.findall(r"^Shell command: (.*)$", out, re.M):
        argv = shlex.split(command)
        scripts = [m.group(1) for m in map(re.compile(r"\$DMGD_SCRIPTS/(\w+)\.py$").search, argv) if m]
        if scripts and "--spec" in argv:
            specs.setdefault(scripts[0], []).append(json.loads(argv[argv.index("--spec") + 1]))
    return specs


def key_paths(spec: dict, prefix: str = "") -> set[str]:
    """Every key of ``spec`` and of the objects nested in it, dotted as ``job_spec`` declares them
    (``teacher.source``)."""
    paths = set()
    for key, value in spec.items():
        paths.add(prefix + key)
        if isinstance(value, dict):
            paths |= key_paths(value, f"{prefix}{key}.")
    return paths


def test_every_script_declares_only_keys_its_rule_writes_into_the_spec(tmp_path):
    """A script's ``--spec`` type (``SPEC = job_spec(...)``, evaluation/core/cli.py) requires keys; each is
    in the spec its rule writes for every job of the test profile, so the declaration cannot drift from
    the rule (the test profile with the frozen-encoder protocols added, so that the golden head runs too).
    Every script that is given a ``--spec`` declares one."""
    overlay = tmp_path / "encoder_protocols.yaml"
    overlay.write_text(ENCODER_PROTOCOLS)
    proc = snakemake(tmp_path / "work", "-n", "-p", "--configfile", str(ROOT / "config" / "test.yaml"), str(overlay))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-2000:]
    specs = job_specs(proc.stdout + proc.stderr)
    declaring = {path.stem for path in SCRIPTS.glob("*.py") if hasattr(load_script(path.stem), "SPEC")}
    assert set(specs) == declaring and len(declaring) == 10
    declared = {script: load_script(script).SPEC.keys for script in specs}
    assert {script for script, keys in declared.items() if not keys} == SPEC_WITHOUT_REQUIRED_KEYS
    for script, written in specs.items():
        for spec in written:
            assert set(declared[script]) <= key_paths(spec), (script, set(declared[script]) - key_paths(spec))


def test_default_profile_probes_every_method_on_the_teacher_encoder_only_under_linear_probe(tmp_path):
    """Networks with a ``protocols`` list pair only with those protocols; every linear_probe job on the
    teacher encoder gets the teacher folder as an input and on its command line."""
    proc = snakemake(tmp_path / "work", "-n", "-p", "--configfile", str(ROOT / "config" / "config.yaml"))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-2000:]
    commands = [c for c in re.findall(r"^Shell command: (.*)$", out, re.M) if "evaluate.py" in c]
    pairs = {}
    for command in commands:
        spec = json.loads(shlex.split(command)[shlex.split(command).index("--spec") + 1])
        pairs.setdefault((spec["protocol"], spec["network_name"]), []).append((spec, command))
    assert set(pairs) == {("hard_label", "convnet-3"), ("soft_label", "convnet-3"), ("linear_probe", "probe-teacher")}
    probes = pairs[("linear_probe", "probe-teacher")]
    assert {spec["method"] for spec, _ in probes} == {"random", "dit", "mgd3", "d4m", "minimax", "ims3", "dmgd", "lgm",
                                                      "sfm"}
    assert len(probes) == 9 * 2   # methods x IPCs, each job training both repeats
    assert all(spec["repeats"] == [0, 1] for spec, _ in probes)
    assert all("--teacher results/digits/teachers/digits" in command for _, command in probes)
    assert all(spec["network"] == {"arch": "linear_probe", "encoder": "teacher"} for spec, _ in probes)
    assert not any("--teacher" in command for _, command in pairs[("hard_label", "convnet-3")])


def test_second_run_does_nothing(test_profile_run):
    _, workdir = test_profile_run
    proc = snakemake(workdir, "-n", "--configfile", str(ROOT / "config" / "test.yaml"))
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout + proc.stderr


def test_changing_a_sampler_parameter_reruns_exactly_the_sampling_jobs(test_profile_run):
    _, workdir = test_profile_run
    overlay = workdir / "overlay.yaml"
    overlay.write_text("sampler: {steps: 12}\n")  # nested overrides go in a later --configfile
    proc = snakemake(workdir, "-n", "--configfile", str(ROOT / "config" / "test.yaml"), str(overlay))
    jobs = job_stats(proc.stdout + proc.stderr, {"distill", "evaluate", "check_backbone", "measure", "train_backbone",
                                                 "train_teacher", "prepare_data", "real_features"})
    assert proc.returncode == 0
    # the sampling methods' synsets (dit, mgd3, d4m, minimax, dmgd; 2 IPCs each), their evaluations
    # (2 protocols) and metrics, and the check; not random's, not Minimax's fine-tuning, which does
    # not depend on the sampler, and not the cached real features
    assert jobs == {"distill": 10, "check_backbone": 1, "evaluate": 20, "measure": 10}


def test_changing_a_method_parameter_reruns_exactly_its_jobs(test_profile_run):
    _, workdir = test_profile_run
    overlay = workdir / "overlay-dmgd.yaml"
    overlay.write_text("methods: {dmgd: {method: dmgd, params: {semantic_window: [3, 8], guidance_window: [5, 8], "
                       "support_points: 4}}}\n")
    proc = snakemake(workdir, "-n", "--configfile", str(ROOT / "config" / "test.yaml"), str(overlay))
    assert proc.returncode == 0, proc.stderr[-2000:]
    jobs = job_stats(proc.stdout + proc.stderr)
    # dmgd's two sets (IPC 1, 2), their evaluations (2 protocols) and metrics, then the tables
    assert jobs == {"distill": 2, "evaluate": 4, "measure": 2, "tables": 1, "all": 1, "total": 10}
    distilled = re.findall(r"rule distill:\n(?:    .*\n)*?    output: (\S+)", proc.stdout + proc.stderr)
    assert sorted(set(distilled)) == [f"results/test/synsets/digits/dmgd/ipc{ipc}/seed0" for ipc in (1, 2)]


def test_paper_profile_dag_over_a_fake_imagenet(tmp_path):
    root = make_fake_imagenet(tmp_path / "imagenet", ["imagenet_woof"])
    proc = snakemake(tmp_path / "work", "-n", "--cores", "1", "--configfile",
                     str(ROOT / "config" / "paper" / "woof.yaml"), "--config", f"imagenet_root={root}")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-2000:]
    counts = job_stats(out, {"distill", "evaluate", "load_backbone", "encode_latents", "finetune_backbone", "measure",
                             "real_features"})
    # 8 methods x 4 IPCs; x 2 protocols (SGD and DMGD's AdamW) x 3 networks, each job training the 5
    # repeats together; one metrics
    # job per set against real features of two extractors; Minimax and ims3 fine-tune once per dataset
    # (hard_label_ims3 is defined but not listed in evaluation.protocols)
    assert counts == {"load_backbone": 1, "encode_latents": 1, "finetune_backbone": 2, "distill": 32,
                      "evaluate": 192, "measure": 32, "real_features": 2}


PAPER_PROFILES = sorted(p.name for p in (ROOT / "config" / "paper").glob("*.yaml"))
SUBSETS = ["imagenet_woof", "imagenet_nette", "imagenet_idc100", "imagenet_a", "imagenet_b", "imagenet_c",
           "imagenet_d", "imagenet_e"]


PROFILE_ROOTS = {"imagenet_1k.yaml": "1k", "linear_probe.yaml": "both"}   # the others: the subsets' root


@pytest.fixture(scope="module")
def fake_roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("fake_imagenet")
    both = make_fake_imagenet_1k(base / "both", count=900)   # plus IDC-100's 100 wnids: 1000 classes
    return {"subsets": make_fake_imagenet(base / "subsets", SUBSETS, train_per_class=2, val_per_class=1, size=8),
            "1k": make_fake_imagenet_1k(base / "1k"),
            "both": make_fake_imagenet(both, ["imagenet_idc100"], train_per_class=1, val_per_class=1, size=8)}


def job_stats(out: str, rules: set[str] | None = None) -> dict[str, int]:
    """Snakemake's "Job stats" table of a (dry) run: jobs per rule (with its ``total`` row), or
    those of ``rules`` only."""
    assert "Job stats:" in out, out[-2000:]
    counts = {}
    for line in out[out.index("Job stats:"):].splitlines()[3:]:
        rule, count = line.split()
        counts[rule] = int(count)
        if rule == "total":
            return counts if rules is None else {r: n for r, n in counts.items() if r in rules}
    raise AssertionError(f"no job stats total in {out[-2000:]}")


def dry_run_counts(workdir: Path, profile: str, root: Path) -> dict[str, int]:
    proc = snakemake(workdir, "-n", "--cores", "1", "--configfile", str(ROOT / "config" / "paper" / profile),
                     "--config", f"imagenet_root={root}")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-2000:]
    return job_stats(out)


@pytest.mark.parametrize("profile", PAPER_PROFILES)
def test_every_paper_profile_dry_runs_over_a_fake_imagenet(profile, fake_roots, tmp_path):
    root = fake_roots[PROFILE_ROOTS.get(profile, "subsets")]
    counts = dry_run_counts(tmp_path, profile, root)
    assert counts["total"] == sum(v for k, v in counts.items() if k != "total")
    assert counts.get("distill", 0) > 0 and "train_backbone" not in counts   # DiT-XL/2 is loaded, not trained


def test_paper_profile_missing_class_folder_fails_in_one_line(tmp_path):
    root = make_fake_imagenet(tmp_path / "imagenet", ["imagenet_woof"])
    missing = min((root / "val").iterdir())
    for image in missing.iterdir():
        image.unlink()
    missing.rmdir()
    proc = snakemake(tmp_path / "work", "-n", "--cores", "1", "--configfile",
                     str(ROOT / "config" / "paper" / "woof.yaml"), "--config", f"imagenet_root={root}")
    last = (proc.stdout + proc.stderr).strip().splitlines()[-1]
    assert proc.returncode != 0 and last.startswith("config error: missing class folder") and missing.name in last
