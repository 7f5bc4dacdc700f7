"""Generation-quality and distribution metrics of a distilled set (DMGD supplementary A3.2).

One module per job: ``extractors`` (the feature extractors' registry; their networks in
``feature_models``), ``fid`` (clean-fid FID and KID), ``prdc_metrics`` (precision/recall/density/
coverage), ``bootstrap`` (intervals), ``ot_distance`` (t-SNE + exact OT), ``diversity``. All metrics
work on feature arrays; ``features`` and ``measure`` are the entry points that produce and consume
them (rules ``real_features`` and ``measure``), and ``backbone_check`` the ``check_backbone`` rule's
(the teacher's recognisability of backbone samples).
"""
from __future__ import annotations

from pathlib import Path

import yaml

from evaluation.core.errors import InputError

# evaluation.config.schema.SCHEMA_FILE, read here without importing the method registry that module needs
SCHEMA_FILE = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
FIGURE_KEYS = ("figure_max_real", "figure_max_synthetic")   # the figures' sample sizes, not a measure's
IGNORED_KEYS = ("enabled", *FIGURE_KEYS)   # a DAG switch and the figures' settings, not metric settings


def metrics_config(block: dict) -> dict:
    """The ``metrics`` config block with the schema's defaults filled in; one-line error on an
    unknown key."""
    properties = yaml.safe_load(SCHEMA_FILE.read_text())["properties"]["metrics"]["properties"]
    settings = {k: p["default"] for k, p in properties.items() if k not in IGNORED_KEYS}
    unknown = sorted(set(block) - set(properties))
    if unknown:
        raise InputError(f"metrics.{unknown[0]} is not a metrics setting; valid: {', '.join(settings)}")
    settings.update((k, v) for k, v in block.items() if k not in IGNORED_KEYS)
    return settings


# The config key of each extractor's weight file (null: where its library looks by default); the
# teacher extractor reads the teacher directory instead. Kept here, beside the config block and free
# of torch imports, because the Snakemake rules read it at DAG start-up.
WEIGHTS_KEYS = {"inception": "inception_weights", "vgg16_fc7": "vgg16_weights"}


def extractor_weights(block: dict, extractor: str) -> str | None:
    """The weight file that the ``metrics`` config ``block`` names for ``extractor``, or None."""
    key = WEIGHTS_KEYS.get(extractor)
    return block.get(key) if key else None


# Job specs (rule params) leave out the weight keys that are null: a default profile's spec, and so
# a finished job, stays as it was before the keys existed (the jobs fill the nulls back in).

def weights_spec(block: dict, extractor: str) -> dict:
    """``{"weights": file}`` for the ``real_features`` spec of ``extractor`` when ``block`` names
    one; ``{}`` otherwise."""
    path = extractor_weights(block, extractor)
    return {} if path is None else {"weights": path}


def metrics_spec(block: dict) -> dict:
    """The ``metrics`` block for the ``measure`` spec: without the figures' keys and the weight keys
    that are null (so that neither re-runs a finished measure job)."""
    return {key: value for key, value in block.items() if key not in FIGURE_KEYS and
            (value is not None or key not in WEIGHTS_KEYS.values())}
