rule prepare_data:
    output:
        replaced(DATA),
    params:
        integrity=integrity("prepare_data"),
        spec=as_json({"imagenet_root": config["imagenet_root"], **config["data"]}),
    conda:
        ENV
    log:
        log_path("prepare_data", layout.DATASET_JOB),
    benchmark:
        bench_path("prepare_data", layout.DATASET_JOB)
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "python $DMGD_SCRIPTS/prepare_data.py --dataset {wildcards.dataset} --spec {params.spec:q}"
        " --out {output} > {log} 2>&1"


rule train_teacher:
    input:
        data=DATA,
    output:
        replaced(TEACHER),
    params:
        integrity=integrity("train_teacher"),
        wrap=GPU_WRAP,
        device=DEVICE,
        # teacher.weights only when set: a default profile's spec (and finished teacher) stays as it was
        spec=lambda w: as_json({"dataset": w.dataset, "protocol_params": config["protocols"]["hard_label"],
                                "teacher": {k: v for k, v in config["teacher"].items()
                                            if k != "weights" or v is not None}}),
    threads: JOB_THREADS
    priority: 10  # the other head: soft labels, the backbone check, the encoder methods and their probes wait for it
    conda:
        ENV
    log:
        log_path("train_teacher", layout.DATASET_JOB),
    benchmark:
        bench_path("train_teacher", layout.DATASET_JOB)
    resources:
        gpu=GPU,
        mem_mb=4000,
        runtime=60,
    shell:
        "{params.wrap}python $DMGD_SCRIPTS/train_teacher.py --spec {params.spec:q} --data {input.data}"
        " --out {output} --device {params.device} --threads {threads} > {log} 2>&1"
