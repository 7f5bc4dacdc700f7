"""Where every artifact of a profile lives: each kind's path pattern, written once.

The patterns use Snakemake's ``{wildcard}`` syntax and are relative to a profile's results folder
(``results/<profile>``), except ``LOGS``; ``workflow/rules/paths.smk`` turns them into the rules'
inputs, outputs, logs and benchmarks, and the Python code that reads stored results (the figures,
the cost table) fills them with ``str.format`` or parses them with :func:`regex`. A job's log and
benchmark are ``<rule>/<job>.log`` under ``LOGS`` and ``<rule>/<job>.tsv`` under ``BENCHMARKS``, its job
name being one of the ``*_JOB`` patterns.
"""
from __future__ import annotations

import re

RESULTS = "results/{profile}"
LOGS = "logs/{profile}"

DATA = "data/{dataset}"
TEACHER = "teachers/{dataset}"
BACKBONE = "backbones/{backbone}"
FINETUNED = "backbones/{backbone}-finetuned/{method}/{dataset}"
BACKBONE_CHECK = "backbone_checks/{dataset}.json"
LATENTS = "latents/{dataset}/{backbone}.pt"
CLASS_STATISTICS = "class_statistics/{dataset}/{encoder}-r{resolution}-c{crop}.pt"   # sfm's real class means
GOLDEN_HEAD = "golden_heads/{dataset}/{encoder}"          # classifier inheritance's full-data linear head
SET = "{dataset}/{method}/ipc{ipc}/seed{seed}"            # one synthetic set of a variant
DATASET_SETS = "synsets/{dataset}"                       # one folder per variant
SYNSET = f"synsets/{SET}"
CHUNK = f"chunks/{SET}/{{chunk}}"                         # its classes {chunk} = START-STOP
EVAL = f"eval/{SET}/{{protocol}}-{{network}}-rep{{repeat}}.json"
FEATURES = "features/{dataset}/{extractor}-{split}.pt"
METRICS = f"metrics/{SET}.json"
TABLES = "tables"
FIGURES = "figures"
BENCHMARKS = "benchmarks"

SET_JOB = "{dataset}/{method}/ipc{ipc}-seed{seed}"        # the log and benchmark name of a set's job
CHUNK_JOB = f"{SET_JOB}-{{chunk}}"
EVAL_JOB = f"{SET_JOB}-{{protocol}}-{{network}}"         # one job trains every repeat
DATASET_JOB = "{dataset}"
STATISTICS_JOB = "{dataset}/{encoder}-r{resolution}-c{crop}"
GOLDEN_JOB = "{dataset}/{encoder}"
FEATURES_JOB = "{dataset}/{extractor}-{split}"
FINETUNE_JOB = "{method}-{dataset}"


def fill(pattern: str, **values: object) -> str:
    """``pattern`` with the named wildcards replaced by ``values``, the others left as wildcards."""
    for name, value in values.items():
        pattern = pattern.replace(f"{{{name}}}", str(value))
    return pattern


def regex(pattern: str, **groups: str) -> re.Pattern:
    """``pattern`` as a regular expression: each ``{name}`` a group matching ``groups[name]``."""
    parts = re.split(r"\{(\w+)\}", pattern)
    return re.compile("".join(re.escape(part) if k % 2 == 0 else f"(?P<{part}>{groups[part]})"
                              for k, part in enumerate(parts)))
