"""Schedule facts of the hard-label evaluation protocol (IDC's ``ipc_epoch`` and LR milestones,
as reused by the Minimax diffusion evaluation)."""
from __future__ import annotations

# (largest IPC, epochs) in increasing IPC order; larger IPCs train for FALLBACK_EPOCHS.
EPOCHS_BY_IPC = ((1, 3000), (10, 2000), (50, 1500), (200, 1000), (500, 500))
FALLBACK_EPOCHS = 300
HUNDRED_CLASSES = 100


def hard_label_epochs(ipc: int, num_classes: int) -> int:
    """Training epochs for ``ipc`` images per class, as IDC's ``ipc_epoch``.

    IPC 1: 3000, <= 10: 2000, <= 50: 1500, <= 200: 1000, <= 500: 500, else 300; with 100 classes
    the count is scaled by 2/3 and rounded down to hundreds (IPC 10: 1300, IPC 20: 1000).
    """
    if ipc < 1:
        raise ValueError(f"ipc {ipc!r} is invalid; valid: a positive integer")
    epochs = next((count for bound, count in EPOCHS_BY_IPC if ipc <= bound), FALLBACK_EPOCHS)
    if num_classes == HUNDRED_CLASSES:
        epochs = int(2 / 3 * epochs)
        epochs -= epochs % 100
    return epochs


def milestones(epochs: int) -> list[int]:
    """MultiStepLR milestones (gamma 0.2 in the protocol): 2/3 and 5/6 of the run."""
    return [2 * epochs // 3, 5 * epochs // 6]
