# Distillation: one job per (dataset, method variant, IPC, seed), or, with distill_chunk_classes,
# one job per chunk of classes and a merge (methods/merge_chunks.py) into the same synthetic set.

DISTILL_SHELL = (
    "{params.wrap}python -m methods.distill --spec {params.spec:q} --data {input.data} --ipc {wildcards.ipc}"
    " --seed {wildcards.seed} --out {output} {params.classes} {params.backbone} {params.latents}"
    " --device {params.device} --threads {threads} > {log} 2>&1"
)

if config["distill_chunk_classes"] is None:

    rule distill:
        input:
            unpack(distill_inputs),
        output:
            replaced(f"{RESULTS}/synsets/{{dataset}}/{{method}}/ipc{{ipc}}/seed{{seed}}"),
        params:
            integrity=integrity("distill"),
            wrap=GPU_WRAP,
            device=DEVICE,
            spec=method_spec,
            classes="",
            backbone=lambda w, input: f"--backbone {input.backbone}" if "backbone" in input.keys() else "",
            latents=lambda w, input: f"--latents {input.latents}" if "latents" in input.keys() else "",
        threads: 2
        conda:
            ENV
        log:
            f"{LOGS}/distill/{{dataset}}/{{method}}/ipc{{ipc}}-seed{{seed}}.log",
        benchmark:
            f"{BENCH}/distill/{{dataset}}/{{method}}/ipc{{ipc}}-seed{{seed}}.tsv"
        resources:
            gpu=GPU,
            mem_mb=4000,
            runtime=120,
        shell:
            DISTILL_SHELL

else:

    rule distill:
        input:
            unpack(distill_inputs),
        output:
            temp(replaced(f"{RESULTS}/chunks/{{dataset}}/{{method}}/ipc{{ipc}}/seed{{seed}}/{{chunk}}")),
        params:
            integrity=integrity("distill"),
            wrap=GPU_WRAP,
            device=DEVICE,
            spec=method_spec,
            classes=lambda w: f"--classes {w.chunk.replace('-', ':')}",
            backbone=lambda w, input: f"--backbone {input.backbone}" if "backbone" in input.keys() else "",
            latents=lambda w, input: f"--latents {input.latents}" if "latents" in input.keys() else "",
        threads: 2
        conda:
            ENV
        log:
            f"{LOGS}/distill/{{dataset}}/{{method}}/ipc{{ipc}}-seed{{seed}}-{{chunk}}.log",
        benchmark:
            f"{BENCH}/distill/{{dataset}}/{{method}}/ipc{{ipc}}-seed{{seed}}-{{chunk}}.tsv"
        resources:
            gpu=GPU,
            mem_mb=4000,
            runtime=120,
        shell:
            DISTILL_SHELL

    rule merge_chunks:
        input:
            chunk_targets,
        output:
            replaced(f"{RESULTS}/synsets/{{dataset}}/{{method}}/ipc{{ipc}}/seed{{seed}}"),
        params:
            integrity=integrity("merge_chunks"),
        conda:
            ENV
        log:
            f"{LOGS}/merge_chunks/{{dataset}}/{{method}}/ipc{{ipc}}-seed{{seed}}.log",
        benchmark:
            f"{BENCH}/merge_chunks/{{dataset}}/{{method}}/ipc{{ipc}}-seed{{seed}}.tsv"
        resources:
            mem_mb=2000,
            runtime=30,
        shell:
            "python -m methods.merge_chunks --chunks {input} --dataset {wildcards.dataset} --out {output}"
            " > {log} 2>&1"
