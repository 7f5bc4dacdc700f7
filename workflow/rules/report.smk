rule tables:
    input:
        runs=eval_targets(),
        metrics=metric_targets(),
        checks=backbone_check_targets(),
    output:
        accuracy=f"{RESULTS}/tables/accuracy.md",
        accuracy_last=f"{RESULTS}/tables/accuracy_last.md",
        accuracy_val=f"{RESULTS}/tables/accuracy_val.md",
        model_selection=f"{RESULTS}/tables/model_selection.md",
        runs=f"{RESULTS}/tables/runs.csv",
        metrics=metric_table_targets(),
    params:
        order=",".join(config["methods"]),
        notes=" ".join(f"--note {shlex.quote(note)}" for note in method_table_notes()),
        out=lambda w, output: os.path.dirname(output.accuracy),
    conda:
        ENV
    log:
        f"{LOGS}/tables.log",
    benchmark:
        f"{BENCH}/tables.tsv"
    shell:
        "python -m evaluation.report --runs {input.runs} --backbone-checks {input.checks}"
        " --metrics {input.metrics} --out {params.out} --method-order {params.order:q} {params.notes} > {log} 2>&1"
