rule evaluate:
    input:
        unpack(eval_inputs),
    output:
        EVAL,
    params:
        integrity=integrity("evaluate"),
        wrap=GPU_WRAP,
        device=DEVICE,
        spec=eval_spec,
        teacher=lambda w, input: f"--teacher {input.teacher}" if "teacher" in input.keys() else "",
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
        " --data {input.data} {params.teacher} --out {output} --device {params.device} --threads {threads} > {log} 2>&1"
