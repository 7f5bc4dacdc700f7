"""``random``: k real training images per class (the "Random" rows of the papers' tables).

Two selections: ``seeded`` draws k images per class without replacement from a seed derived from
(seed, class); ``first_k`` is what the reference code (IDC/Minimax ``--slct_type random``) really
does: the first k files of each class in sorted filename order (methods_and_protocols.md §3).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from evaluation.core.errors import InputError
from evaluation.core.seeding import generator
from evaluation.data.datasets import load_split, split_labels, split_paths

from .params import param
from .registry import DistillContext, SyntheticSet, register_method


@dataclass(frozen=True)
class RandomParams:
    selection: str = param("seeded", enum=["seeded", "first_k"])  # seeded = k images drawn without replacement;
    # first_k = the reference code's first k files in sorted order (IDC/Minimax --slct_type random)


def select_indices(labels: torch.Tensor, num_classes: int, ipc: int, seed: int, selection: str,
                   paths: list[str] | None = None, classes: range | None = None) -> list[int]:
    """Indices into the train split: ipc per class of ``classes`` (default all), in label order."""
    chosen = []
    for c in range(num_classes) if classes is None else classes:
        members = torch.nonzero(labels == c).flatten()
        if ipc > len(members):
            raise InputError(f"ipc {ipc} exceeds the {len(members)} training images of class {c}; "
                             f"lower the IPC in the config")
        if selection == "first_k":
            order = sorted(members.tolist(), key=lambda i: (paths[i] if paths else i))
            chosen += order[:ipc]
        else:
            perm = torch.randperm(len(members), generator=generator(seed, c))
            chosen += members[perm[:ipc]].tolist()
    return chosen


@register_method("random", needs_backbone=False, ipc_limited_by_class=True, params=RandomParams)
def distill(ctx: DistillContext) -> SyntheticSet:
    labels = split_labels(ctx.data_dir, "train")
    indices = select_indices(labels, ctx.dataset.num_classes, ctx.ipc, ctx.seed, ctx.params.selection,
                             split_paths(ctx.data_dir, "train"), ctx.classes)
    size = None if ctx.dataset.source == "digits" else ctx.data["imagenet_image_size"]
    images, picked = load_split(ctx.data_dir, "train", image_size=size, indices=indices)
    return SyntheticSet(images, picked)
