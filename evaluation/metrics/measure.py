"""Entry point of the ``measure`` rule: every metric of one distilled set against cached real features.

``python workflow/scripts/measure.py --spec JSON --synset DIR --fid-features FILE.pt --features FILE.pt
[--teacher DIR] --out FILE.json --device cpu``

``spec`` = ``{"dataset", "method", "ipc", "seed", "metrics": {...}}`` (the config's ``metrics`` block).
FID and KID use ``metrics.fid_extractor`` (clean-fid); precision, recall, density, coverage, the OT
dataset distance and diversity use ``metrics.feature_extractor`` (DMGD supplementary A3.2); each reads
the weight file that ``metrics.inception_weights``/``metrics.vgg16_weights`` names (the manifest's
``weights``: extractor -> file read). The
JSON record holds each metric as ``{"value", ...}``, with half-sampling ``ci_low``/``ci_high`` (null
when ``bootstrap`` is 0) for FID and the four prdc metrics.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from evaluation.core.artifacts import load_torch_record, manifest, seal, write_json_atomic
from evaluation.core.errors import InputError
from evaluation.core.seeding import MetricStream, derive_seed
from evaluation.data.datasets import dataset_info
from evaluation.data.synsets import read_synset, synset_provenance
from . import extractor_weights, metrics_config
from .bootstrap import bootstrap, resample_indices
from .diversity import diversity
from .extractors import create_extractor
from .fid import CLEANFID_KID_SUBSETS, FidResampler, kid
from .ot_distance import ot_distance
from .prdc_metrics import PrdcResampler, prdc_values



class FeatureArtifactError(InputError):
    """A real-features file that does not match the metrics config; one line naming it."""


def load_real_features(path: Path, extractor: str, split: str) -> dict:
    record = load_torch_record(path, "real_features")
    for key, expected in (("extractor", extractor), ("split", split)):
        if record[key] != expected:
            raise FeatureArtifactError(f"{path}: features of {key} '{record[key]}', the metrics config asks "
                                       f"for '{expected}'; recompute them with evaluation.metrics.features")
    return record


def compute_metrics(cfg: dict, real_fid: np.ndarray, synthetic_fid: np.ndarray, real: np.ndarray,
                    synthetic: np.ndarray) -> tuple[dict, dict]:
    """(metrics, seconds per metric) of one synthetic set; ``cfg`` is a complete metrics block.

    ``*_fid`` are the FID/KID extractor's features, the others the feature extractor's; rows of the
    two synthetic arrays are the same images, so half-sample replicates are paired across metrics.
    """
    seconds, clock = {}, time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        seconds[name] = round(time.perf_counter() - clock, 3)
        clock = time.perf_counter()

    fid_of = FidResampler(real_fid, synthetic_fid)   # one eigh of the real covariance, shared by replicates
    value = {"fid": fid_of(np.arange(len(synthetic_fid)))}
    lap("fid")
    value.update(prdc_values(real, synthetic, cfg["nearest_k"]))
    lap("prdc")
    indices = resample_indices(len(synthetic), cfg["bootstrap"], derive_seed(cfg["seed"], MetricStream.BOOTSTRAP))
    # the prdc resampler precomputes distances: built only when replicates are drawn
    resamplers = (fid_of, PrdcResampler(real, synthetic, cfg["nearest_k"])) if len(indices) else None
    metrics = bootstrap(lambda row: {"fid": resamplers[0](row), **resamplers[1](row)}, value, indices,
                        cfg["ci"], min_count=cfg["nearest_k"] + 2)
    lap("bootstrap")
    kid_value, subset_size = kid(real_fid, synthetic_fid, CLEANFID_KID_SUBSETS, cfg["kid_subset_size"],
                                 derive_seed(cfg["seed"], MetricStream.KID))
    metrics["kid"] = {"value": kid_value, "subset_size": subset_size, "num_subsets": CLEANFID_KID_SUBSETS}
    lap("kid")
    ot_value, ot_real = ot_distance(real, synthetic, cfg["ot_max_real"], cfg["tsne_perplexity"],
                                    derive_seed(cfg["seed"], MetricStream.OT))
    metrics["ot_distance"] = {"value": ot_value, "real_count": ot_real}
    lap("ot_distance")
    metrics["diversity"] = {"value": diversity(synthetic)}
    lap("diversity")
    return metrics, seconds


def measure_set(spec: dict, synset_dir: Path, fid_features: Path, features: Path,
                teacher_dir: Path | None = None, device: str = "cpu", out: Path | None = None) -> dict:
    """The metrics record of one synthetic set (written atomically to ``out`` when given)."""
    started = time.time()
    cfg = metrics_config(spec["metrics"])
    images, _ = read_synset(synset_dir, dataset_info(spec["dataset"]).num_classes)
    split = cfg["reference_split"]
    real = {"fid": load_real_features(fid_features, cfg["fid_extractor"], split),
            "features": load_real_features(features, cfg["feature_extractor"], split)}
    extractors, synthetic = {}, {}
    for role, name in (("fid", cfg["fid_extractor"]), ("features", cfg["feature_extractor"])):
        if name not in extractors:
            extractors[name] = create_extractor(name, device, teacher_dir, extractor_weights(cfg, name))
            synthetic[name] = extractors[name].features(images)
    real_fid, real_features = (real[r]["features"].numpy() for r in ("fid", "features"))
    metrics, seconds = compute_metrics(cfg, real_fid, synthetic[cfg["fid_extractor"]], real_features,
                                       synthetic[cfg["feature_extractor"]])
    record = {key: spec[key] for key in ("dataset", "method", "ipc", "seed")}
    record.update(
        reference_split=split, count=len(images), reference_count=len(real_features),
        extractors={role: {"name": real[role]["extractor"], "resize": real[role]["resize"]} for role in real},
        metrics=metrics,
        manifest=manifest(spec, seed=cfg["seed"], device=device, started=started, metric_seconds=seconds,
                          synset=synset_provenance(synset_dir),
                          weights={name: extractor.weights for name, extractor in extractors.items()}))
    if out is not None:
        write_json_atomic(out, seal(record))
    return record
