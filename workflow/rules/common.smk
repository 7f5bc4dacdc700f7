# Config validation (before any job) and the helpers that turn config into targets and specs.
import functools
import itertools
import json
import os
import shlex
import shutil
import sys
from pathlib import Path

from evaluation.core import layout
from evaluation.core.artifacts import SMOKE_ENV, tree_digest, verify_artifact, write_json_atomic
from evaluation.config.validate import check_unique_keys, prepare_config
from evaluation.data.datasets import dataset_info
from evaluation.core.errors import InputError
from evaluation.protocols.protocols import resolve_protocol
from methods.chunks import class_chunks
from methods.encoder.encoders import TEACHER as TEACHER_ENCODER, configured_weights
from methods.registry import METHOD_MODULES_ENV, get_method

# `--cores 0` would leave Snakemake selecting jobs forever with no core to run them on.
_cores = workflow.global_resources.get("_cores")
if getattr(_cores, "value", _cores) == 0:
    sys.exit("error: --cores 0 runs no job and waits forever; give --cores N with N >= 1, or --cores all")
try:
    # Snakemake's YAML loading keeps the last of two equal keys; re-read the files to refuse them.
    for _configfile in workflow.configfiles:
        check_unique_keys(_configfile)
    SMOKE_REDUCTIONS = prepare_config(config)
except ValueError as err:  # one line naming the value and the fix, before any job
    sys.exit(f"config error: {err}")
# A smoke run (evaluation/config/smoke.py) says what it shrank, and its jobs write it into their manifests.
for line in SMOKE_REDUCTIONS:
    print(f"smoke run: {line}", file=sys.stderr)
if SMOKE_REDUCTIONS:
    os.environ[SMOKE_ENV] = json.dumps(SMOKE_REDUCTIONS)
# Every job process that imports methods.registry loads the config's method_modules too.
if config.get("method_modules"):
    os.environ[METHOD_MODULES_ENV] = json.dumps([str(Path(p).resolve()) for p in config["method_modules"]])

DEVICE = config["device"]
JOB_THREADS = config["threads_per_job"]  # threads of the rules that compute with several
GPU = 0 if DEVICE == "cpu" else 1
ENV = "../../environment.yml"  # conda env of every rule (relative to this folder)
# A local run gives each GPU job a GPU of its own (evaluation/core/gpu_slots.py), one slot per GPU of
# --resources gpu=N. The count reaches the jobs through the environment, not the command line, so
# that changing it re-runs nothing (Snakemake re-runs a job whose shell command changed).
GPU_WRAP = "python -m evaluation.core.gpu_slots -- " if GPU else ""
_gpu_limit = workflow.global_resources.get("gpu")
os.environ.setdefault("DMGD_GPU_SLOTS", str(getattr(_gpu_limit, "value", _gpu_limit) or 0))
# The checkpoint cadence of the long jobs (evaluation/core/checkpoint.py) travels the same way, so that
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
    encoder="[A-Za-z0-9_]+",
    resolution=r"\d+",
    crop=r"\d+",


# ----------------------------------------------------------------------------- integrity
# Snakemake re-runs a job whose output no longer matches its manifest's digests. Every rule has the
# param ``integrity=integrity("<rule>")``: the number of times the job's outputs were found corrupt
# (kept in REPAIRS), each existing output being checked once per run (evaluation.core.artifacts.
# verify_artifact); zero is a value that Snakemake leaves out of its params record (not
# representable), so that outputs that were never corrupt keep the params they were made with. A
# corrupt output raises its count: Snakemake's params rerun trigger sees a change, re-runs the job
# and, through the newer output, every job downstream, and records the new count, which stays the
# same, and re-runs nothing, until the output is found corrupt again. The corrupt output stays in
# place until its job replaces it (``replaced``), so `snakemake -n` lists the same jobs as the run.
# Why not the alternatives: removing a corrupt output re-runs nothing while its dependants' outputs
# exist (Snakemake treats a missing intermediate as up to date); an older modification time re-runs
# nothing either (Snakemake 9 also compares the inputs' recorded checksums); a check rule is a job,
# run only after the DAG is decided; ``ensure(...)`` checks an output once, right after its job. An
# output without Snakemake's metadata record (--drop-metadata) is not re-run: its readers refuse it in
# one line naming the rule.
REPAIRS = Path(".snakemake/integrity.json")   # {output path: times found corrupt}
INTACT = object()


@functools.cache
def repairs():
    return json.loads(REPAIRS.read_text()) if REPAIRS.is_file() else {}


def integrity(rule_name):
    """The ``integrity`` param of rule ``rule_name`` (see above)."""
    def count(wildcards):
        values = {name: getattr(wildcards, name) for name in wildcards.keys()}
        found = sum(repair_count(str(pattern.apply_wildcards(values)), rule_name)
                    for pattern in workflow.get_rule(rule_name).output)
        return f"repaired {found} times" if found else INTACT
    return count


@functools.cache
def repair_count(path, rule_name):
    """Times ``path`` was found corrupt, after checking it (the main process only: a cluster job's
    own Snakemake reads the count)."""
    if workflow.is_main_process and os.path.exists(path):
        try:
            verify_artifact(path, rule_name)
        except InputError as err:
            print(f"integrity: {str(err).split('; ')[0]}; rule {rule_name} re-runs it", file=sys.stderr)
            repairs()[path] = repairs().get(path, 0) + 1
            write_json_atomic(REPAIRS, repairs())
    return repairs().get(path, 0)


# Snakemake backs an ``update`` output up before its job and refuses to overwrite a backup that a
# killed run left; the output itself stayed in place (``replaced``), so such a backup is debris.
if workflow.is_main_process and not any(Path(".snakemake/locks").glob("*")):
    shutil.rmtree(".snakemake/backups", ignore_errors=True)


def as_json(obj):
    return json.dumps(obj, sort_keys=True)


def performance_options():
    """The options of config 'performance' that are on: merged into the sampler and protocol specs
    only then, so that with the defaults every job's command line (and result) stays as it was."""
    return {key: True for key, on in config["performance"].items() if on}


def replaced(path):
    """A directory output that stays in place until its job has written the new one: Snakemake
    removes a job's outputs before running it, except those flagged ``update``, which it also
    backs up and restores if the job fails; the job builds the new folder beside and swaps it in
    whole (evaluation.core.artifacts.atomic_path), so a failed re-run leaves the previous one as it was."""
    return update(directory(path))


@functools.cache
def folder_digest(path):
    """Content digest of a folder a method reads (an external set), once per workflow run."""
    return tree_digest(path)


def method_spec(wildcards):
    """The config slice a distillation job depends on (a change re-runs exactly these jobs). The
    folders a method is keyed by (fields declared ``param(..., keyed_by_content=True)``: external's
    path) enter it by their content digest, so that a folder changed in place re-runs its jobs (the
    params rerun trigger)."""
    variant = config["methods"][wildcards.method]
    method = get_method(variant["method"])
    spec = {"method": variant["method"], "params": variant["params"], "dataset": wildcards.dataset,
            "data": config["data"]}
    if method.needs_backbone:
        spec["sampler"] = {**config["sampler"], **variant.get("sampler", {}), **performance_options()}
    encoder = method.encoder(variant["params"])
    if encoder not in (None, TEACHER_ENCODER):   # its weight file (config 'encoders'); the job reads it
        spec["encoder_weights"] = configured_weights(encoder, config["encoders"])
    if method.keyed_by_content:
        spec["content"] = {name: folder_digest(variant["params"][name]) for name in method.keyed_by_content}
    return as_json(spec)


def at(pattern, wildcards):
    """``pattern`` (workflow/rules/paths.smk) filled with a job's ``wildcards``."""
    return layout.fill(pattern, **dict(wildcards.items()))


def distill_inputs(wildcards):
    inputs = {"data": at(DATA, wildcards)}
    method = get_method(config["methods"][wildcards.method]["method"])
    if method.finetune:
        inputs["backbone"] = at(FINETUNED, wildcards)
    elif method.needs_backbone:
        inputs["backbone"] = BACKBONE
    if method.needs_latents:
        inputs["latents"] = at(LATENTS, wildcards)
    params = config["methods"][wildcards.method]["params"]
    if method.encoder(params) == TEACHER_ENCODER:
        inputs["teacher"] = at(TEACHER, wildcards)
    if method.needs_class_statistics:
        inputs["statistics"] = at(layout.fill(CLASS_STATISTICS, encoder=method.encoder(params),
                                              resolution=params["synthetic_resolution"],
                                              crop=params["crop_resolution"]), wildcards)
    return inputs


def statistics_inputs(wildcards):
    """Real data; the teacher too when it is the encoder (the others' weight files are config paths)."""
    inputs = {"data": at(DATA, wildcards)}
    if wildcards.encoder == TEACHER_ENCODER:
        inputs["teacher"] = at(TEACHER, wildcards)
    return inputs


def distill_output():
    """The output of one distill job: the synthetic set, or with distill_chunk_classes a class chunk
    of it (a temporary folder, merged by merge_chunks)."""
    if config["distill_chunk_classes"] is None:
        return replaced(SYNSET)
    return temp(replaced(CHUNK))


def distill_job():
    """The log and benchmark name of a distill job (evaluation/report/costs.py reads both kinds)."""
    return layout.SET_JOB if config["distill_chunk_classes"] is None else layout.CHUNK_JOB


def chunk_targets(wildcards):
    """The class chunks of one synthetic set (methods/chunks.py), merged by merge_chunks; a method that
    optimises all classes jointly gets one chunk of every class."""
    joint = get_method(config["methods"][wildcards.method]["method"]).joint_classes
    chunks = class_chunks(dataset_info(wildcards.dataset).num_classes,
                          None if joint else config["distill_chunk_classes"])
    return [layout.fill(at(CHUNK, wildcards), chunk=f"{start}-{stop}") for start, stop in chunks]


def finetune_module(wildcards):
    return get_method(config["methods"][wildcards.method]["method"]).finetune


def network_encoders(network):
    """The frozen encoders an evaluation network reads: its ``encoder`` and ``distill_encoder``."""
    return {network[key] for key in ("encoder", "distill_encoder") if key in network}


def distill_encoder(network):
    """The encoder whose golden head an ``inherited_classifier`` inherits (default its ``encoder``)."""
    return network.get("distill_encoder", network["encoder"])


def eval_inputs(wildcards):
    """Synthetic set and real data; the teacher too when the protocol learns from soft labels or the
    network reads the teacher encoder; the golden head of the network's distillation encoder under
    classifier inheritance (loss feature_mse)."""
    inputs = {"synset": at(SYNSET, wildcards), "data": at(DATA, wildcards)}
    network = config["evaluation"]["networks"][wildcards.network]
    loss = config["protocols"][wildcards.protocol]["loss"]
    if loss == "soft" or TEACHER_ENCODER in network_encoders(network):
        inputs["teacher"] = at(TEACHER, wildcards)
    if loss == "feature_mse":
        inputs["golden"] = at(layout.fill(GOLDEN_HEAD, encoder=distill_encoder(network)), wildcards)
    return inputs


def golden_inputs(wildcards):
    """Real data; the teacher too when it is the encoder."""
    inputs = {"data": at(DATA, wildcards)}
    if wildcards.encoder == TEACHER_ENCODER:
        inputs["teacher"] = at(TEACHER, wildcards)
    return inputs


def golden_spec(wildcards):
    """The golden head's settings: config golden_head, the reference linear_probe protocol's training
    settings (SFM's Adam 1e-3 x batch / 256, cosine, AugBasic, whatever a profile sets for its own probe)
    and the classifier_inheritance protocol's image size and normalisation (its reference when not run)."""
    return as_json({"dataset": wildcards.dataset, "encoder": wildcards.encoder, "golden_head": config["golden_head"],
                    "probe_params": resolve_protocol("linear_probe", None),
                    "protocol_params": resolve_protocol("classifier_inheritance",
                                                        config["protocols"].get("classifier_inheritance"))})


def encoder_argument(wildcards, input):
    """A job's frozen encoder ``{encoder}``: the teacher folder of the stand-in, else the encoder's weight file."""
    if "teacher" in input.keys():
        return f"--teacher {input.teacher}"
    return f"--weights {shlex.quote(configured_weights(wildcards.encoder, config['encoders']))}"


def network_spec(name):
    """The network's builder settings: its entry without ``protocols``, with the weight files of its
    encoders (config ``encoders``, or an encoder's torchvision cache file: methods/encoder/encoders.py)."""
    entry = {key: value for key, value in config["evaluation"]["networks"][name].items() if key != "protocols"}
    for key, weights_key in (("encoder", "weights"), ("distill_encoder", "distill_weights")):
        weights = configured_weights(entry[key], config["encoders"]) if key in entry else None
        if weights is not None:
            entry[weights_key] = weights
    return entry


def eval_outputs():
    """The records of one evaluate job: one file per repeat (every repeat trained in the job)."""
    return expand(EVAL, repeat=range(config["evaluation"]["repeats"]), allow_missing=True)


def eval_spec(wildcards):
    ev = config["evaluation"]
    return as_json({"dataset": wildcards.dataset, "method": wildcards.method, "ipc": int(wildcards.ipc),
                    "seed": int(wildcards.seed), "protocol": wildcards.protocol,
                    "repeats": list(range(ev["repeats"])), "stack_repeats": ev["stack_repeats"],
                    "stacked_forward": ev["stacked_forward"],
                    "network_name": wildcards.network,
                    "network": network_spec(wildcards.network),
                    "protocol_params": {**config["protocols"][wildcards.protocol], **performance_options()}})


def eval_pairs():
    """(protocol, network) pairs to evaluate: every protocol with every network, except that a
    network with a ``protocols`` list runs only under those."""
    ev = config["evaluation"]
    return [(protocol, network) for protocol in ev["protocols"] for network, entry in ev["networks"].items()
            if protocol in entry.get("protocols", ev["protocols"])]


def eval_targets():
    ev = config["evaluation"]
    if not ev["enabled"]:
        return []
    pairs = set(eval_pairs())
    return [layout.fill(EVAL, dataset=dataset, method=method, ipc=ipc, seed=seed, protocol=protocol, network=network,
                        repeat=repeat)
            for dataset, method, ipc, seed, protocol, network, repeat in itertools.product(
                config["datasets"], config["methods"], config["ipcs"], config["seeds"], ev["protocols"],
                ev["networks"], range(ev["repeats"]))
            if (protocol, network) in pairs]


def feature_path(dataset, extractor):
    return layout.fill(FEATURES, dataset=dataset, extractor=extractor, split=config["metrics"]["reference_split"])


def feature_inputs(wildcards):
    """Real data; the teacher too when it is the extractor."""
    inputs = {"data": at(DATA, wildcards)}
    if wildcards.extractor == "teacher":
        inputs["teacher"] = at(TEACHER, wildcards)
    return inputs


def measure_inputs(wildcards):
    """The synthetic set, the cached real features of both extractors, and the teacher when used."""
    metrics = config["metrics"]
    inputs = {"synset": at(SYNSET, wildcards),
              "fid_features": feature_path(wildcards.dataset, metrics["fid_extractor"]),
              "features": feature_path(wildcards.dataset, metrics["feature_extractor"])}
    if "teacher" in (metrics["fid_extractor"], metrics["feature_extractor"]):
        inputs["teacher"] = at(TEACHER, wildcards)
    return inputs


def metric_targets():
    if not config["metrics"]["enabled"]:
        return []
    return expand(METRICS, dataset=config["datasets"], method=list(config["methods"]), ipc=config["ipcs"],
                  seed=config["seeds"])


def synset_targets():
    return expand(SYNSET, dataset=config["datasets"], method=list(config["methods"]), ipc=config["ipcs"],
                  seed=config["seeds"])


def figure_feature_targets():
    """Real features of the t-SNE figures (the metrics' feature extractor); none when the metrics are
    off, since then the figures draw no t-SNE (--no-features)."""
    if not config["metrics"]["enabled"]:
        return []
    return [feature_path(dataset, config["metrics"]["feature_extractor"]) for dataset in config["datasets"]]


def figure_teacher_targets():
    if not config["metrics"]["enabled"] or config["metrics"]["feature_extractor"] != "teacher":
        return []
    return expand(TEACHER, dataset=config["datasets"])


def backbone_check_targets():
    if not config["backbone"]["check"]:
        return []
    return expand(BACKBONE_CHECK, dataset=config["datasets"])


def method_table_notes():
    """Footnotes that the registry attaches to methods of this profile (e.g. d4m is a port), and the
    smoke run's warning."""
    notes = {get_method(v["method"]).table_note for v in config["methods"].values()}
    smoke = [f"SMOKE RUN ({len(SMOKE_REDUCTIONS)} reductions, see any manifest): the numbers test the "
             f"path, not the methods"] if SMOKE_REDUCTIONS else []
    return sorted(n for n in notes if n) + smoke
