"""Generation-quality and distribution metrics of a distilled set (DMGD supplementary A3.2).

One module per job: ``extractors`` (feature networks), ``fid`` (clean-fid FID and KID),
``prdc_metrics`` (precision/recall/density/coverage), ``bootstrap`` (intervals), ``ot_distance``
(t-SNE + exact OT), ``diversity``. All metrics work on feature arrays; ``evaluation.features`` and
``evaluation.measure`` are the entry points that produce and consume them.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from ..errors import InputError

# evaluation.config.SCHEMA_FILE, read here without importing the method registry that module needs
SCHEMA_FILE = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
IGNORED_KEYS = ("enabled",)   # a DAG switch inside the config block, not a metric setting


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
