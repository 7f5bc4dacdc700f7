"""The config schema: workflow/schemas/config.schema.yaml completed from the registries.

The YAML file holds everything but the names and parameters the registries own: a ``registry: <name>``
keyword stands where a value must name an entry of that registry and becomes ``enum: [its names]``,
and the ``params`` block of each method variant is generated from the method's parameter dataclass
(methods/params.py). A method, network, protocol, dataset or feature extractor added to its registry
is thus valid in the config, with its parameters checked and defaulted, without an edit here or in the
YAML. Every registry imported here is cheap to import (the extractors' leaves torchvision and clean-fid
to extractor creation), since the DAG's start-up imports this module.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml

from evaluation.data.datasets import DATASETS
from evaluation.metrics.extractors import EXTRACTORS
from evaluation.protocols.networks import list_networks
from evaluation.protocols.protocols import reference_protocols
from methods.encoder.encoders import ENCODERS
from methods.params import params_schema
from methods.registry import get_method, method_names

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"

# registry name in the YAML -> its names, in the order the schema's error messages list them
REGISTRIES: dict[str, Callable[[], list[str]]] = {
    "methods": method_names,
    "networks": list_networks,
    "protocols": lambda: list(reference_protocols()),
    "datasets": lambda: list(DATASETS),
    "extractors": lambda: list(EXTRACTORS),
    "encoders": lambda: sorted(ENCODERS),
}


def load_schema() -> dict:
    """The complete schema, built from the YAML and the registries as they are now (after
    ``method_modules`` are loaded)."""
    schema = with_registry_enums(yaml.safe_load(SCHEMA_FILE.read_text()))
    schema["properties"]["methods"]["additionalProperties"]["allOf"] = [
        method_params_block(name) for name in method_names()]
    return schema


def with_registry_enums(node):
    """``node`` with every ``registry: <name>`` replaced by ``enum: [the registry's names]``."""
    if isinstance(node, list):
        return [with_registry_enums(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: with_registry_enums(value) for key, value in node.items()}
    if isinstance(node.get("registry"), str) and node["registry"] in REGISTRIES:
        node["enum"] = REGISTRIES[node.pop("registry")]()
    return node


def method_params_block(name: str) -> dict:
    """``if method is <name> then params follows its dataclass`` (and must be given when a
    parameter has no default)."""
    params = params_schema(get_method(name).params)
    then = {"properties": {"params": params}}
    if "required" in params:
        then["required"] = ["params"]
    return {"if": {"properties": {"method": {"const": name}}}, "then": then}
