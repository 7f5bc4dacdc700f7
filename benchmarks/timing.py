"""Side-by-side timing: the best wall time of each runner over interleaved rounds."""
from __future__ import annotations

import time
from collections.abc import Callable

import torch


def synchronize(device: str | torch.device) -> None:
    """Wait for queued GPU work, so that a wall-clock reading covers it."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def best_times(runners: dict[str, Callable[[], object]], repeats: int, device: str = "cpu") -> dict[str, float]:
    """Best wall time (s) of each runner over ``repeats`` rounds, the runners interleaved in each
    round so that a slow spell of a shared machine hits all of them alike."""
    best = {name: float("inf") for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            synchronize(device)
            started = time.perf_counter()
            run()
            synchronize(device)
            best[name] = min(best[name], time.perf_counter() - started)
    return best
