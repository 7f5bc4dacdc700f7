if config["backbone"]["source"] == "train":

    rule train_backbone:
        input:
            data=f"{RESULTS}/data/{config['backbone']['train']['dataset']}",
        output:
            replaced(BACKBONE),
        params:
            integrity=integrity("train_backbone"),
            wrap=GPU_WRAP,
            device=DEVICE,
            spec=as_json({"train": config["backbone"]["train"], "numerics": config["backbone"]["numerics"],
                          "num_classes": len(dataset_info(config["backbone"]["train"]["dataset"]).backbone_labels)}),
        threads: 2
        priority: 10  # the head of the critical path: every diffusion method waits for it
        conda:
            ENV
        log:
            log=f"{LOGS}/train_backbone.log",
            losses=f"{LOGS}/train_backbone_loss.csv",
        benchmark:
            f"{BENCH}/train_backbone.tsv"
        resources:
            gpu=GPU,
            mem_mb=4000,
            runtime=60,
        shell:
            "{params.wrap}python -m methods.diffusion.train_tiny --spec {params.spec:q} --data {input.data}"
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
            f"{LOGS}/load_backbone.log",
        benchmark:
            f"{BENCH}/load_backbone.tsv"
        resources:
            mem_mb=16000,
            runtime=30,
        shell:
            "python -m methods.diffusion.link --source {params.source:q} {params.vae}"
            " --numerics {params.numerics} {params.heads} --out {output} > {log} 2>&1"


rule check_backbone:
    input:
        backbone=BACKBONE,
        teacher=f"{RESULTS}/teachers/{{dataset}}",
    output:
        f"{RESULTS}/backbone_checks/{{dataset}}.json",
    params:
        integrity=integrity("check_backbone"),
        wrap=GPU_WRAP,
        device=DEVICE,
        spec=lambda w: as_json({"dataset": w.dataset, "sampler": config["sampler"],
                                "samples_per_class": config["backbone"]["check_samples_per_class"],
                                "seed": config["seeds"][0],
                                "min_recognisability": config["backbone"]["min_recognisability"]}),
    threads: 2
    conda:
        ENV
    log:
        f"{LOGS}/check_backbone/{{dataset}}.log",
    benchmark:
        f"{BENCH}/check_backbone/{{dataset}}.tsv"
    resources:
        gpu=GPU,
        mem_mb=4000,
        runtime=60,
    shell:
        "{params.wrap}python -m evaluation.metrics.backbone_check --spec {params.spec:q} --backbone {input.backbone}"
        " --teacher {input.teacher} --out {output} --device {params.device} --threads {threads} > {log} 2>&1"


rule encode_latents:
    input:
        data=f"{RESULTS}/data/{{dataset}}",
        backbone=BACKBONE,
    output:
        f"{RESULTS}/latents/{{dataset}}/{config['backbone']['name']}.pt",
    params:
        integrity=integrity("encode_latents"),
        wrap=GPU_WRAP,
        device=DEVICE,
        size=lambda w: (f"--image-size {config['data']['imagenet_image_size']}"
                       if dataset_info(w.dataset).source == "imagenet" else ""),
    threads: 2
    conda:
        ENV
    log:
        f"{LOGS}/encode_latents/{{dataset}}.log",
    benchmark:
        f"{BENCH}/encode_latents/{{dataset}}.tsv"
    resources:
        gpu=GPU,
        mem_mb=8000,
        runtime=60,
    shell:
        "{params.wrap}python -m methods.diffusion.latents --data {input.data} --backbone {input.backbone} --out {output}"
        " {params.size} --device {params.device} --threads {threads} > {log} 2>&1"


rule finetune_backbone:
    input:
        backbone=BACKBONE,
        latents=f"{RESULTS}/latents/{{dataset}}/{config['backbone']['name']}.pt",
    output:
        replaced(f"{BACKBONE}-finetuned/{{method}}/{{dataset}}"),
    params:
        integrity=integrity("finetune_backbone"),
        wrap=GPU_WRAP,
        module=finetune_module,
        spec=lambda w: as_json(config["methods"][w.method]["params"]),
        device=DEVICE,
    threads: 2
    conda:
        ENV
    log:
        f"{LOGS}/finetune_backbone/{{method}}-{{dataset}}.log",
    benchmark:
        f"{BENCH}/finetune_backbone/{{method}}-{{dataset}}.tsv"
    resources:
        gpu=GPU,
        mem_mb=16000,
        runtime=600,
    shell:
        "{params.wrap}python -m {params.module} --spec {params.spec:q} --backbone {input.backbone} --latents {input.latents}"
        " --dataset {wildcards.dataset} --out {output} --device {params.device} --threads {threads} > {log} 2>&1"
