"""Checks of a profile's config that the JSON schema cannot express, run at DAG start-up.

The schema (workflow/schemas/config.schema.yaml) checks types, enums and defaults; this checks
names against the registries and values against the datasets, so that a bad config fails before
any job with one line naming the value and the valid choices.
"""
from __future__ import annotations

from methods.registry import get_method

from .datasets import dataset_info
from .networks import list_networks


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key, the value and the fix."""


def check_config(config: dict) -> None:
    for name, variant in config["methods"].items():
        try:
            get_method(variant["method"])
        except ValueError as err:
            raise ConfigError(f"methods.{name}: {err}") from None
    for name, network in config["evaluation"]["networks"].items():
        if network["arch"] not in list_networks():
            raise ConfigError(f"evaluation.networks.{name}: unknown arch '{network['arch']}'; "
                              f"valid: {', '.join(list_networks())}")
    backbone = config["backbone"]
    if backbone["source"] == "train":
        trained_on = dataset_info(backbone["train"]["dataset"])
        for name in config["datasets"]:
            if dataset_info(name).backbone_labels != trained_on.backbone_labels:
                raise ConfigError(f"dataset {name} needs a backbone with its classes, but backbone.source "
                                  f"'train' learns {trained_on.name}; set backbone.source to a DiT hub id "
                                  f"or directory")
