"""Side-by-side timing: the best wall time of each runner over interleaved rounds, and peak memory."""
from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

CLEAR_REFS = Path("/proc/self/clear_refs")   # Linux: writing "5" resets the peak resident set (VmHWM)
STATUS = Path("/proc/self/status")


def synchronize(device: str | torch.device) -> None:
    """Wait for queued GPU work, so that a wall-clock reading covers it."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def reset_peak_memory(device: str | torch.device) -> None:
    """Start a new peak-memory reading: the CUDA allocator's on a GPU, the process's resident set on
    a CPU (where Linux allows resetting it; elsewhere the reading is the process's lifetime peak)."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        pass


def peak_memory(device: str | torch.device) -> int:
    """Bytes: the peak GPU memory allocated (``torch.cuda.max_memory_allocated``) since
    :func:`reset_peak_memory`, or on a CPU the process's peak resident set."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated()
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024   # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def memory_name(device: str | torch.device) -> str:
    return "peak GPU memory" if str(device).startswith("cuda") else "peak resident memory"


def gigabytes(count: int) -> str:
    return f"{count / 2 ** 30:.2f} GB"


def best_times(runners: dict[str, Callable[[], object]], repeats: int, device: str = "cpu",
               peaks: dict[str, int] | None = None) -> dict[str, float]:
    """Best wall time (s) of each runner over ``repeats`` rounds, the runners interleaved in each
    round so that a slow spell of a shared machine hits all of them alike; with ``peaks``, also the
    peak memory (bytes, :func:`peak_memory`) of each runner's largest round, by name."""
    best = {name: float("inf") for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            if peaks is not None:
                reset_peak_memory(device)
            synchronize(device)
            started = time.perf_counter()
            run()
            synchronize(device)
            best[name] = min(best[name], time.perf_counter() - started)
            if peaks is not None:
                peaks[name] = max(peaks.get(name, 0), peak_memory(device))
    return best
