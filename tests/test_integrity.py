"""Integrity of stored results (issue 15, items 1-2): every artifact's manifest records a content
digest that its readers verify, the workflow re-runs exactly the jobs whose outputs no longer match,
an external set is keyed by its content, and a failed rebuild leaves the previous folder in place."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import torch

from evaluation.core import artifacts
from evaluation.core.artifacts import (IntegrityError, atomic_path, load_torch_record, read_json_object, seal,
                                  tree_digest, verify_folder, write_json_atomic)
from evaluation.data.synsets import write_synset
from tests.workflow_run import ROOT, script_command, snakemake

CHANGED = "(changed or truncated since the distill job wrote it); delete it and re-run snakemake (rule distill)"


def made_set(folder: Path) -> Path:
    """A two-class synthetic set of 2x2 images written as the distill job writes one."""
    images = torch.arange(2 * 3 * 2 * 2, dtype=torch.uint8).reshape(2, 3, 2, 2)
    write_synset(folder, images, torch.tensor([0, 1]), ("zero", "one"), {"config": {"method": "m"}, "seed": 0})
    return folder


def refusal(folder: Path) -> str:
    artifacts._verified.clear()
    with pytest.raises(IntegrityError) as err:
        verify_folder(folder, "distill")
    return str(err.value)


# ----------------------------------------------------------------------------- folders

def test_a_folder_manifest_records_each_files_digest_and_verifies(tmp_path):
    folder = made_set(tmp_path / "seed0")
    record = verify_folder(folder, "distill")
    assert set(record["files"]) == {"00000/0000.png", "00001/0000.png", "labels.csv"}
    assert record["files"]["labels.csv"] == artifacts.file_digest(folder / "labels.csv")
    assert len(record["digest"]) == 64


@pytest.mark.parametrize("corrupt, problem", [
    (lambda f: (f / "00001/0000.png").write_bytes((f / "00001/0000.png").read_bytes()[:20]),
     f"00001/0000.png does not match its manifest digest {CHANGED}"),
    (lambda f: (f / "00000/0000.png").unlink(),
     "00000/0000.png is missing (deleted since the distill job wrote it); delete it and re-run snakemake (rule distill)"),
    (lambda f: (f / "00000/0001.png").write_bytes(b"x"),
     "00000/0001.png is not in its manifest (added since the distill job wrote it); delete it and re-run snakemake "
     "(rule distill)"),
    (lambda f: (f / "manifest.json").write_text((f / "manifest.json").read_text()[:50]),
     f"manifest.json is not valid JSON {CHANGED}"),
])
def test_a_changed_folder_is_refused_in_one_line_naming_the_file_and_the_rule(tmp_path, corrupt, problem):
    folder = made_set(tmp_path / "seed0")
    corrupt(folder)
    assert refusal(folder) == f"{folder}: {problem}"


def test_an_edited_folder_manifest_is_refused(tmp_path):
    folder = made_set(tmp_path / "seed0")
    record = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**record, "seed": 1}))
    assert refusal(folder) == f"{folder / 'manifest.json'}: does not match its manifest digest {CHANGED}"


def test_a_folder_written_before_digests_or_by_hand_is_read_as_before(tmp_path):
    folder = tmp_path / "legacy"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    assert verify_folder(folder, "distill") is None
    (folder / "manifest.json").write_text(json.dumps({"seed": 0}))
    assert verify_folder(folder, "distill") == {"seed": 0}
    with pytest.raises(IntegrityError, match="manifest.json is missing"):
        verify_folder(tmp_path / "empty", "distill", required=True)


def test_the_tree_digest_keys_a_folder_by_content_not_by_name_or_time(tmp_path):
    a, b = made_set(tmp_path / "a"), made_set(tmp_path / "b")
    assert tree_digest(a) == tree_digest(b)
    (b / "labels.csv").write_text((b / "labels.csv").read_text() + "\n")
    assert tree_digest(a) != tree_digest(b)


# ----------------------------------------------------------------------------- records

def test_a_json_record_holds_the_digest_of_its_content_and_its_reader_checks_it(tmp_path):
    path = tmp_path / "rep0.json"
    record = seal({"best_top1": 51.5, "curve": [(1, 2.0)], "manifest": {"seed": 0, "config": {3: "x"}}})
    write_json_atomic(path, record)
    assert read_json_object(path, "training", "run results", rule="evaluate")["best_top1"] == 51.5
    path.write_text(path.read_text().replace("51.5", "91.5"))
    with pytest.raises(IntegrityError) as err:
        read_json_object(path, "training", "run results", rule="evaluate")
    assert str(err.value) == (f"{path}: does not match its manifest digest (changed or truncated since the evaluate "
                              f"job wrote it); delete it and re-run snakemake (rule evaluate)")
    path.write_text(path.read_text()[:40])
    with pytest.raises(IntegrityError, match=r"not valid JSON .*; delete it and re-run snakemake \(rule evaluate\)"):
        read_json_object(path, "training", "run results", rule="evaluate")


def test_a_torch_record_holds_the_digest_of_its_tensors_and_its_reader_checks_it(tmp_path):
    path = tmp_path / "tiny.pt"
    torch.save(seal({"mean": torch.randn(3, 4), "labels": torch.arange(3), "manifest": {"seed": None}}), path)
    assert load_torch_record(path, "encode_latents")["labels"].tolist() == [0, 1, 2]
    stale = torch.load(path)
    stale["mean"][0, 0] += 1
    torch.save(stale, path)
    with pytest.raises(IntegrityError, match=r"tiny.pt: does not match its manifest digest .*\(rule encode_latents\)$"):
        load_torch_record(path, "encode_latents")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(IntegrityError, match=r"tiny.pt: not a readable torch file .*\(rule encode_latents\)$"):
        load_torch_record(path, "encode_latents")


def test_an_entry_point_refuses_a_changed_input_in_one_line(tmp_path):
    chunk = made_set(tmp_path / "0-2")
    (chunk / "00001/0000.png").write_bytes(b"")
    proc = subprocess.run(script_command("merge_chunks", "--chunks", str(chunk), "--dataset", "digits",
                                         "--out", str(tmp_path / "set")), capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"merge_chunks.py: error: {chunk}: 00001/0000.png does not match its manifest digest {CHANGED}")


# ----------------------------------------------------------------------------- replace, never delete first

def test_a_failed_swap_puts_the_previous_folder_back(tmp_path, monkeypatch):
    out = made_set(tmp_path / "seed0")
    before = tree_digest(out)
    real_replace = os.replace

    def failing(src, dst):
        if Path(dst) == out and Path(src).name == out.name:   # renaming the new folder in
            raise OSError(28, "No space left on device", str(dst))
        real_replace(src, dst)
    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError), atomic_path(out) as tmp:
        tmp.mkdir()
        (tmp / "new.txt").write_text("new")
    assert tree_digest(out) == before and not any(p.name.startswith(".seed0.") for p in tmp_path.iterdir())


def test_a_swap_keeps_the_previous_folder_whole_until_the_new_one_is_in(tmp_path, monkeypatch):
    out = made_set(tmp_path / "seed0")
    seen = []
    real_replace = os.replace

    def watching(src, dst):
        seen.append((Path(src).name, out.exists() and (out / "labels.csv").exists()))
        real_replace(src, dst)
    monkeypatch.setattr(os, "replace", watching)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        (tmp / "new.txt").write_text("new")
    assert seen[0] == ("seed0", True)   # the old folder is moved aside whole, not removed file by file
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]


# ----------------------------------------------------------------------------- the workflow

def jobs_of(output: str) -> Counter:
    """Job counts of Snakemake's "Job stats" table."""
    table = output.split("Job stats:")[1].split("\n\n")[0]
    return Counter({m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)
                    if m.group(1) != "total"})


@pytest.fixture
def finished(test_profile_run, tmp_path):
    """A copy of the finished test profile's work directory (modification times kept), to corrupt."""
    _, workdir = test_profile_run
    copy = tmp_path / "work"
    shutil.copytree(workdir, copy, symlinks=True, ignore=shutil.ignore_patterns(".cache"))
    return copy, copy / "results" / "test"


def test_corrupt_outputs_re_run_exactly_their_jobs_and_dependants(finished):
    workdir, results = finished
    sets = results / "synsets" / "digits"
    (sets / "dit/ipc1/seed0/manifest.json").write_text((sets / "dit/ipc1/seed0/manifest.json").read_text()[:100])
    (sets / "random/ipc2/seed0/00003/0001.png").unlink()
    (results / "metrics/digits/dmgd/ipc1/seed0.json").unlink()
    proc = snakemake(workdir, "--cores", "2", "--configfile", str(ROOT / "config" / "test.yaml"))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "integrity: results/test/synsets/digits/dit/ipc1/seed0: manifest.json is not valid JSON" in proc.stderr
    assert "random/ipc2/seed0: 00003/0001.png is missing (deleted since the distill job wrote it); rule distill " \
           "re-runs it" in proc.stderr
    assert jobs_of(proc.stdout + proc.stderr) == {"distill": 2, "evaluate": 4, "measure": 3, "tables": 1, "all": 1}
    again = snakemake(workdir, "-n", "--cores", "1", "--configfile", str(ROOT / "config" / "test.yaml"))
    assert "Nothing to be done" in again.stdout + again.stderr and "integrity:" not in again.stderr


@pytest.mark.parametrize("artifact, weights, rule, expected", [
    ("teachers/digits", "model.pt", "train_teacher",
     {"train_teacher": 1, "check_backbone": 1, "class_statistics": 1, "distill": 4, "evaluate": 22, "real_features": 1,
      "measure": 18, "tables": 1, "all": 1}),
    ("backbones/tiny", "transformer/diffusion_pytorch_model.safetensors", "train_backbone",
     {"train_backbone": 1, "check_backbone": 1, "distill": 10, "encode_latents": 1, "evaluate": 20,
      "finetune_backbone": 1, "measure": 10, "tables": 1, "all": 1}),
])
def test_a_truncated_weight_file_re_runs_its_job_and_everything_downstream(finished, artifact, weights, rule,
                                                                             expected):
    workdir, results = finished
    path = results / artifact / weights
    path.write_bytes(path.read_bytes()[:1000])
    proc = snakemake(workdir, "-n", "--cores", "1", "--configfile", str(ROOT / "config" / "test.yaml"))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert (f"integrity: results/test/{artifact}: {weights} does not match its manifest digest (changed or truncated "
            f"since the {rule} job wrote it); rule {rule} re-runs it") in proc.stderr
    # the teacher: soft-label evaluations, metrics, and lgm/sfm through the teacher stand-in (sets, SFM's class
    # statistics, their hard-label evaluations); the backbone: the diffusion methods
    assert jobs_of(proc.stdout + proc.stderr) == expected


def test_a_failed_forced_tables_rebuild_keeps_the_previous_tables_and_figures(finished):
    from evaluation.report.tables import REQUIRED_KEYS

    workdir, results = finished
    before = {part: tree_digest(results / part) for part in ("tables", "figures")}
    record_path = next((results / "eval").rglob("*.json"))
    record = json.loads(record_path.read_text())
    del record["manifest"]["digest"], record[next(iter(REQUIRED_KEYS))]   # a record that passes the start check
    record_path.write_text(json.dumps(record))
    proc = snakemake(workdir, "--forcerun", "tables", "--cores", "1", "--configfile", str(ROOT / "config" / "test.yaml"))
    assert proc.returncode != 0 and "Error in rule tables" in proc.stderr
    last = (workdir / "logs" / "test" / "tables.log").read_text().strip().splitlines()[-1]
    assert last.startswith("tables.py: error: ") and "missing required key" in last
    assert {part: tree_digest(results / part) for part in ("tables", "figures")} == before
    assert (results / "tables" / "manifest.json").is_file() and (results / "figures" / "manifest.json").is_file()


def test_an_external_set_changed_in_place_re_runs_its_jobs(tmp_path):
    """The job's spec holds the folder's content digest, so Snakemake's params trigger fires."""
    png = (made_set(tmp_path / "pngs") / "00000/0000.png").read_bytes()
    external = tmp_path / "external"
    for label in range(10):
        (external / str(label)).mkdir(parents=True)
        (external / str(label) / "a.png").write_bytes(png)
    config = tmp_path / "ext.yaml"
    config.write_text(json.dumps({"profile": "ext", "datasets": ["digits"], "ipcs": [1], "seeds": [0],
                                  "methods": {"ext": {"method": "external", "params": {"path": str(external)}}},
                                  "evaluation": {"enabled": False}, "metrics": {"enabled": False},
                                  "backbone": {"check": False}}))
    target = "results/ext/synsets/digits/ext/ipc1/seed0"
    first = snakemake(tmp_path, target, "--cores", "1", "--configfile", str(config))
    assert first.returncode == 0, first.stderr[-3000:]
    same = snakemake(tmp_path, target, "-n", "--cores", "1", "--configfile", str(config))
    assert "Nothing to be done" in same.stdout + same.stderr
    (external / "3" / "a.png").write_bytes(png[:-1] + b"\0")
    changed = snakemake(tmp_path, target, "-n", "--cores", "1", "--configfile", str(config))
    assert jobs_of(changed.stdout + changed.stderr) == {"distill": 1}
    assert "params" in changed.stdout + changed.stderr
