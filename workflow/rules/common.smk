# Config validation (before any job) and the helpers that turn config into targets and specs.
import json
import os
import shlex
import sys

from evaluation.artifacts import SMOKE_ENV
from evaluation.config import prepare_config
from evaluation.datasets import dataset_info
from methods.chunks import class_chunks
from methods.registry import get_method

try:
    SMOKE_REDUCTIONS = prepare_config(config)
except ValueError as err:  # one line naming the value and the fix, before any job
    sys.exit(f"config error: {err}")
# A smoke run (evaluation/smoke.py) says what it shrank, and its jobs write it into their manifests.
for line in SMOKE_REDUCTIONS:
    print(f"smoke run: {line}", file=sys.stderr)
if SMOKE_REDUCTIONS:
    os.environ[SMOKE_ENV] = json.dumps(SMOKE_REDUCTIONS)

RESULTS = f"results/{config['profile']}"
LOGS = f"logs/{config['profile']}"
BENCH = f"{RESULTS}/benchmarks"
DEVICE = config["device"]
GPU = 0 if DEVICE == "cpu" else 1
BACKBONE = f"{RESULTS}/backbones/{config['backbone']['name']}"
ENV = "../../environment.yml"  # conda env of every rule (relative to this folder)
# A local run gives each GPU job a GPU of its own (evaluation/gpu_slots.py), one slot per GPU of
# --resources gpu=N. The count reaches the jobs through the environment, not the command line, so
# that changing it re-runs nothing (Snakemake re-runs a job whose shell command changed).
GPU_WRAP = "python -m evaluation.gpu_slots -- " if GPU else ""
_gpu_limit = workflow.global_resources.get("gpu")
os.environ.setdefault("DMGD_GPU_SLOTS", str(getattr(_gpu_limit, "value", _gpu_limit) or 0))
# The checkpoint cadence of the long jobs (evaluation/checkpoint.py) travels the same way, so that
# changing it re-runs nothing.
os.environ.update(DMGD_CHECKPOINT_INTERVAL_S=str(config["checkpoint_interval_s"]))


wildcard_constraints:
    extractor="[A-Za-z0-9_]+",
    split="train|val|test",
    dataset="[A-Za-z0-9_.-]+",
    method="[A-Za-z0-9_.-]+",
    network="[A-Za-z0-9_.-]+",
    protocol="[A-Za-z0-9_]+",
    ipc=r"\d+",
    seed=r"\d+",
    repeat=r"\d+",
    chunk=r"\d+-\d+",


def as_json(obj):
    return json.dumps(obj, sort_keys=True)


def performance_options():
    """The options of config 'performance' that are on: merged into the sampler and protocol specs
    only then, so that with the defaults every job's command line (and result) stays as it was."""
    return {key: True for key, on in config["performance"].items() if on}


def method_spec(wildcards):
    """The config slice a distillation job depends on (a change re-runs exactly these jobs)."""
    variant = config["methods"][wildcards.method]
    spec = {"method": variant["method"], "params": variant["params"], "dataset": wildcards.dataset,
            "data": config["data"]}
    if get_method(variant["method"]).needs_backbone:
        spec["sampler"] = {**config["sampler"], **variant.get("sampler", {}), **performance_options()}
    return as_json(spec)


def distill_inputs(wildcards):
    inputs = {"data": f"{RESULTS}/data/{wildcards.dataset}"}
    method = get_method(config["methods"][wildcards.method]["method"])
    if method.finetune:
        inputs["backbone"] = f"{BACKBONE}-finetuned/{wildcards.method}/{wildcards.dataset}"
    elif method.needs_backbone:
        inputs["backbone"] = BACKBONE
    if method.needs_latents:
        inputs["latents"] = f"{RESULTS}/latents/{wildcards.dataset}/{config['backbone']['name']}.pt"
    return inputs


def chunk_targets(wildcards):
    """The class chunks of one synthetic set (methods/chunks.py), merged by merge_chunks."""
    chunks = class_chunks(dataset_info(wildcards.dataset).num_classes, config["distill_chunk_classes"])
    return [f"{RESULTS}/chunks/{wildcards.dataset}/{wildcards.method}/ipc{wildcards.ipc}/seed{wildcards.seed}/"
            f"{start}-{stop}" for start, stop in chunks]


def finetune_module(wildcards):
    return get_method(config["methods"][wildcards.method]["method"]).finetune


def eval_inputs(wildcards):
    """Synthetic set and real data; the teacher too when the protocol learns from soft labels."""
    inputs = {"synset": f"{RESULTS}/synsets/{wildcards.dataset}/{wildcards.method}/ipc{wildcards.ipc}/seed{wildcards.seed}",
              "data": f"{RESULTS}/data/{wildcards.dataset}"}
    if config["protocols"][wildcards.protocol]["loss"] == "soft":
        inputs["teacher"] = f"{RESULTS}/teachers/{wildcards.dataset}"
    return inputs


def eval_spec(wildcards):
    return as_json({"dataset": wildcards.dataset, "method": wildcards.method, "ipc": int(wildcards.ipc),
                    "seed": int(wildcards.seed), "protocol": wildcards.protocol,
                    "repeat": int(wildcards.repeat), "network_name": wildcards.network,
                    "network": config["evaluation"]["networks"][wildcards.network],
                    "protocol_params": {**config["protocols"][wildcards.protocol], **performance_options()}})


def eval_targets():
    ev = config["evaluation"]
    if not ev["enabled"]:
        return []
    return expand(
        f"{RESULTS}/eval/{{dataset}}/{{method}}/ipc{{ipc}}/seed{{seed}}/{{protocol}}-{{network}}-rep{{repeat}}.json",
        dataset=config["datasets"], method=list(config["methods"]), ipc=config["ipcs"],
        seed=config["seeds"], protocol=ev["protocols"], network=list(ev["networks"]),
        repeat=range(ev["repeats"]))


def feature_path(dataset, extractor):
    return f"{RESULTS}/features/{dataset}/{extractor}-{config['metrics']['reference_split']}.pt"


def feature_inputs(wildcards):
    """Real data; the teacher too when it is the extractor."""
    inputs = {"data": f"{RESULTS}/data/{wildcards.dataset}"}
    if wildcards.extractor == "teacher":
        inputs["teacher"] = f"{RESULTS}/teachers/{wildcards.dataset}"
    return inputs


def measure_inputs(wildcards):
    """The synthetic set, the cached real features of both extractors, and the teacher when used."""
    metrics = config["metrics"]
    inputs = {"synset": f"{RESULTS}/synsets/{wildcards.dataset}/{wildcards.method}/ipc{wildcards.ipc}/seed{wildcards.seed}",
              "fid_features": feature_path(wildcards.dataset, metrics["fid_extractor"]),
              "features": feature_path(wildcards.dataset, metrics["feature_extractor"])}
    if "teacher" in (metrics["fid_extractor"], metrics["feature_extractor"]):
        inputs["teacher"] = f"{RESULTS}/teachers/{wildcards.dataset}"
    return inputs


def metric_targets():
    if not config["metrics"]["enabled"]:
        return []
    return expand(f"{RESULTS}/metrics/{{dataset}}/{{method}}/ipc{{ipc}}/seed{{seed}}.json",
                  dataset=config["datasets"], method=list(config["methods"]), ipc=config["ipcs"],
                  seed=config["seeds"])


def synset_targets():
    return expand(f"{RESULTS}/synsets/{{dataset}}/{{method}}/ipc{{ipc}}/seed{{seed}}", dataset=config["datasets"],
                  method=list(config["methods"]), ipc=config["ipcs"], seed=config["seeds"])


def figure_feature_targets():
    """Real features of the t-SNE figures (the metrics' feature extractor); none when the metrics are
    off, since then the figures draw no t-SNE (--no-features)."""
    if not config["metrics"]["enabled"]:
        return []
    return [feature_path(dataset, config["metrics"]["feature_extractor"]) for dataset in config["datasets"]]


def figure_teacher_targets():
    if not config["metrics"]["enabled"] or config["metrics"]["feature_extractor"] != "teacher":
        return []
    return expand(f"{RESULTS}/teachers/{{dataset}}", dataset=config["datasets"])


def backbone_check_targets():
    if not config["backbone"]["check"]:
        return []
    return expand(f"{RESULTS}/backbone_checks/{{dataset}}.json", dataset=config["datasets"])


def method_table_notes():
    """Footnotes that the registry attaches to methods of this profile (e.g. d4m is a port), and the
    smoke run's warning."""
    notes = {get_method(v["method"]).table_note for v in config["methods"].values()}
    smoke = [f"SMOKE RUN ({len(SMOKE_REDUCTIONS)} reductions, see any manifest): the numbers test the "
             f"path, not the methods"] if SMOKE_REDUCTIONS else []
    return sorted(n for n in notes if n) + smoke
