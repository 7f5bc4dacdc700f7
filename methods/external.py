"""``external``: a distilled set made elsewhere (e.g. published with another paper), in ImageFolder
layout, passed through the same evaluation, metrics and tables.

``params.path`` holds one folder per class, named by the dataset's wnids (ImageNet subsets), its
class names (digits: ``0`` … ``9``) or zero-padded labels (``00000`` …, the suite's and RDED's own
layout). The first IPC images of each class in sorted filename order are taken (the reference
protocols' selection), centre-cropped to the dataset's image size. A folder whose classes do not
match the dataset's list is refused before anything is read.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from evaluation.core.errors import InputError
from evaluation.data.datasets import IMAGE_EXTENSIONS, DatasetInfo, read_image
from evaluation.data.synsets import class_folder

from .params import param
from .registry import DistillContext, SyntheticSet, register_method


@dataclass(frozen=True)
class ExternalParams:
    path: str = param(keyed_by_content=True)  # ImageFolder directory of the set: one folder per class (wnid,
    # class name or 00000-style label).


def class_folders(root: Path, info: DatasetInfo) -> list[Path]:
    """The class folders of ``root`` in label order, matched by wnid, class name or label."""
    if not root.is_dir():
        raise InputError(f"external set {root} does not exist; set params.path to an ImageFolder directory")
    folders = {p.name: p for p in root.iterdir() if p.is_dir()}
    for names in (info.wnids, info.class_names, tuple(class_folder(k) for k in range(info.num_classes))):
        if names and set(names) == set(folders):
            return [folders[name] for name in names]
    found = ", ".join(sorted(folders)[:4]) + (" ..." if len(folders) > 4 else "")
    raise InputError(f"external set {root}: its {len(folders)} class folders ({found}) do not match the "
                     f"{info.num_classes} classes of {info.name}; name one folder per class by wnid, class "
                     f"name or zero-padded label (00000, 00001, ...)")


def check_params(params: ExternalParams, info: DatasetInfo, sampler: dict) -> None:
    """The config-time check (registry ``check_params``): the folder exists and its classes match."""
    class_folders(Path(params.path), info)


@register_method("external", needs_backbone=False, uses_seed=False, params=ExternalParams,
                 check_params=check_params)
def distill(ctx: DistillContext) -> SyntheticSet:
    folders = class_folders(Path(ctx.params.path), ctx.dataset)
    size = ctx.data["digits_image_size" if ctx.dataset.source == "digits" else "imagenet_image_size"]
    images = []
    for folder in folders[ctx.classes.start:ctx.classes.stop]:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if len(files) < ctx.ipc:
            raise InputError(f"external set: {folder} holds {len(files)} images, fewer than ipc {ctx.ipc}; "
                             f"lower the IPC or add images")
        images += [read_image(path, size) for path in files[:ctx.ipc]]
    return SyntheticSet(torch.stack(images), torch.tensor(ctx.classes).repeat_interleave(ctx.ipc))
