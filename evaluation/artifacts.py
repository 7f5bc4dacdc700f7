"""The artifact contract between rules: atomic writes and provenance manifests.

Every rule writes its outputs under a temporary name and renames them into place, so that an
artifact is either complete or absent, and writes a ``manifest.json`` beside them naming the
config slice, seed, code version, package versions, device and wall time (DESIGN.md, "Artifacts").
"""
from __future__ import annotations

import contextlib
import glob
import itertools
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from .errors import InputError

PACKAGES = ("torch", "torchvision", "diffusers", "numpy", "scikit-learn", "pillow", "snakemake")
REPO_ROOT = Path(__file__).resolve().parent.parent


def code_version() -> str:
    """Git commit of the suite (with ``-dirty`` if the tree has changes), else the package version."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
        return rev + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        try:
            return "dmgd-suite " + metadata.version("dmgd-suite")
        except metadata.PackageNotFoundError:
            return "unknown"


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def resolve_device(name: str) -> str:
    """Config ``device`` -> a torch device string (``auto``: cuda when available, else cpu)."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device '{name}' requested but CUDA is not available; set device: cpu or auto")
    return name


def device_description(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return f"{device} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` (file or directory) and rename it to ``path`` on success.

    On any exception the temporary is removed, and so are the parent folders that this call
    created and that are still empty, so a failed write leaves neither ``path`` half-written nor
    new empty folders (DESIGN.md: bad input leaves no partial output). A process killed mid-write
    cannot clean up; the next write of ``path`` removes that attempt's temporary first.
    """
    path = Path(path)
    created = missing_folders(path.parent)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent)) / path.name
        try:
            yield tmp
            if path.is_dir():
                shutil.rmtree(path)
            os.replace(tmp, path)
        finally:
            shutil.rmtree(tmp.parent, ignore_errors=True)
    except BaseException:
        remove_empty_folders(created)
        raise


def remove_stale_temporaries(path: Path) -> None:
    """Remove the temporaries of ``path`` that killed earlier writes left: the ``.<name>.<8
    characters>`` folders that ``tempfile.mkdtemp`` named for it (one writer per path at a time, as
    under Snakemake, so none of them is in use)."""
    name = re.compile(re.escape(f".{path.name}.") + r"[a-z0-9_]{8}")
    for entry in path.parent.glob(f".{glob.escape(path.name)}.*"):
        if name.fullmatch(entry.name) and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)


def missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its ancestors that do not exist yet, deepest first."""
    return list(itertools.takewhile(lambda f: not f.exists(), (folder, *folder.parents)))


def remove_empty_folders(folders: list[Path]) -> None:
    """Remove each of ``folders`` (deepest first) that exists and is empty; leave the others (another
    job may have written into one meanwhile)."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            pass


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def manifest(config_slice: dict, *, seed: int | None, device: str, started: float, **extra: Any) -> dict:
    """Provenance record of one artifact (DESIGN.md: config slice, seed, code, packages, device, time)."""
    return {
        "config": config_slice,
        "seed": seed,
        "code_version": code_version(),
        "packages": package_versions(),
        "device": device_description(device),
        "wall_time_s": round(time.time() - started, 3),
        **smoke_record(),
        **extra,
    }


SMOKE_ENV = "DMGD_SMOKE"   # a smoke run's reductions as JSON, exported by the workflow (evaluation/smoke.py)


def smoke_record() -> dict:
    """``{"smoke": [reductions]}`` in a job of a smoke run, nothing otherwise."""
    reductions = os.environ.get(SMOKE_ENV)
    return {"smoke": json.loads(reductions)} if reductions else {}


def read_json_object(path: str | Path, writer: str, what: str) -> dict:
    """A result file's top-level JSON object; one-line errors say to re-run ``writer`` or how to
    write ``what``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: not valid JSON ({error}); re-run the {writer} that wrote it") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: top level is {type(data).__name__}, not an object; "
                         f"write {what} as a JSON object")
    return data
