"""GPU slots (evaluation/core/gpu_slots.py) and the SLURM profile (workflow/profiles/slurm/).

No GPU is needed: the wrapped commands only report the CUDA_VISIBLE_DEVICES they were given.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from evaluation.core.gpu_slots import slot_table

ROOT = Path(__file__).resolve().parents[1]
SLURM_PROFILE = ROOT / "workflow" / "profiles" / "slurm"
# A stand-in GPU job: sleeps, then prints the GPU it was given, its start and end time and its PID.
JOB = ("import os, sys, time; t = time.time(); time.sleep(float(sys.argv[1])); "
       "print(os.environ.get('CUDA_VISIBLE_DEVICES'), t, time.time(), os.getpid())")


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This interpreter first on PATH, no GPU settings inherited, lock files under tmp_path."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("CUDA_VISIBLE_DEVICES", "DMGD_GPUS", "DMGD_GPU_SLOTS", "DMGD_GPU_SLOT_DIR")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DMGD_GPU_SLOT_DIR"] = str(tmp_path / "locks")
    return {**env, **extra}


def wrapped(*options: str, command: list[str] | None = None, seconds: float = 0.0) -> list[str]:
    command = command or [sys.executable, "-c", JOB, str(seconds)]
    return [sys.executable, "-m", "evaluation.core.gpu_slots", "--poll", "0.05", *options, "--", *command]


def start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def report(proc: subprocess.Popen) -> SimpleNamespace:
    """What a finished stand-in job printed."""
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    gpu, t0, t1, pid = out.split()
    return SimpleNamespace(gpu=gpu, start=float(t0), end=float(t1), pid=int(pid))


def test_slots_go_round_robin_over_the_gpus():
    assert slot_table(3, ["0", "1", "2"]) == [("0", "gpu0.slot0.lock"), ("1", "gpu1.slot0.lock"),
                                              ("2", "gpu2.slot0.lock")]
    assert [gpu for gpu, _ in slot_table(4, ["5", "7"])] == ["5", "7", "5", "7"]
    assert len({name for _, name in slot_table(4, ["5", "7"])}) == 4


def test_concurrent_jobs_get_distinct_gpus_and_one_more_waits(tmp_path):
    env = clean_env(tmp_path)
    holders = [start(wrapped("--slots", "3", seconds=1.5), env) for _ in range(3)]
    taken = [p.stderr.readline() for p in holders]  # each prints its slot line once it holds the lock
    assert all(line.startswith("gpu_slots: slot ") for line in taken), taken
    waiter = start(wrapped("--slots", "3"), env)
    jobs = [report(p) for p in holders]
    last = report(waiter)
    assert sorted(job.gpu for job in jobs) == ["0", "1", "2"]  # the three overlap: all distinct
    assert last.gpu in {"0", "1", "2"}
    assert last.start >= min(job.end for job in jobs)  # the fourth ran only once a slot was free
    # exec, not a child process: the command is the wrapper's PID, so signals reach it directly
    assert [job.pid for job in jobs] == [p.pid for p in holders]


def test_slot_is_free_again_after_its_job_is_killed(tmp_path):
    env = clean_env(tmp_path)
    holder = start(wrapped("--slots", "1", seconds=60), env)
    assert "CUDA_VISIBLE_DEVICES=0" in holder.stderr.readline()
    waiter = start(wrapped("--slots", "1"), env)
    time.sleep(0.5)
    assert waiter.poll() is None, "the second job ran while the only slot was taken"
    holder.send_signal(signal.SIGKILL)
    assert holder.wait(timeout=10) == -signal.SIGKILL
    assert report(waiter).gpu == "0"


@pytest.mark.parametrize("slots", ["1", "0"])
@pytest.mark.parametrize("code, expected", [("raise SystemExit(7)", 7),
                                            ("import os, signal; os.kill(os.getpid(), signal.SIGTERM)",
                                             -signal.SIGTERM)])
def test_exit_status_is_the_commands(tmp_path, slots, code, expected):
    proc = subprocess.run(wrapped("--slots", slots, command=[sys.executable, "-c", code]),
                          env=clean_env(tmp_path), cwd=ROOT, check=False, capture_output=True, text=True, timeout=30)
    assert proc.returncode == expected, proc.stderr


@pytest.mark.parametrize("assigned", ["3", "GPU-8932f937-d72c-4106-c12f-20bd9faed9f6", ""])
def test_gpus_assigned_by_a_scheduler_pass_through_untouched(tmp_path, assigned):
    proc = start(wrapped("--slots", "2"), clean_env(tmp_path, CUDA_VISIBLE_DEVICES=assigned))
    out, err = proc.communicate(timeout=30)
    assert out.split(" ")[0] == assigned  # printed as is, even when set empty (no GPU)
    assert "already set" in err and not (tmp_path / "locks").exists()


def test_settings_from_the_environment(tmp_path):
    env = clean_env(tmp_path, DMGD_GPU_SLOTS="2", DMGD_GPUS="4,6")
    proc = start([sys.executable, "-m", "evaluation.core.gpu_slots", "--", sys.executable, "-c", JOB, "0"], env)
    assert report(proc).gpu == "4"
    assert (tmp_path / "locks" / "gpu4.slot0.lock").exists()


@pytest.mark.parametrize("options, env", [
    (["--slots", "-1"], {}),
    (["--slots", "x"], {}),
    (["--slots", "2", "--gpus", "0,,1"], {}),
    (["--slots", "2", "--gpus", "0,0"], {}),
    (["--slots", "2", "--poll", "0"], {}),
    (["--bogus"], {}),
    ([], {"DMGD_GPU_SLOTS": "four"}),
])
def test_bad_arguments_end_in_one_line(tmp_path, options, env):
    proc = subprocess.run([sys.executable, "-m", "evaluation.core.gpu_slots", *options, "--", "true"],
                          env=clean_env(tmp_path, **env), cwd=ROOT, check=False, capture_output=True, text=True)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("gpu_slots: error:")


@pytest.mark.parametrize("argv, status", [(["--slots", "1"], 2), (["--slots", "1", "--"], 2),
                                          (["--slots", "1", "--", "no-such-command-x"], 127)])
def test_a_missing_command_ends_in_one_line(tmp_path, argv, status):
    proc = subprocess.run([sys.executable, "-m", "evaluation.core.gpu_slots", *argv], env=clean_env(tmp_path),
                          cwd=ROOT, check=False, capture_output=True, text=True)
    assert proc.returncode == status and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_snakemake_local_jobs_share_gpus_through_the_wrapper(tmp_path):
    """The wiring the Snakefile uses: a fixed command prefix, the slot count from --resources gpu=N."""
    (tmp_path / "job.py").write_text(JOB)
    (tmp_path / "Snakefile").write_text('''
import os
GPU_WRAP = "python -m evaluation.core.gpu_slots -- "
_gpu_limit = workflow.global_resources.get("gpu")
os.environ.setdefault("DMGD_GPU_SLOTS", str(getattr(_gpu_limit, "value", _gpu_limit) or 0))

rule all:
    input: expand("job{i}.txt", i=range(4))

rule job:
    output: "job{i}.txt"
    resources: gpu=1
    shell: GPU_WRAP + "python job.py 1.0 > {output}"
''')
    env = clean_env(tmp_path, XDG_CACHE_HOME=str(tmp_path / ".cache"))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(tmp_path / "Snakefile"), "-d",
                           str(tmp_path), "--cores", "4", "--resources", "gpu=2"],
                          env=env, check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = [SimpleNamespace(gpu=g, start=float(a), end=float(b)) for g, a, b, _ in
            (path.read_text().split() for path in tmp_path.glob("job*.txt"))]
    assert len(jobs) == 4 and {job.gpu for job in jobs} <= {"0", "1"}
    overlapping = [(a, b) for i, a in enumerate(jobs) for b in jobs[i + 1:]
                   if a.start < b.end and b.start < a.end]
    assert overlapping, "no two jobs ran at once"
    assert all(a.gpu != b.gpu for a, b in overlapping), "two jobs that ran at once shared a GPU"


# ---- SLURM profile ---------------------------------------------------------------------------


def test_slurm_profile():
    """The profile's keys are options of this snakemake (a dry run with the plugin checks them all)."""
    profile = yaml.safe_load((SLURM_PROFILE / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    defaults = profile["default-resources"]
    assert {"slurm_account", "slurm_partition", "runtime", "mem_mb"} <= set(defaults)
    # a default GPU request would reach CPU jobs too (gpu_model alone makes the plugin ask for GPUs)
    assert not {"gpu", "gpus", "gres", "gpu_model"} & set(defaults)
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:  # without the plugin, check the keys against `snakemake --help`
        help_text = subprocess.run([sys.executable, "-m", "snakemake", "--help"], check=True,
                                   capture_output=True, text=True, timeout=120).stdout
        unknown = [key for key in profile
                   if not re.search(rf"(?<![\w-])--{re.escape(key)}(?![\w-])", help_text)]
        assert not unknown, f"not options of this snakemake: {unknown}"


def test_slurm_plugin_turns_the_gpu_resource_into_a_gpu_request():
    utils = pytest.importorskip("snakemake_executor_plugin_slurm.utils")

    class Resources(dict):
        __getattr__ = dict.__getitem__

    assert utils.set_gres_string(SimpleNamespace(resources=Resources(gpu=1))).strip() == "--gpus=1"
    assert utils.set_gres_string(SimpleNamespace(resources=Resources(gpu=0))) == ""


def test_slurm_profile_dry_run(tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    (tmp_path / "Snakefile").write_text('rule gpu_job:\n    output: "a"\n    resources: gpu=1\n'
                                        '    shell: "touch {output}"\n')
    env = clean_env(tmp_path, XDG_CACHE_HOME=str(tmp_path / ".cache"), DMGD_SLURM_ACCOUNT="acct",
                    DMGD_SLURM_PARTITION="all")
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(tmp_path / "Snakefile"), "-d",
                           str(tmp_path), "--profile", str(SLURM_PROFILE), "-n"],
                          env=env, check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]  # an unknown profile key fails here
    # `all` would be Python's builtin without the profile's inner quotes
    assert "slurm_account=acct, slurm_partition=all" in proc.stdout + proc.stderr
