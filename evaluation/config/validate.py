"""Checks of a profile's config that the JSON schema cannot express, run at DAG start-up.

The schema (workflow/schemas/config.schema.yaml completed from the registries: evaluation/config/schema.py)
checks types, names, enums and defaults; this checks values against the datasets and the sampler, so that a bad config fails before
any job with one line naming the value and the valid choices.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path

import jsonschema
import yaml

from methods.encoder.encoders import check_configured, encoder_names
from methods.registry import get_method, load_method_modules

from evaluation.core.errors import InputError
from evaluation.data.datasets import dataset_info, digits_train_class_sizes, imagenet_class_folders
from evaluation.protocols.networks import list_networks
from evaluation.protocols.protocols import reference_protocols, resolve_protocol
from .schema import load_schema
from .smoke import apply_smoke


class ConfigError(InputError):
    """A config value that cannot work; the message names the key, the value and the fix."""


def schema_error(config: dict) -> str | None:
    """The most relevant schema violation as one line (``key.path: message``), or None."""
    validator = jsonschema.Draft202012Validator(load_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is None:
        return None
    where = ".".join(str(p) for p in error.absolute_path) or "config"
    return f"{where}: {error.message}"


def _default_filling_validator():
    """Draft 2020-12 validator that fills each missing property with a *copy* of its default.

    snakemake.utils.validate fills defaults by reference, so one ``params: {}`` default object is
    shared by every method variant and a default set for one (``selection``) leaks into the others.
    """
    base = jsonschema.Draft202012Validator
    check_properties = base.VALIDATORS["properties"]

    def properties_with_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub:
                    instance.setdefault(name, copy.deepcopy(sub["default"]))
        yield from check_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(base, {"properties": properties_with_defaults})


def validate_config(config: dict) -> dict:
    """:func:`prepare_config` in place; returns the config."""
    prepare_config(config)
    return config


def prepare_config(config: dict) -> list[str]:
    """Removed entries dropped, the ``method_modules`` imported (their methods join the schema),
    schema and finite-number checks (one-line error), schema defaults filled in place, protocols
    resolved, the smoke reductions applied (evaluation/config/smoke.py), then :func:`check_config`.
    Returns the smoke reductions (none unless ``smoke: true``)."""
    drop_removed_entries(config)
    modules = config.get("method_modules", [])
    load_method_modules(modules if isinstance(modules, list) else [modules])
    if config.get("smoke") in ("true", "false"):  # `--config smoke=true` arrives as a string
        config["smoke"] = config["smoke"] == "true"
    message = schema_error(config) or non_finite_number(config)
    if message:
        raise ConfigError(f"{message} (see workflow/schemas/config.schema.yaml)")
    _default_filling_validator()(load_schema()).validate(config)
    resolve_protocols(config)
    reductions = apply_smoke(config)
    check_config(config)
    return reductions


def non_finite_number(value: object, where: str = "config") -> str | None:
    """The first NaN or infinite float in ``value`` as one line (``key.path: nan is not a finite
    number; ...``), or None. JSON Schema's bounds cannot refuse NaN (every comparison with it is
    false, so ``cfg_scale: .nan`` passes ``minimum: 1``), hence one walk over the whole config;
    run after the schema check, which bounds the config's size."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{where}: {value} is not a finite number; give a finite value"
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        message = non_finite_number(child, key if where == "config" else f"{where}.{key}")
        if message:
            return message
    return None


def check_unique_keys(path: str | Path) -> None:
    """Refuse a YAML (or JSON) config file that repeats a key in one mapping, which YAML loaders
    (Snakemake's too) resolve silently by keeping the last: two ``methods:`` entries of one name
    would run one of them. The file is composed, not constructed: aliases stay shared nodes,
    each visited once, so an alias bomb costs its size on disk, not its expansion."""
    try:
        root = yaml.compose(Path(path).read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(f"{path}: not a readable YAML file ({first}); give a YAML config file") from None
    seen: set[int] = set()
    pending = [(root, "")]
    while pending:
        node, where = pending.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: dict[str, int] = {}
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else f"<{key.id} key>"
                if name in keys and isinstance(key, yaml.ScalarNode):
                    raise ConfigError(f"{path}: line {key.start_mark.line + 1}: duplicate key "
                                      f"'{where}{name}' (first at line {keys[name]}); keep one of them")
                keys[name] = key.start_mark.line + 1
                pending.append((value, f"{where}{name}."))
        elif isinstance(node, yaml.SequenceNode):
            pending.extend((item, f"{where}{index}.") for index, item in enumerate(node.value))


REMOVABLE = (("methods",), ("evaluation", "networks"), ("protocols",))


def drop_removed_entries(config: dict) -> None:
    """Delete the method variants, networks and protocol entries set to null: a second --configfile
    deep-merges into the first, so ``methods: {d4m: null}`` is how it removes a profile's entry."""
    for path in REMOVABLE:
        block = config
        for key in path:
            block = block.get(key) if isinstance(block, dict) else None
        if isinstance(block, dict):
            for name in [name for name, value in block.items() if value is None]:
                del block[name]


def resolve_protocols(config: dict) -> None:
    """Replace ``config['protocols']`` by the complete settings of every protocol the profile runs
    (plus ``hard_label``, whose settings train the teacher): each entry on top of its reference."""
    entries = config["protocols"]
    unknown = [name for name in config["evaluation"]["protocols"]
               if name not in entries and name not in reference_protocols()]
    if unknown:
        raise ConfigError(f"evaluation.protocols: unknown protocol '{unknown[0]}'; valid: "
                          f"{', '.join(sorted({*reference_protocols(), *entries}))} (define a variant under "
                          f"protocols with a base)")
    names = dict.fromkeys(["hard_label", *config["evaluation"]["protocols"], *entries])
    try:
        config["protocols"] = {name: resolve_protocol(name, entries.get(name)) for name in names}
    except ValueError as err:
        raise ConfigError(str(err)) from None


def check_config(config: dict) -> None:
    for name, variant in config["methods"].items():
        try:
            method = get_method(variant["method"])
            sampler = {**config["sampler"], **variant.get("sampler", {})}
            for dataset in config["datasets"] if method.check_params else ():
                method.check_params(method.parse_params(variant["params"]), dataset_info(dataset), sampler)
            if method.encoder_param:
                check_configured(method.encoder(variant["params"]), config["encoders"])
        except ValueError as err:
            raise ConfigError(f"methods.{name}: {err}") from None
    for name, protocol in config["protocols"].items():
        for arch in protocol["lr_by_arch"]:
            if arch not in list_networks():
                raise ConfigError(f"protocols.{name}.lr_by_arch: unknown arch '{arch}'; "
                                  f"valid: {', '.join(list_networks())}")
    for name, network in config["evaluation"]["networks"].items():
        known = sorted({*reference_protocols(), *config["protocols"]})
        unknown = [p for p in network.get("protocols", []) if p not in known]
        if unknown:
            raise ConfigError(f"evaluation.networks.{name}.protocols: unknown protocol '{unknown[0]}'; "
                              f"valid: {', '.join(known)}")
        for protocol in network.get("protocols", config["evaluation"]["protocols"]):
            if protocol in config["evaluation"]["protocols"] and config["protocols"][protocol]["loss"] == "feature_mse" \
                    and network["arch"] != "inherited_classifier":
                raise ConfigError(f"evaluation.networks.{name}: protocol {protocol} (loss feature_mse) needs arch "
                                  f"inherited_classifier, not {network['arch']}; list this network's protocols")
        for key in ("encoder", "distill_encoder"):
            if key in network:
                if network[key] not in encoder_names():
                    raise ConfigError(f"evaluation.networks.{name}.{key}: unknown encoder '{network[key]}'; "
                                      f"valid: {', '.join(encoder_names())}")
                check_configured(network[key], config["encoders"])
    limited = [name for name, variant in config["methods"].items()
               if get_method(variant["method"]).ipc_limited_by_class]
    for name in config["datasets"]:
        info = dataset_info(name)
        if info.source == "imagenet":
            imagenet_class_folders(config["imagenet_root"], info)
    teacher = config["teacher"]
    if teacher["source"] == "torchvision":
        if (teacher["network"]["arch"], teacher["network"].get("norm")) != ("resnet", "batch"):
            raise ConfigError("teacher.source torchvision needs teacher.network {arch: resnet, depth: 18, "
                              f"norm: batch}} (torchvision's layers), not {teacher['network']}")
        for name in config["datasets"]:
            if dataset_info(name).source != "imagenet":
                raise ConfigError(f"teacher.source torchvision knows ImageNet classes only; dataset {name} "
                                  f"needs teacher.source train")
    backbone = config["backbone"]
    if backbone["source"] == "train":
        trained_on = dataset_info(backbone["train"]["dataset"])
        for name in config["datasets"]:
            if dataset_info(name).backbone_labels != trained_on.backbone_labels:
                raise ConfigError(f"dataset {name} needs a backbone with its classes, but backbone.source "
                                  f"'train' learns {trained_on.name}; set backbone.source to a DiT hub id "
                                  f"or directory")
    if limited and "digits" in config["datasets"]:
        check_ipcs(config, "digits", digits_train_class_sizes(config["data"]), limited)


def check_ipcs(config: dict, dataset: str, class_sizes: list[int], limited: list[str]) -> None:
    """The largest IPC against the smallest class of ``dataset``'s train split (``class_sizes``), for
    the method variants ``limited`` whose method takes IPC real images or k-means prototypes per class."""
    ipc, smallest = max(config["ipcs"]), min(range(len(class_sizes)), key=class_sizes.__getitem__)
    if ipc > class_sizes[smallest]:
        raise ConfigError(f"ipcs: ipc {ipc} exceeds the {class_sizes[smallest]} training images of class "
                          f"{smallest} of {dataset}, and method variant '{limited[0]}' "
                          f"({config['methods'][limited[0]]['method']}) needs ipc real images per class; "
                          f"lower the IPC to at most {class_sizes[smallest]} or remove the variant")
