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
        statistics=lambda w, input: f"--statistics {input.statistics}" if "statistics" in input.keys() else "",
    threads: JOB_THREADS
    priority: 5  # a set before any evaluation: each set unblocks its evaluate and measure jobs
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
        " --seed {wildcards.seed} --out {output} {params.classes} {params.backbone} {params.latents}"
        " {params.teacher} {params.statistics}"
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


# The class-mean features of the real training images through a frozen encoder (methods/encoder/statistics.py),
# once per (dataset, encoder, synthetic resolution, crop), read by the methods that declare needs_class_statistics.
rule class_statistics:
    input:
        unpack(statistics_inputs),
    output:
        CLASS_STATISTICS,
    params:
        integrity=integrity("class_statistics"),
        wrap=GPU_WRAP,
        device=DEVICE,
        encoder=encoder_argument,
    threads: JOB_THREADS
    priority: 9  # before the jobs it unblocks (SFM distillation)
    conda:
        ENV
    log:
        log_path("class_statistics", layout.STATISTICS_JOB),
    benchmark:
        bench_path("class_statistics", layout.STATISTICS_JOB)
    resources:
        gpu=GPU,
        mem_mb=8000,
        runtime=60,
    shell:
        "{params.wrap}python $DMGD_SCRIPTS/class_statistics.py --dataset {wildcards.dataset} --data {input.data}"
        " --encoder {wildcards.encoder} {params.encoder} --resolution {wildcards.resolution} --crop {wildcards.crop}"
        " --out {output} --device {params.device} --threads {threads} > {log} 2>&1"
