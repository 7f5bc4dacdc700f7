"""Resume after SIGKILL and determinism across runs (DESIGN.md, "Standards every change keeps").

The test profile is killed with SIGKILL at three points in turn, each time started again after
``snakemake --unlock``, and the finished run is compared with the uninterrupted one
(tests/conftest.py::test_profile_run): every synthetic set, backbone, result and table is equal,
artifacts finished before a kill are never rewritten, and the jobs caught mid-way resume from their
checkpoints. The kill points: while the backbone trains (its checkpoint exists, the backbone does
not), mid-distillation (DMGD's IPC-2 set is computed and not written), mid-evaluation (an
evaluation of that set has a checkpoint and no result). So as never to race a job, the job stops
itself there (SIGSTOP, tests/freeze_hook/sitecustomize.py); the test then checks the state on disk
and SIGKILLs the run's whole process group.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from base64 import urlsafe_b64decode
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from tests.workflow_run import TEST_PROFILE, snakemake, snakemake_command, snakemake_env

FREEZE_HOOK = Path(__file__).resolve().parent / "freeze_hook"
FROZEN = "freeze_hook: stopping"
SET = "digits/dmgd/ipc2/seed0"
RUN_LIMIT_S = 900


@dataclass(frozen=True)
class Job:
    log: str                 # under logs/test
    output: str              # under results/test
    checkpoint: str | None   # under results/test; None: the job does not checkpoint
    resumed_at: str | None   # the position its resumed run logs


@dataclass(frozen=True)
class KillPoint:
    name: str
    freeze: str              # DMGD_FREEZE of tests/freeze_hook: which call stops which job
    jobs: tuple[Job, ...]    # the jobs that may stop there; the run is killed when one has


def evaluation(protocol: str) -> Job:
    output = f"eval/{SET}/{protocol}-convnet-2-rep0.json"
    return Job(f"evaluate/digits/dmgd/ipc2-seed0-{protocol}-convnet-2.log", output, output + ".ckpt", "epoch 1")


KILL_POINTS = [
    # entering the 30th checkpoint save: the 29th (20 VAE steps, 9 DiT steps) is on disk
    KillPoint("backbone training", "evaluation.core.checkpoint:Checkpoint.save#30@train_backbone.py",
              (Job("train_backbone.log", "backbones/tiny", "backbones/tiny.ckpt", "dit step 9"),)),
    KillPoint("distillation", f"evaluation.data.synsets:write_synset#1@synsets/{SET}",
              (Job("distill/digits/dmgd/ipc2-seed0.log", f"synsets/{SET}", None, None),)),
    # entering the second checkpoint save: the first epoch's is on disk
    KillPoint("evaluation", f"evaluation.core.checkpoint:Checkpoint.save#2@synsets/{SET}",
              (evaluation("hard_label"), evaluation("soft_label"))),
]


def live_members(group: int) -> list[int]:
    """Processes of process group ``group`` that are not zombies."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def frozen_jobs(workdir: Path, point: KillPoint) -> list[Job]:
    logs = workdir / "logs" / "test"
    return [job for job in point.jobs if (logs / job.log).is_file() and FROZEN in (logs / job.log).read_text()]


def run_until_frozen_then_kill(workdir: Path, point: KillPoint) -> list[Job]:
    """Run the profile until a job of ``point`` stops itself, then SIGKILL the whole run; returns the
    stopped jobs. A run that ends or stalls first fails the test: the kill point was missed."""
    assert not frozen_jobs(workdir, point), f"{point.name}: a log shows a freeze before the run"
    env = snakemake_env(workdir, PYTHONPATH=os.pathsep.join(filter(None, [str(FREEZE_HOOK),
                                                                          os.environ.get("PYTHONPATH")])),
                        DMGD_FREEZE=point.freeze)
    with open(workdir / f"run-{point.name.replace(' ', '_')}.log", "w") as log:
        proc = subprocess.Popen(snakemake_command(workdir, "--cores", "2", "--configfile", str(TEST_PROFILE)),
                                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + RUN_LIMIT_S
    try:
        while not (frozen := frozen_jobs(workdir, point)):
            assert proc.poll() is None, f"kill point '{point.name}' missed: the run ended (exit {proc.returncode})"
            assert time.monotonic() < deadline, f"kill point '{point.name}' not reached in {RUN_LIMIT_S} s"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    while live_members(proc.pid):   # orphaned job processes die with the group
        time.sleep(0.1)
    return frozen


def file_mtimes(results: Path) -> dict[Path, int]:
    """Modification times of the committed artifacts' files: not checkpoints, and not the temporary
    folders (dot names) that a killed job leaves."""
    return {path: path.stat().st_mtime_ns for path in results.rglob("*")
            if path.is_file() and path.suffix != ".ckpt"
            and not any(part.startswith(".") for part in path.relative_to(results).parts)}


def incomplete_outputs(workdir: Path) -> set[Path]:
    """The outputs that Snakemake had not yet recorded as finished when it was killed: its markers
    in ``.snakemake/incomplete/``, each an output path in URL-safe base64 split into folder names
    ('@' before every part but the last). A job whose output was renamed into place in the instant
    before the kill is among them, and Snakemake rightly runs it again."""
    markers = workdir / ".snakemake" / "incomplete"
    outputs = set()
    for marker in (m for m in markers.rglob("*") if m.is_file()) if markers.is_dir() else ():
        encoded = "".join(part.lstrip("@") for part in marker.relative_to(markers).parts)
        try:
            outputs.add((workdir / urlsafe_b64decode(encoded).decode()).resolve())
        except ValueError:   # Snakemake's own bookkeeping files (e.g. migration_underway)
            continue
    return outputs


def finished_mtimes(workdir: Path, results: Path) -> dict[Path, int]:
    """:func:`file_mtimes` of the artifacts Snakemake recorded as finished."""
    unfinished = incomplete_outputs(workdir)
    return {path: mtime for path, mtime in file_mtimes(results).items()
            if not {path.resolve(), *path.resolve().parents} & unfinished}


def without_manifest(path: Path) -> dict:
    record = json.loads(path.read_text())
    record.pop("manifest", None)
    return record


def same_tensors(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_tensors(a[k], b[k]) for k in a if k != "manifest")
    return a == b


def assert_same_results(results: Path, reference: Path) -> None:
    """Same bytes of every synthetic set (PNGs, labels.csv) and backbone weight file, same tensors of
    every torch artifact, same numbers of every result record, same tables and figures; provenance
    (manifests, code version, wall times, the costs table) may differ."""
    names = sorted(str(p.relative_to(reference)) for p in file_mtimes(reference)
                   if p.relative_to(reference).parts[0] != "benchmarks")
    assert names == sorted(str(p.relative_to(results)) for p in file_mtimes(results)
                           if p.relative_to(results).parts[0] != "benchmarks")
    checked = {"synsets": 0, "eval": 0, "metrics": 0, "backbones": 0}
    for name in names:
        ours, theirs = results / name, reference / name
        top = Path(name).parts[0]
        if ours.name == "manifest.json" or ours.name.startswith("costs."):
            continue
        if ours.suffix == ".json":
            assert without_manifest(ours) == without_manifest(theirs), name
        elif ours.suffix == ".pt":
            assert same_tensors(torch.load(ours, weights_only=False), torch.load(theirs, weights_only=False)), name
        elif ours.name == "runs.csv":
            frame, expected = pd.read_csv(ours), pd.read_csv(theirs)
            provenance = [c for c in frame.columns if c.startswith("manifest_")]
            pd.testing.assert_frame_equal(frame.drop(columns=provenance), expected.drop(columns=provenance))
        else:
            assert ours.read_bytes() == theirs.read_bytes(), name
        checked[top] = checked.get(top, 0) + 1
    # 18 sets (9 methods x 2 IPCs) x (20 or 10 PNGs + labels.csv); 36 evaluations; 18 metrics; tiny and
    # Minimax's weights
    assert checked["synsets"] == 18 * 16 and checked["eval"] == 36 and checked["metrics"] == 18
    assert checked["backbones"] >= 4


def test_killed_runs_resume_to_the_uninterrupted_results(test_profile_run, tmp_path):
    reference, _ = test_profile_run
    workdir = tmp_path / "work"
    workdir.mkdir()
    results, logs = workdir / "results" / "test", workdir / "logs" / "test"
    started, finished, resumed = time.monotonic(), [], []
    for point in KILL_POINTS:
        frozen = run_until_frozen_then_kill(workdir, point)
        for job in frozen:
            assert not (results / job.output).exists(), f"{point.name}: {job.output} written before the kill"
            if job.checkpoint is not None:
                assert (results / job.checkpoint).is_file(), f"{point.name}: no checkpoint {job.checkpoint}"
                resumed.append(job)
        finished.append(finished_mtimes(workdir, results))
        unlock = snakemake(workdir, "--unlock", "--configfile", str(TEST_PROFILE))  # the one step after a kill
        assert unlock.returncode == 0, unlock.stderr[-2000:]
    proc = snakemake(workdir, "--cores", "2", "--configfile", str(TEST_PROFILE))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    print(f"killed three times and finished in {time.monotonic() - started:.0f} s")

    for job in resumed:   # the jobs caught mid-way went on from their checkpoints, which are gone
        assert f"resumed from checkpoint at {job.resumed_at}" in (logs / job.log).read_text(), job.log
        assert not (results / job.checkpoint).exists()
    assert resumed[0].log == "train_backbone.log" and len(resumed) >= 2   # and an evaluation
    now = file_mtimes(results)
    for before in finished:   # nothing finished before a kill was computed again
        assert {path: now.get(path) for path in before} == before
    assert len(finished[0]) < len(finished[1]) < len(finished[2]) < len(now)
    assert_same_results(results, reference)
