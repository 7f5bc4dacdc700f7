rule evaluate:
    input:
        unpack(eval_inputs),
    output:
        f"{RESULTS}/eval/{{dataset}}/{{method}}/ipc{{ipc}}/seed{{seed}}/{{protocol}}-{{network}}-rep{{repeat}}.json",
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
        f"{LOGS}/evaluate/{{dataset}}/{{method}}/ipc{{ipc}}-seed{{seed}}-{{protocol}}-{{network}}-rep{{repeat}}.log",
    benchmark:
        f"{BENCH}/evaluate/{{dataset}}/{{method}}/ipc{{ipc}}-seed{{seed}}-{{protocol}}-{{network}}-rep{{repeat}}.tsv"
    resources:
        gpu=GPU,
        mem_mb=4000,
        runtime=240,
    shell:
        "{params.wrap}python -m evaluation.protocols.train synset --spec {params.spec:q} --synset {input.synset}"
        " --data {input.data} {params.teacher} --out {output} --device {params.device} --threads {threads} > {log} 2>&1"
