rule distill:
    input:
        unpack(distill_inputs),
    output:
        directory(f"{RESULTS}/synsets/{{dataset}}/{{method}}/ipc{{ipc}}/seed{{seed}}"),
    params:
        wrap=GPU_WRAP,
        device=DEVICE,
        spec=method_spec,
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
        "{params.wrap}python -m methods.distill --spec {params.spec:q} --data {input.data} --ipc {wildcards.ipc}"
        " --seed {wildcards.seed} --out {output} {params.backbone} {params.latents} --device {params.device}"
        " --threads {threads} > {log} 2>&1"
