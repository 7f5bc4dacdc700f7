# Distillation: one job per (dataset, method variant, IPC, seed), or, with distill_chunk_classes,
# one job per chunk of classes and a merge (methods/merge_chunks.py) into the same synthetic set.


rule distill:
    input:
        unpack(distill_inputs),
    output:
        distill_output(),
    params:
        integrity=integrity("distill"),
        wrap=GPU_WRAP,
        device=DEVICE,
        spec=method_spec,
        classes=lambda w: f"--classes {w.chunk.replace('-', ':')}" if "chunk" in w.keys() else "",
        backbone=lambda w, input: f"--backbone {input.backbone}" if "backbone" in input.keys() else "",
        latents=lambda w, input: f"--latents {input.latents}" if "latents" in input.keys() else "",
        teacher=lambda w, input: f"--teacher {input.teacher}" if "teacher" in input.keys() else "",
    threads: 2
    conda:
        ENV
    log:
        log_path("distill", distill_job()),
    benchmark:
        bench_path("distill", distill_job())
    resources:
        gpu=GPU,
        mem_mb=4000,
        runtime=120,
    shell:
        "{params.wrap}python $DMGD_SCRIPTS/distill.py --spec {params.spec:q} --data {input.data} --ipc {wildcards.ipc}"
        " --seed {wildcards.seed} --out {output} {params.classes} {params.backbone} {params.latents} {params.teacher}"
        " --device {params.device} --threads {threads} > {log} 2>&1"


if config["distill_chunk_classes"] is not None:

    rule merge_chunks:
        input:
            chunk_targets,
        output:
            replaced(SYNSET),
        params:
            integrity=integrity("merge_chunks"),
        conda:
            ENV
        log:
            log_path("merge_chunks", layout.SET_JOB),
        benchmark:
            bench_path("merge_chunks", layout.SET_JOB)
        resources:
            mem_mb=2000,
            runtime=30,
        shell:
            "python $DMGD_SCRIPTS/merge_chunks.py --chunks {input} --dataset {wildcards.dataset} --out {output}"
            " > {log} 2>&1"
