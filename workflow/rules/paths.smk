# Every artifact path of the profile, from the patterns of evaluation/core/layout.py (written once):
# the rules' inputs, outputs, logs and benchmarks, and the scripts the rules run.
import os

from evaluation.core import layout

RESULTS = layout.fill(layout.RESULTS, profile=config["profile"])
LOGS = layout.fill(layout.LOGS, profile=config["profile"])
BENCH = f"{RESULTS}/{layout.BENCHMARKS}"
# workflow/scripts/<rule>.py: the shell commands name it as $DMGD_SCRIPTS/<rule>.py, the folder
# reaching the jobs through the environment (as DMGD_GPU_SLOTS does), so that the commands Snakemake
# records (its code rerun trigger) do not depend on where the checkout is.
os.environ.update(DMGD_SCRIPTS=os.path.join(workflow.basedir, "workflow", "scripts"))


def result(pattern, **values):
    """A results path of the profile: ``pattern`` (evaluation.core.layout) under RESULTS, with the
    backbone's name and ``values`` filled in, the other wildcards left for Snakemake."""
    return layout.fill(f"{RESULTS}/{pattern}", backbone=config["backbone"]["name"], **values)


def log_path(rule_name, job=None):
    """The log of a job of ``rule_name``: LOGS/<rule>/<job>.log, or LOGS/<rule>.log for a single job."""
    return f"{LOGS}/{rule_name}/{job}.log" if job else f"{LOGS}/{rule_name}.log"


def bench_path(rule_name, job=None):
    """The benchmark of a job of ``rule_name`` (read by evaluation/report/costs.py)."""
    return f"{BENCH}/{rule_name}/{job}.tsv" if job else f"{BENCH}/{rule_name}.tsv"


DATA = result(layout.DATA)
TEACHER = result(layout.TEACHER)
BACKBONE = result(layout.BACKBONE)
FINETUNED = result(layout.FINETUNED)
BACKBONE_CHECK = result(layout.BACKBONE_CHECK)
LATENTS = result(layout.LATENTS)
CLASS_STATISTICS = result(layout.CLASS_STATISTICS)
GOLDEN_HEAD = result(layout.GOLDEN_HEAD)
SYNSET = result(layout.SYNSET)
CHUNK = result(layout.CHUNK)
EVAL = result(layout.EVAL)
FEATURES = result(layout.FEATURES)
METRICS = result(layout.METRICS)
TABLES = result(layout.TABLES)
FIGURES = result(layout.FIGURES)
BACKBONE_LOSSES = f"{LOGS}/train_backbone_loss.csv"   # the running loss of rule train_backbone
