"""`smoke: true`: run any profile's whole path in minutes before spending GPU hours on it.

The profile keeps its datasets, methods, protocols, networks, metrics and backbone source; only the
amount of work shrinks, by the caps of ``evaluation/config/smoke.yaml`` (a value already below its cap
stays). Sampler steps shrink with every step-index window of the methods (the parameter fields declared
``param(..., step_window=True)``: ``MethodSpec.step_windows``) rescaled from the variant's steps ``S`` to
the smoke steps ``s`` by ``i -> floor(i * s / S)`` (``-1`` stays ``-1``): a window over step indices
keeps its place in the schedule, a non-empty window stays non-empty and one at or past the first step
(``>= S``, "never") stays past it. Outputs go to ``results/<profile>-smoke/`` so that they never mix
with real results, and every reduction is printed at start and written into each artifact's manifest
(``SMOKE_ENV``, evaluation/core/artifacts.py).
"""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import yaml

from methods.registry import get_method

from evaluation.data.datasets import dataset_info

SMOKE_FILE = Path(__file__).resolve().parent / "smoke.yaml"


def smoke_settings() -> dict:
    return yaml.safe_load(SMOKE_FILE.read_text())


def rescale_step(index: int, steps: int, new_steps: int) -> int:
    """Step index ``index`` of an ``steps``-step schedule in a ``new_steps``-step one (-1 stays -1)."""
    return index if index < 0 else math.floor(index * new_steps / steps)


def rescale_window(value, steps: int, new_steps: int):
    """A step-index parameter (an int or a [lo, hi] pair) rescaled by :func:`rescale_step`."""
    if isinstance(value, list):
        return [rescale_step(v, steps, new_steps) for v in value]
    return rescale_step(value, steps, new_steps)


class Reductions:
    """The caps applied to a config, one line each (``where: old -> new``)."""

    def __init__(self):
        self.lines: list[str] = []

    def set(self, block: dict, key: str, value, where: str) -> None:
        if block.get(key) != value:
            self.lines.append(f"{where}: {json.dumps(block.get(key))} -> {json.dumps(value)}")
            block[key] = value

    def cap(self, block: dict, key: str, cap: int, where: str) -> None:
        old = block.get(key)
        if old is None or not isinstance(old, (int, float)) or old > cap:
            self.set(block, key, cap, where)


def apply_smoke(config: dict) -> list[str]:
    """Shrink a validated config (schema defaults filled, protocols resolved) in place to a smoke run;
    returns the reductions, one line each. A config without ``smoke: true`` is left unchanged."""
    if not config.get("smoke"):
        return []
    caps, red = smoke_settings(), Reductions()
    red.set(config, "profile", f"{config['profile']}-smoke", "profile")
    red.set(config, "ipcs", caps["ipcs"], "ipcs")
    red.set(config, "seeds", config["seeds"][:caps["seeds"]], "seeds")
    red.cap(config["evaluation"], "repeats", caps["repeats"], "evaluation.repeats")

    if any(dataset_info(name).source == "imagenet" for name in config["datasets"]):
        data = config["data"]
        red.cap(data, "imagenet_max_per_class", caps["imagenet_max_per_class"], "data.imagenet_max_per_class")
        red.cap(data, "imagenet_val_per_class", caps["imagenet_val_per_class"], "data.imagenet_val_per_class")

    shared_steps = config["sampler"]["steps"]
    _shrink_sampler(config["sampler"], caps, red, "sampler")
    for name, variant in config["methods"].items():
        method = get_method(variant["method"])
        old_steps = variant.get("sampler", {}).get("steps", shared_steps)
        if "sampler" in variant:
            _shrink_sampler(variant["sampler"], caps, red, f"methods.{name}.sampler")
        new_steps = variant.get("sampler", {}).get("steps", config["sampler"]["steps"])
        params = variant["params"]
        for key in method.step_windows:
            if key in params:
                red.set(params, key, rescale_window(copy.deepcopy(params[key]), old_steps, new_steps),
                        f"methods.{name}.params.{key} (step indices of {old_steps} -> {new_steps} steps)")
        for key, cap in caps["method_params"].get(variant["method"], {}).items():
            red.cap(params, key, cap, f"methods.{name}.params.{key}")

    for name, protocol in config["protocols"].items():
        for key, cap in caps["protocol"].items():
            red.cap(protocol, key, cap, f"protocols.{name}.{key}")
        red.set(protocol, "epoch_scale", 1.0, f"protocols.{name}.epoch_scale")
    red.cap(config["teacher"], "epochs", caps["teacher_epochs"], "teacher.epochs")
    backbone = config["backbone"]
    red.cap(backbone, "check_samples_per_class", caps["backbone_check_samples_per_class"],
            "backbone.check_samples_per_class")
    red.cap(backbone, "min_recognisability", caps["backbone_min_recognisability"], "backbone.min_recognisability")
    if backbone["source"] == "train":
        for key, cap in caps["backbone_train"].items():
            red.cap(backbone["train"], key, cap, f"backbone.train.{key}")
    for key, cap in caps["metrics"].items():
        red.cap(config["metrics"], key, cap, f"metrics.{key}")
    return red.lines


def _shrink_sampler(sampler: dict, caps: dict, red: Reductions, where: str) -> None:
    if "steps" in sampler:
        red.cap(sampler, "steps", caps["sampler_steps"], f"{where}.steps")
    if "batch_size" in sampler:
        red.cap(sampler, "batch_size", caps["sampler_batch_size"], f"{where}.batch_size")
