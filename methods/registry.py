"""The method registry: name -> how a method turns a dataset (and a backbone) into a synthetic set.

A method is a function ``distill(ctx: DistillContext) -> SyntheticSet`` registered with
``@register_method(name, needs_backbone=..., params=<its parameter dataclass>)`` (methods/params.py).
The DAG, the config schema (its method names and each method's ``params`` block are generated from
here: evaluation/config/schema.py) and the contract tests (tests/test_methods_contract.py) walk this
registry, so a new method is one module and one config block: a module of this package is listed in
``BUILTIN_MODULES``, any other file in the config's ``method_modules`` (:func:`load_method_modules`).

A method distils the classes ``ctx.classes`` (all of the dataset's, or a chunk: methods/chunks.py)
and keys every seed and every per-class lookup (real images, latents, prototypes, modes, backbone
label) by the global dataset label, so that chunks merge into the unchunked set.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from evaluation.core.errors import InputError
from evaluation.data.datasets import DatasetInfo

from .chunks import check_classes
from .params import KEYED_BY_CONTENT, STEP_WINDOW, NoParams, flagged_fields


@dataclass
class DistillContext:
    dataset: DatasetInfo
    data_dir: Path                 # prepared dataset (evaluation.data.datasets)
    ipc: int
    seed: int
    params: object = field(default_factory=NoParams)  # the method's config block as its parameter dataclass
    sampler: dict = field(default_factory=dict)  # shared sampler settings (config 'sampler')
    data: dict = field(default_factory=dict)     # config 'data' (image sizes, ImageNet root)
    backbone_dir: Path | None = None
    latents_path: Path | None = None             # real training latents (methods/diffusion/latents.py)
    teacher_dir: Path | None = None              # the dataset's teacher (train_teacher), for encoder 'teacher'
    encoder_weights: Path | None = None          # the frozen encoder's weight file (config 'encoders')
    statistics_path: Path | None = None          # class statistics of the encoder (methods/encoder/statistics.py)
    device: str = "cpu"
    classes: range | None = None                 # dataset labels to distil (a chunk); None = all

    def __post_init__(self):
        self.classes = check_classes(range(self.dataset.num_classes) if self.classes is None else self.classes,
                                     self.dataset.num_classes)

    def rows(self, labels: torch.Tensor) -> torch.Tensor:
        """Position of each dataset label in the per-class tensors a method builds over ``classes``."""
        return labels - self.classes.start


@dataclass
class SyntheticSet:
    """Images (uint8 Nx3xSxS) and dataset labels, grouped by class in generation order, and any
    per-sample records the method keeps (written to the set's manifest). A record is a list with
    one entry per class of ``ctx.classes`` in class order, so that merging chunks concatenates them."""
    images: torch.Tensor
    labels: torch.Tensor
    records: dict = field(default_factory=dict)


@dataclass(frozen=True)
class MethodSpec:
    name: str
    distill: Callable[[DistillContext], SyntheticSet]
    needs_backbone: bool
    needs_latents: bool
    table_note: str | None    # footnote of every table that shows the method
    finetune: str | None      # entry point of a rule that fine-tunes the backbone for the method
    uses_seed: bool           # False for methods whose output does not depend on the seed (external)
    ipc_limited_by_class: bool  # takes IPC real images (or IPC k-means prototypes) of each class, so IPC
                                # may not exceed the smallest class (digits: checked with the config)
    params: type               # the parameter dataclass (methods/params.py): the schema's params block
    check_params: Callable[[object, DatasetInfo, dict], object] | None  # cheap check of a variant's params
                                # against a dataset and its effective sampler settings, before any job; raises
                                # InputError
    encoder_param: str | None   # the param naming a frozen encoder (methods/encoder/encoders.py): the workflow
                                # gives the job that encoder's weight file (config 'encoders') or the teacher
    needs_class_statistics: bool  # reads the real class-mean features of its params' encoder, synthetic_resolution
                                # and crop_resolution (rule class_statistics, methods/encoder/statistics.py)
    joint_classes: bool         # optimises all classes together, so a set is never split into class chunks:
                                # the workflow gives it one chunk of every class, a --classes subset is refused

    @property
    def keyed_by_content(self) -> tuple[str, ...]:
        """The params naming a folder whose content, not its path, keys the jobs (external's path):
        the workflow puts the folder's digest into the job's spec. Fields declared
        ``param(..., keyed_by_content=True)``."""
        return flagged_fields(self.params, KEYED_BY_CONTENT)

    @property
    def step_windows(self) -> tuple[str, ...]:
        """The params that are step indices of the sampler's schedule (an int or a [lo, hi] pair; -1 =
        before the last step), rescaled when the steps change (evaluation/config/smoke.py). Fields
        declared ``param(..., step_window=True)``."""
        return flagged_fields(self.params, STEP_WINDOW)

    def encoder(self, params: dict) -> str | None:
        """The frozen encoder a variant's (validated) ``params`` name, or None for a method without one."""
        return params[self.encoder_param] if self.encoder_param else None

    def parse_params(self, values: dict) -> object:
        """A variant's validated ``params`` block as the method's parameter dataclass."""
        return self.params(**values)


METHODS: dict[str, MethodSpec] = {}


def register_method(name: str, *, needs_backbone: bool, needs_latents: bool = False,
                    table_note: str | None = None, finetune: str | None = None, uses_seed: bool = True,
                    ipc_limited_by_class: bool = False, params: type = NoParams,
                    check_params: Callable[[object, DatasetInfo, dict], object] | None = None,
                    encoder_param: str | None = None, needs_class_statistics: bool = False,
                    joint_classes: bool = False):
    def decorator(fn: Callable[[DistillContext], SyntheticSet]):
        if name in METHODS:
            raise ValueError(f"method '{name}' is registered twice")
        METHODS[name] = MethodSpec(name, fn, needs_backbone, needs_latents, table_note, finetune, uses_seed,
                                   ipc_limited_by_class, params, check_params, encoder_param, needs_class_statistics,
                                   joint_classes)
        return fn
    return decorator


def get_method(name: str) -> MethodSpec:
    if name not in METHODS:
        raise InputError(f"unknown method '{name}'; valid: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def list_methods() -> list[str]:
    return sorted(METHODS)


# The modules of this package that register a method, in the order of the schema's method names.
BUILTIN_MODULES = ("random_real", "dit", "dmgd", "mgd3", "d4m", "minimax", "external", "lgm", "sfm")
# Set by the workflow to the config's method_modules (absolute paths, JSON), so that every job
# process that imports this registry registers the same methods as the DAG.
METHOD_MODULES_ENV = "DISTILL_METHOD_MODULES"
LOADED_MODULES: dict[Path, object] = {}


def method_names() -> list[str]:
    """The registered names, built-in ones in ``BUILTIN_MODULES`` order, then those of
    ``method_modules`` in registration order (the schema's enum, independent of import order)."""
    rank = {f"{__package__}.{module}": i for i, module in enumerate(BUILTIN_MODULES)}
    return sorted(METHODS, key=lambda name: rank.get(METHODS[name].distill.__module__, len(rank)))


def load_method_modules(paths: list[str]) -> None:
    """Import each Python file of ``paths`` (the config's ``method_modules``) once, so that the
    methods it registers exist; a file already loaded is skipped."""
    for entry in paths:
        path = Path(entry).resolve() if isinstance(entry, str) else None
        if path is None or not path.is_file():
            raise InputError(f"method_modules: {entry!r} is not a Python file; give the path of a module "
                             f"that calls register_method")
        if path in LOADED_MODULES:
            continue
        name = f"method_module_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as err:  # the plugin's own failure, as the one-line config error
            first = str(err).splitlines()[0] if str(err) else ""
            raise InputError(f"method_modules: {path} failed to import ({type(err).__name__}: {first})") from None
        LOADED_MODULES[path] = module


for _module in BUILTIN_MODULES:
    importlib.import_module(f".{_module}", __package__)
load_method_modules(json.loads(os.environ.get(METHOD_MODULES_ENV, "[]")))
