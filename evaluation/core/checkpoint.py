"""Checkpoints of the long loops, so that an interrupted job resumes instead of starting over.

Backbone training (``methods.diffusion.train_tiny``), Minimax fine-tuning (``methods.minimax_finetune``)
and every network trained by ``evaluation.protocols.training.train_and_evaluate`` (evaluation networks and the
teacher) save, at most every ``checkpoint_interval_s`` seconds of work, all that their loop needs to
go on exactly where it was: model, optimiser, scheduler and EMA state, the loop position and
history, and the state of every random number generator the loop draws from (its
``torch.Generator`` s, the global CPU RNG, the CUDA RNGs once CUDA is initialised, numpy's and
Python's). A resumed job therefore ends bit-identical to an uninterrupted one
(tests/test_checkpoint.py, tests/test_resume.py) (DESIGN.md, "Standards": runs interrupted at any
point resume without recomputing finished jobs).

* **Where:** ``<output>.ckpt`` beside the job's output (``backbones/tiny.ckpt``,
  ``eval/.../hard_label-convnet-2-rep0.json.ckpt``). It is not a declared output, so Snakemake,
  which deletes the outputs of an interrupted job before running it again, leaves it in place; it
  is written atomically (``artifacts.atomic_path``) and deleted once the output is committed.
* **Identity:** a checkpoint records the SHA-256 of its job's identity: the kind of job, its spec,
  its other arguments and a fingerprint (relative path, size, modification time of every file) of
  its inputs. One whose identity differs (a changed config, a regenerated input) is ignored with a
  log line and overwritten, so a stale state is never resumed. Copying a results tree without its
  modification times makes a checkpoint look stale: the job then starts over, which is safe.
* **Cadence:** the environment variable ``DMGD_CHECKPOINT_INTERVAL_S`` (seconds; 0 = after every
  step or epoch; 300 when unset), which the Snakefile sets from the config key
  ``checkpoint_interval_s``. It is not on the command line, so changing it re-runs no job.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .artifacts import atomic_path, save_torch

INTERVAL_ENV = "DMGD_CHECKPOINT_INTERVAL_S"
DEFAULT_INTERVAL_S = 300.0
SUFFIX = ".ckpt"


def interval_from_env() -> float:
    """Seconds between checkpoints: ``DMGD_CHECKPOINT_INTERVAL_S``, else 300."""
    value = os.environ.get(INTERVAL_ENV, "")
    return float(value) if value else DEFAULT_INTERVAL_S


def fingerprint(path: str | Path) -> list:
    """(relative path, size, mtime in ns) of ``path`` or of every file under it, in sorted order:
    an input rewritten by a re-run job (always through a rename) gets a new fingerprint."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return [[str(p.relative_to(path)) if path.is_dir() else p.name, p.stat().st_size, p.stat().st_mtime_ns]
            for p in files]


def job_identity(kind: str, spec: Any, inputs: Sequence[str | Path | None] = (), **arguments: Any) -> str:
    """SHA-256 of a job: its kind, spec, other arguments, torch's thread count (CPU arithmetic may
    depend on it) and the fingerprints of its ``inputs``."""
    record = {"kind": kind, "spec": spec, "arguments": arguments, "threads": torch.get_num_threads(),
              "inputs": [fingerprint(p) if p is not None else None for p in inputs]}
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


def rng_state(*generators: torch.Generator) -> dict:
    """The state of ``generators`` and of every global RNG a loop may draw from (module docstring)."""
    return {"generators": [g.get_state() for g in generators], "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
            "numpy": np.random.get_state(), "python": random.getstate()}


def restore_rng(state: dict, *generators: torch.Generator) -> None:
    """Put ``generators`` and the global RNGs back into ``state`` (from :func:`rng_state`)."""
    for gen, saved in zip(generators, state["generators"], strict=True):
        gen.set_state(saved)
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None:
        torch.cuda.set_rng_state_all(state["cuda"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


class Checkpoint:
    """The resumable state of one job at ``path``, tagged with the job's ``identity``."""

    def __init__(self, path: str | Path, identity: str, interval_s: float | None = None):
        self.path, self.identity = Path(path), identity
        self.interval_s = interval_from_env() if interval_s is None else interval_s
        self.last_save = time.monotonic()

    @classmethod
    def beside(cls, output: str | Path, identity: str) -> Checkpoint:
        """The checkpoint of the job that writes ``output``: ``<output>.ckpt``."""
        output = Path(output)
        return cls(output.with_name(output.name + SUFFIX), identity)

    def load(self) -> dict | None:
        """The saved state if there is one of this job (logging where it resumes), else None."""
        if not self.path.is_file():
            return None
        payload = torch.load(self.path, map_location="cpu", weights_only=False)
        if payload["identity"] != self.identity:
            print(f"ignoring checkpoint {self.path}: saved by a job with another spec, arguments or inputs; "
                  f"starting over", flush=True)
            return None
        print(f"resumed from checkpoint at {payload['at']} ({self.path})", flush=True)
        return payload["state"]

    def due(self) -> bool:
        """Whether ``interval_s`` seconds have passed since the last save (or the start)."""
        return time.monotonic() - self.last_save >= self.interval_s

    def save(self, state: dict, at: str) -> None:
        """Write ``state`` atomically; ``at`` names the loop position (``epoch 3``, ``dit step 120``)."""
        with atomic_path(self.path) as tmp:
            save_torch({"identity": self.identity, "at": at, "state": state}, tmp)
        self.last_save = time.monotonic()

    def remove(self) -> None:
        """Delete the checkpoint (once the job's output is committed)."""
        self.path.unlink(missing_ok=True)
