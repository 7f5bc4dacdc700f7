"""The method registry: name -> how a method turns a dataset (and a backbone) into a synthetic set.

A method is a function ``distill(ctx: DistillContext) -> SyntheticSet`` registered with
``@register_method(name, needs_backbone=...)``. The DAG, the schema test and the contract tests
(tests/test_methods_contract.py) walk this registry, so a new method needs one module, one entry
here (its import at the bottom) and one config block.

A method distils the classes ``ctx.classes`` (all of the dataset's, or a chunk: methods/chunks.py)
and keys every seed and every per-class lookup (real images, latents, prototypes, modes, backbone
label) by the global dataset label, so that chunks merge into the unchunked set.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from evaluation.core.errors import InputError
from evaluation.data.datasets import DatasetInfo

from .chunks import check_classes


@dataclass
class DistillContext:
    dataset: DatasetInfo
    data_dir: Path                 # prepared dataset (evaluation.data.datasets)
    ipc: int
    seed: int
    params: dict = field(default_factory=dict)   # the method's own config block
    sampler: dict = field(default_factory=dict)  # shared sampler settings (config 'sampler')
    data: dict = field(default_factory=dict)     # config 'data' (image sizes, ImageNet root)
    backbone_dir: Path | None = None
    latents_path: Path | None = None             # real training latents (methods/diffusion/latents.py)
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
    check_params: Callable[[dict, DatasetInfo, dict], object] | None  # cheap check of a variant's params
                                # against a dataset and its effective sampler settings, before any job; raises
                                # InputError
    keyed_by_content: tuple[str, ...]  # params naming a folder whose content, not its path, keys the jobs
                                # (external's path): the workflow puts the folder's digest into the job's spec
    step_windows: tuple[str, ...]  # params that are step indices of the sampler's schedule (an int or a
                                # [lo, hi] pair; -1 = before the last step): rescaled when the steps change
                                # (evaluation/config/smoke.py)


METHODS: dict[str, MethodSpec] = {}


def register_method(name: str, *, needs_backbone: bool, needs_latents: bool = False,
                    table_note: str | None = None, finetune: str | None = None, uses_seed: bool = True,
                    ipc_limited_by_class: bool = False,
                    check_params: Callable[[dict, DatasetInfo, dict], object] | None = None,
                    keyed_by_content: tuple[str, ...] = (), step_windows: tuple[str, ...] = ()):
    def decorator(fn: Callable[[DistillContext], SyntheticSet]):
        if name in METHODS:
            raise ValueError(f"method '{name}' is registered twice")
        METHODS[name] = MethodSpec(name, fn, needs_backbone, needs_latents, table_note, finetune, uses_seed,
                                   ipc_limited_by_class, check_params, tuple(keyed_by_content), tuple(step_windows))
        return fn
    return decorator


def get_method(name: str) -> MethodSpec:
    if name not in METHODS:
        raise InputError(f"unknown method '{name}'; valid: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def list_methods() -> list[str]:
    return sorted(METHODS)


from . import d4m, dit, dmgd, external, mgd3, minimax, random_real  # noqa: F401  (registration side effects)
