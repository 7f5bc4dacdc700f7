# Tables and figures of the profile, rebuilt from stored results alone (`snakemake tables`).
from evaluation.metrics import extractor_weights


rule tables:
    input:
        runs=eval_targets(),
        metrics=metric_targets(),
        checks=backbone_check_targets(),
        synsets=synset_targets(),
        features=figure_feature_targets(),
        teachers=figure_teacher_targets(),
    output:
        tables=report(replaced(TABLES), patterns=["{name}.csv"], caption="../report/tables.rst",
                      category="Tables"),
        figures=report(replaced(FIGURES), patterns=["{name}.png"], caption="../report/figures.rst",
                       category="Figures"),
    params:
        integrity=integrity("tables"),
        order=",".join(config["methods"]),
        notes=" ".join(f"--note {shlex.quote(note)}" for note in method_table_notes()),
        results=lambda w, output: os.path.dirname(output.tables),
        benchmarks=lambda w, output: os.path.join(os.path.dirname(output.tables), layout.BENCHMARKS),
        method_map=" ".join(f"{name}={variant['reported_as']}" for name, variant in config["methods"].items()
                            if "reported_as" in variant),
        datasets=",".join(config["datasets"]),
        ipcs=",".join(map(str, config["ipcs"])),
        seeds=",".join(map(str, config["seeds"])),
        metrics=config["metrics"],
        features="--features" if config["metrics"]["enabled"] else "--no-features",
        weights=lambda w: (f"--weights {shlex.quote(path)}" if (path := extractor_weights(
            config["metrics"], config["metrics"]["feature_extractor"])) else ""),
        device=DEVICE,
    threads: 1
    conda:
        ENV
    log:
        log_path("tables"),
    benchmark:
        bench_path("tables")
    resources:
        gpu=GPU,
        mem_mb=8000,
        runtime=60,
    shell:
        "python $DMGD_SCRIPTS/tables.py --runs {input.runs} --backbone-checks {input.checks}"
        " --metrics {input.metrics} --out {output.tables} --method-order {params.order:q} {params.notes}"
        " --benchmarks {params.benchmarks} --method-map {params.method_map}"
        " > {log} 2>&1 && python $DMGD_SCRIPTS/figures.py --results {params.results} --methods {params.order:q}"
        " --datasets {params.datasets} --ipcs {params.ipcs} --seeds {params.seeds}"
        " --extractor {params.metrics[feature_extractor]} {params.weights} {params.features}"
        " --real-split {params.metrics[reference_split]}"
        " --max-real {params.metrics[figure_max_real]} --max-synthetic {params.metrics[figure_max_synthetic]}"
        " --perplexity {params.metrics[tsne_perplexity]}"
        " --seed {params.metrics[seed]} --out {output.figures} --device {params.device} --threads {threads}"
        " >> {log} 2>&1"
