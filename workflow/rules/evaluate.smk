rule evaluate:
    input:
        unpack(eval_inputs),
    output:
        eval_outputs(),
    params:
        integrity=integrity("evaluate"),
        wrap=GPU_WRAP,
        device=DEVICE,
        spec=eval_spec,
        teacher=lambda w, input: f"--teacher {input.teacher}" if "teacher" in input.keys() else "",
        golden=lambda w, input: f"--golden {input.golden}" if "golden" in input.keys() else "",
    threads: 1
    conda:
        ENV
    log:
        log_path("evaluate", layout.EVAL_JOB),
    benchmark:
        bench_path("evaluate", layout.EVAL_JOB)
    resources:
        gpu=GPU,
        mem_mb=4000,
        runtime=240,
    shell:
        "{params.wrap}python $DMGD_SCRIPTS/evaluate.py --spec {params.spec:q} --synset {input.synset}"
        " --data {input.data} {params.teacher} {params.golden} --out {output} --device {params.device} --threads {threads} > {log} 2>&1"


# SFM's golden classifier of classifier inheritance: once per (dataset, encoder), on the full real train split.
rule golden_head:
    input:
        unpack(golden_inputs),
    output:
        replaced(GOLDEN_HEAD),
    params:
        integrity=integrity("golden_head"),
        wrap=GPU_WRAP,
        device=DEVICE,
        spec=golden_spec,
        encoder=encoder_argument,
    threads: JOB_THREADS
    priority: 9  # before the jobs it unblocks (classifier-inheritance evaluations)
    conda:
        ENV
    log:
        log_path("golden_head", layout.GOLDEN_JOB),
    benchmark:
        bench_path("golden_head", layout.GOLDEN_JOB)
    resources:
        gpu=GPU,
        mem_mb=8000,
        runtime=120,
    shell:
        "{params.wrap}python $DMGD_SCRIPTS/golden_head.py --spec {params.spec:q} --data {input.data} {params.encoder}"
        " --out {output} --device {params.device} --threads {threads} > {log} 2>&1"
