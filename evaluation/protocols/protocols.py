"""Evaluation protocols as configuration: the reference settings, their epoch rules, learning-rate
schedules and evaluation points (methods_and_protocols.md §3).

A protocol is a dict of settings (``evaluation/protocols/protocols.yaml`` holds the three reference
protocols; a profile overrides keys or defines variants with ``base``); the one training loop in
:mod:`evaluation.protocols.training` reads it. Nothing here branches on a protocol's name.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable
from pathlib import Path

import yaml

from evaluation.core.errors import InputError

REFERENCE_FILE = Path(__file__).parent / "protocols.yaml"
IPC_RULE = "ipc_rule"
# (largest IPC, epochs) in increasing IPC order; larger IPCs train for FALLBACK_EPOCHS.
EPOCHS_BY_IPC = ((1, 3000), (10, 2000), (50, 1500), (200, 1000), (500, 500))
FALLBACK_EPOCHS = 300
HUNDRED_CLASSES = 100


def reference_protocols() -> dict[str, dict]:
    """The reference protocols' complete settings, by name (a fresh copy on every call)."""
    return yaml.safe_load(REFERENCE_FILE.read_text())


def resolve_protocol(name: str, entry: dict | None) -> dict:
    """The complete settings of protocol ``name``: the reference protocol ``entry['base']`` (or
    ``name`` itself) with ``entry``'s keys on top; ``base`` is kept in the result."""
    references = reference_protocols()
    entry = copy.deepcopy(entry or {})
    base = entry.pop("base", name)
    if base not in references:
        raise InputError(f"protocol {name!r} has no reference protocol {base!r}; set protocols.{name}.base "
                         f"to one of: {', '.join(references)}")
    return {**references[base], **entry, "base": base}


def hard_label_epochs(ipc: int, num_classes: int) -> int:
    """Training epochs for ``ipc`` images per class, as IDC's ``ipc_epoch``.

    IPC 1: 3000, <= 10: 2000, <= 50: 1500, <= 200: 1000, <= 500: 500, else 300; with 100 classes
    the count is scaled by 2/3 and rounded down to hundreds (IPC 10: 1300, IPC 20: 1000).
    """
    if ipc < 1:
        raise InputError(f"ipc {ipc!r} is invalid; valid: a positive integer")
    epochs = next((count for bound, count in EPOCHS_BY_IPC if ipc <= bound), FALLBACK_EPOCHS)
    if num_classes == HUNDRED_CLASSES:
        epochs = int(2 / 3 * epochs)
        epochs -= epochs % 100
    return epochs


def protocol_epochs(protocol: dict, ipc: int, num_classes: int) -> int:
    """The protocol's epochs (IDC's rule by IPC, or a fixed count) times its ``epoch_scale``, >= 1."""
    base = hard_label_epochs(ipc, num_classes) if protocol["epochs"] == IPC_RULE else protocol["epochs"]
    return max(1, round(base * protocol["epoch_scale"]))


def milestones(epochs: int) -> list[int]:
    """MultiStepLR milestones (gamma 0.2 in the protocol): 2/3 and 5/6 of the run."""
    return [2 * epochs // 3, 5 * epochs // 6]


def _multistep(epochs: int, gamma: float) -> Callable[[int], float]:
    """IDC: lr x gamma after 2/3 and again after 5/6 of the epochs."""
    bounds = milestones(epochs)
    return lambda epoch: gamma ** sum(epoch >= bound for bound in bounds)


def _quarter_cosine(epochs: int, gamma: float) -> Callable[[int], float]:
    """RDED: ``0.5 (1 + cos(pi e / (2 E)))``, a quarter period, so the last factor is about 0.5."""
    return lambda epoch: 0.5 * (1 + math.cos(math.pi * epoch / (2 * epochs)))


def _warmup_cosine(epochs: int, gamma: float) -> Callable[[int], float]:
    """GLaD: linear warm-up over the first half of the epochs, then cosine decay to 0 over the second."""
    half = max(1, epochs // 2)

    def factor(epoch: int) -> float:
        if epoch < half:
            return (epoch + 1) / half
        return 0.5 * (1 + math.cos(math.pi * (epoch - half) / max(1, epochs - half)))
    return factor


def _cosine(epochs: int, gamma: float) -> Callable[[int], float]:
    """LGM's linear probe (ims3_lgm_sfm.md §2.4): ``0.5 (1 + cos(pi e / E))``, a half period to 0."""
    return lambda epoch: 0.5 * (1 + math.cos(math.pi * epoch / epochs))


SCHEDULES: dict[str, Callable[[int, float], Callable[[int], float]]] = {
    "multistep": _multistep, "quarter_cosine": _quarter_cosine, "warmup_cosine": _warmup_cosine,
    "cosine": _cosine,
}


def protocol_lr(protocol: dict, arch: str, num_images: int) -> float:
    """The initial learning rate: ``lr_by_arch[arch]`` or ``lr``, times ``min(batch_size, num_images) /
    lr_reference_batch`` when that is set (LGM: 0.001 x batch / 256 with batch min(100, N), §2.4)."""
    lr = protocol["lr_by_arch"].get(arch, protocol["lr"])
    if protocol["lr_reference_batch"] is None:
        return lr
    return lr * min(protocol["batch_size"], num_images) / protocol["lr_reference_batch"]


def lr_factor(schedule: str, epochs: int, gamma: float) -> Callable[[int], float]:
    """``epoch -> lr multiplier`` (``LambdaLR``'s function, stepped once per epoch) of ``schedule``."""
    if schedule not in SCHEDULES:
        raise InputError(f"unknown schedule {schedule!r}; valid: {', '.join(SCHEDULES)}")
    return SCHEDULES[schedule](epochs, gamma)


def evaluation_epochs(epochs: int, num_evals: int, eval_from: float = 0.0) -> list[int]:
    """``num_evals`` evenly spaced 1-based epochs in ``(start, epochs]``, ``start = floor(eval_from *
    epochs)``, ending at ``epochs``: IDC tests every epochs/100 epochs (``eval_from`` 0), RDED every 10
    epochs of the last 20% (300 epochs, 6 evaluations from 0.8: 250, 260, ..., 300)."""
    start = math.floor(eval_from * epochs)
    if not 1 <= num_evals <= epochs - start:
        raise InputError(f"num_evals {num_evals!r} is invalid; valid: 1 <= num_evals <= {epochs - start} "
                         f"(epochs {epochs}, eval_from {eval_from})")
    return [start + (epochs - start) * i // num_evals for i in range(1, num_evals + 1)]


def selection_convention(protocol: dict) -> str:
    """How the protocol's reported number is chosen: ``best`` test top-1 over its evaluations, or the
    single ``final`` (``final_ema`` with weight averaging) evaluation, as GLaD."""
    if protocol["num_evals"] > 1:
        return "best"
    return "final_ema" if protocol["ema_decay"] else "final"
