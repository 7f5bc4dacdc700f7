if config["backbone"]["source"] == "train":

    rule train_backbone:
        input:
            data=layout.fill(DATA, dataset=config["backbone"]["train"]["dataset"]),
        output:
            replaced(BACKBONE),
        params:
            integrity=integrity("train_backbone"),
            wrap=GPU_WRAP,
            device=DEVICE,
            spec=as_json({"train": config["backbone"]["train"], "numerics": config["backbone"]["numerics"],
                          "num_classes": len(dataset_info(config["backbone"]["train"]["dataset"]).backbone_labels)}),
        threads: JOB_THREADS
        priority: 10  # the head of the critical path: every diffusion method waits for it
        conda:
            ENV
        log:
            log=log_path("train_backbone"),
            losses=BACKBONE_LOSSES,
        benchmark:
            bench_path("train_backbone")
        resources:
            gpu=GPU,
            mem_mb=4000,
            runtime=60,
        shell:
            "{params.wrap}python $DMGD_SCRIPTS/train_backbone.py --spec {params.spec:q} --data {input.data}"
            " --out {output} --loss-log {log.losses} --device {params.device} --threads {threads} > {log.log} 2>&1"

else:

    rule load_backbone:
        output:
            replaced(BACKBONE),
        params:
            integrity=integrity("load_backbone"),
            source=config["backbone"]["source"],
            vae=f"--vae {shlex.quote(config['backbone']['vae'])}" if config["backbone"]["vae"] else "",
            numerics=config["backbone"]["numerics"],
            heads=f"--num-heads {config['backbone']['num_heads']}" if config["backbone"]["num_heads"] else "",
        conda:
            ENV
        log:
            log_path("load_backbone"),
        benchmark:
            bench_path("load_backbone")
        resources:
            mem_mb=16000,
            runtime=30,
        shell:
            "python $DMGD_SCRIPTS/load_backbone.py --source {params.source:q} {params.vae}"
            " --numerics {params.numerics} {params.heads} --out {output} > {log} 2>&1"


rule check_backbone:
    input:
        backbone=BACKBONE,
        teacher=TEACHER,
    output:
        BACKBONE_CHECK,
    params:
        integrity=integrity("check_backbone"),
        wrap=GPU_WRAP,
        device=DEVICE,
        spec=lambda w: as_json({"dataset": w.dataset, "sampler": config["sampler"],
                                "samples_per_class": config["backbone"]["check_samples_per_class"],
                                "seed": config["seeds"][0],
                                "min_recognisability": config["backbone"]["min_recognisability"]}),
    threads: JOB_THREADS
    conda:
        ENV
    log:
        log_path("check_backbone", layout.DATASET_JOB),
    benchmark:
        bench_path("check_backbone", layout.DATASET_JOB)
    resources:
        gpu=GPU,
        mem_mb=4000,
        runtime=60,
    shell:
        "{params.wrap}python $DMGD_SCRIPTS/check_backbone.py --spec {params.spec:q} --backbone {input.backbone}"
        " --teacher {input.teacher} --out {output} --device {params.device} --threads {threads} > {log} 2>&1"


rule encode_latents:
    input:
        data=DATA,
        backbone=BACKBONE,
    output:
        LATENTS,
    params:
        integrity=integrity("encode_latents"),
        wrap=GPU_WRAP,
        device=DEVICE,
        size=lambda w: (f"--image-size {config['data']['imagenet_image_size']}"
                       if dataset_info(w.dataset).source == "imagenet" else ""),
    threads: JOB_THREADS
    priority: 9  # before the jobs it unblocks (DMGD, MGD³, D⁴M, fine-tuning)
    conda:
        ENV
    log:
        log_path("encode_latents", layout.DATASET_JOB),
    benchmark:
        bench_path("encode_latents", layout.DATASET_JOB)
    resources:
        gpu=GPU,
        mem_mb=8000,
        runtime=60,
    shell:
        "{params.wrap}python $DMGD_SCRIPTS/encode_latents.py --data {input.data} --backbone {input.backbone} --out {output}"
        " {params.size} --device {params.device} --threads {threads} > {log} 2>&1"


rule finetune_backbone:
    input:
        backbone=BACKBONE,
        latents=LATENTS,
    output:
        replaced(FINETUNED),
    params:
        integrity=integrity("finetune_backbone"),
        wrap=GPU_WRAP,
        module=finetune_module,
        spec=lambda w: as_json(config["methods"][w.method]["params"]),
        device=DEVICE,
    threads: JOB_THREADS
    priority: 9  # before the jobs it unblocks (Minimax and IMS3 distillation)
    conda:
        ENV
    log:
        log_path("finetune_backbone", layout.FINETUNE_JOB),
    benchmark:
        bench_path("finetune_backbone", layout.FINETUNE_JOB)
    resources:
        gpu=GPU,
        mem_mb=16000,
        runtime=600,
    shell:
        "{params.wrap}python $DMGD_SCRIPTS/finetune_backbone.py --module {params.module} --spec {params.spec:q} --backbone {input.backbone} --latents {input.latents}"
        " --dataset {wildcards.dataset} --out {output} --device {params.device} --threads {threads} > {log} 2>&1"
