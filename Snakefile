# Diffusion dataset-distillation reproduction suite: prepare data -> (train or load) backbone ->
# distill (every method variant) -> train evaluation networks, measure the sets -> tables.
# `snakemake --cores N` runs the embedded default profile (config/config.yaml);
# `snakemake --cores N --configfile config/paper/woof.yaml` runs a paper profile.
from snakemake.utils import min_version

min_version("8.0")


# A --configfile replaces the embedded default instead of being merged into it, so that a paper
# profile never inherits the digits profile's methods or networks.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/paths.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/backbone.smk"
include: "workflow/rules/distill.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        rules.tables.output,
