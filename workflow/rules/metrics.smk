# Generation-quality and distribution metrics of every distilled set against cached real features.
from evaluation.metrics import metrics_spec, weights_spec


rule real_features:
    input:
        unpack(feature_inputs),
    output:
        FEATURES,
    params:
        integrity=integrity("real_features"),
        wrap=GPU_WRAP,
        device=DEVICE,
        # ImageNet images are read at the side the synthetic sets have, so both go through one resize
        spec=lambda w: as_json({"dataset": w.dataset, "extractor": w.extractor, "split": w.split,
                                "image_size": config["data"]["imagenet_image_size"],
                                **weights_spec(config["metrics"], w.extractor)}),
        teacher=lambda w, input: f"--teacher {input.teacher}" if "teacher" in input.keys() else "",
    threads: 1
    conda:
        ENV
    log:
        log_path("real_features", layout.FEATURES_JOB),
    benchmark:
        bench_path("real_features", layout.FEATURES_JOB)
    resources:
        gpu=GPU,
        mem_mb=8000,
        runtime=60,
    shell:
        "{params.wrap}python $DMGD_SCRIPTS/real_features.py --spec {params.spec:q} --data {input.data} --split {wildcards.split}"
        " --extractor {wildcards.extractor} {params.teacher} --out {output} --device {params.device}"
        " > {log} 2>&1"


rule measure:
    input:
        unpack(measure_inputs),
    output:
        METRICS,
    params:
        integrity=integrity("measure"),
        wrap=GPU_WRAP,
        device=DEVICE,
        spec=lambda w: as_json({"dataset": w.dataset, "method": w.method, "ipc": int(w.ipc),
                                "seed": int(w.seed), "metrics": metrics_spec(config["metrics"])}),
        teacher=lambda w, input: f"--teacher {input.teacher}" if "teacher" in input.keys() else "",
    threads: 1
    conda:
        ENV
    log:
        log_path("measure", layout.SET_JOB),
    benchmark:
        bench_path("measure", layout.SET_JOB)
    resources:
        gpu=GPU,
        mem_mb=8000,
        runtime=60,
    shell:
        "{params.wrap}python $DMGD_SCRIPTS/measure.py --spec {params.spec:q} --synset {input.synset}"
        " --fid-features {input.fid_features} --features {input.features} {params.teacher}"
        " --out {output} --device {params.device} > {log} 2>&1"
