"""Entry point of the ``distill`` rule: run one method variant and write its synthetic set.

Usage: ``python workflow/scripts/distill.py --spec JSON --data DIR --ipc K --seed S --out DIR
[--classes START:STOP] [--backbone DIR] [--latents FILE] [--teacher DIR] [--statistics FILE] [--device cpu]``,
where the spec holds the variant ({method, params}), the dataset name, the config's ``sampler`` and ``data`` blocks
and, for a method with a frozen encoder, ``encoder_weights`` (the config's ``encoders`` file of that encoder;
``--teacher`` gives the stand-in 'teacher', ``--statistics`` the class statistics).
``--classes`` (half-open, dataset labels; default all) distils one chunk of the classes into the
same layout (class folders named by global label, ``labels.csv`` with global labels) with the
range in ``manifest.json`` (``classes: [START, STOP]``); ``python workflow/scripts/merge_chunks.py`` joins
the chunks into the full set (methods/chunks.py).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from evaluation.core.artifacts import manifest
from evaluation.core.errors import InputError
from evaluation.data.datasets import dataset_info
from evaluation.data.synsets import write_synset

from .chunks import format_classes
from .registry import DistillContext, SyntheticSet, get_method


def check_synset(name: str, synset: SyntheticSet, classes: range, ipc: int) -> None:
    """The method contract: ipc images per class of ``classes`` in class order, per-class records."""
    expected = torch.tensor(classes).repeat_interleave(ipc)
    if not torch.equal(synset.labels.cpu(), expected):
        raise RuntimeError(f"method '{name}' returned labels that are not {ipc} per class of classes "
                           f"{classes.start}:{classes.stop} in class order; a method must return ipc images per "
                           f"class of ctx.classes, grouped by class, labelled by dataset label")
    for key, value in synset.records.items():
        if not isinstance(value, list) or len(value) != len(classes):
            raise RuntimeError(f"method '{name}' returned record '{key}' that is not a list with one entry per "
                               f"class ({len(classes)}); key per-class records by ctx.classes in class order")


IMAGE_SIZE_KEYS = {"digits": "digits_image_size", "imagenet": "imagenet_image_size"}
LATENT_BYTES_PER_PIXEL = 4 * 4 / 64   # DiT's SD-VAE latent: 4 float32 channels at 1/8 of the image side


def host_memory() -> int:
    """Bytes the job may allocate on the host: psutil's available memory, else the physical memory."""
    try:
        import psutil
    except ImportError:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return psutil.virtual_memory().available


def check_memory(ipc: int, classes: range, size: int, generates: bool, device: str) -> None:
    """Refuse, before anything is allocated, a set that cannot fit: ``ipc x len(classes)`` uint8 images
    of 3 x size^2 bytes with an int64 label and index each on the host, and for a generating method
    their latents (``LATENT_BYTES_PER_PIXEL``) on ``device``, compared with the free memory there
    (:func:`host_memory`; ``torch.cuda.mem_get_info`` on a GPU). The estimate is a lower bound."""
    count = ipc * len(classes)
    images = count * (3 * size * size + 16)
    latents = int(count * size * size * LATENT_BYTES_PER_PIXEL) if generates else 0
    on_gpu = device.startswith("cuda")
    needs = [("host memory", images + (0 if on_gpu else latents), host_memory())]
    if on_gpu and generates:
        needs.append((f"{device} memory", latents, torch.cuda.mem_get_info(torch.device(device))[0]))
    for where, need, free in needs:
        if need > free:
            raise InputError(f"ipc {ipc} x {len(classes)} classes at image size {size} needs at least "
                             f"{need / 2**30:,.1f} GiB of {where}, {free / 2**30:,.1f} GiB free; lower the IPC or "
                             f"distil fewer classes per job (config distill_chunk_classes)")


def distill(spec: dict, data_dir: Path, ipc: int, seed: int, out_dir: Path,
            backbone_dir: Path | None = None, latents_path: Path | None = None, device: str = "cpu",
            classes: range | None = None, teacher_dir: Path | None = None,
            statistics_path: Path | None = None) -> None:
    started = time.time()
    method = get_method(spec["method"])
    if method.needs_backbone and backbone_dir is None:
        raise InputError(f"method '{method.name}' needs a backbone; pass --backbone DIR")
    if method.needs_latents and latents_path is None:
        raise InputError(f"method '{method.name}' needs the real latents; pass --latents FILE")
    if method.needs_class_statistics and statistics_path is None:
        raise InputError(f"method '{method.name}' needs the class statistics of its encoder; pass --statistics FILE")
    info = dataset_info(spec["dataset"])
    if method.joint_classes and classes is not None and len(classes) != info.num_classes:
        raise InputError(f"method '{method.name}' optimises all classes jointly and cannot distil the chunk "
                         f"{format_classes(classes)}; distil every class in one job (the workflow does so whatever "
                         f"distill_chunk_classes says)")
    ctx = DistillContext(dataset=info, data_dir=Path(data_dir), ipc=ipc, seed=seed,
                         params=method.parse_params(spec.get("params", {})), sampler=spec.get("sampler", {}),
                         data=spec.get("data", {}), backbone_dir=backbone_dir,
                         latents_path=latents_path, device=device, classes=classes, teacher_dir=teacher_dir,
                         encoder_weights=spec.get("encoder_weights"), statistics_path=statistics_path)
    size = ctx.data.get(IMAGE_SIZE_KEYS[info.source])
    if size is not None:   # the workflow always passes the config's data block; direct calls may omit it
        check_memory(ipc, ctx.classes, size, method.needs_backbone, device)
    synset = method.distill(ctx)
    check_synset(method.name, synset, ctx.classes, ipc)
    if method.needs_backbone:  # the backbone class each dataset class was generated as (Generation.from_context)
        synset.records["backbone_class_id"] = [int(info.backbone_labels[c]) for c in ctx.classes]
    write_synset(out_dir, synset.images, synset.labels, info.class_names,
                 manifest(spec, seed=seed, device=device, started=started, ipc=ipc,
                          classes=[ctx.classes.start, ctx.classes.stop], num_images=len(synset.labels),
                          records=synset.records))
