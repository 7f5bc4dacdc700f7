"""The artifact contract between rules: atomic writes and provenance manifests.

Every rule writes its outputs under a temporary name and renames them into place, so that an
artifact is either complete or absent, and writes a ``manifest.json`` beside them naming the
config slice, seed, code version, package versions, device and wall time (DESIGN.md, "Artifacts").
"""
from __future__ import annotations

import contextlib
import glob
import hashlib
import itertools
import json
import os
import pickle
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
REPO_ROOT = Path(__file__).resolve().parents[2]


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
    check_inside_parent(path)
    created = missing_folders(path.parent)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent)) / path.name
        try:
            yield tmp
            swap_in(tmp, path)
        finally:
            shutil.rmtree(tmp.parent, ignore_errors=True)
    except BaseException:
        remove_empty_folders(created)
        raise


def swap_in(new: Path, path: Path) -> None:
    """Put ``new`` at ``path``. A folder already there is renamed aside into ``new``'s temporary
    folder first, then ``new`` renamed in, then the old one deleted (with the temporary, by
    ``atomic_path``); if renaming ``new`` in fails, the old one is renamed back. A process killed
    between the two renames leaves the old folder whole, as ``.<name>.<random>/<name>.old`` beside
    ``path``, instead of nothing (a ``shutil.rmtree`` first would have left a half-deleted one)."""
    aside = new.parent / f"{path.name}.old"
    if path.is_dir() and not path.is_symlink():
        os.replace(path, aside)
    try:
        os.replace(new, path)
    except BaseException:
        if aside.exists():
            os.replace(aside, path)
        raise


def check_inside_parent(path: Path) -> None:
    """Refuse to replace ``path`` unless it names an entry strictly inside its folder: a name such as
    ``..`` (a config value that became a path component) or a symlink to elsewhere would make the
    replace remove a folder above it, e.g. a profile's whole results."""
    if path.name in ("", ".", ".."):
        raise InputError(f"refusing to replace '{path}': its name is empty, '.' or '..'; give an output "
                         f"path that names a file or folder inside its results folder")
    parent, resolved = path.parent.resolve(), path.resolve()
    if resolved.parent != parent:
        raise InputError(f"refusing to replace '{path}': it resolves to {resolved}, not inside {parent}; "
                         f"remove the link or give an output path inside its results folder")


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


SMOKE_ENV = "DMGD_SMOKE"   # a smoke run's reductions as JSON, exported by the workflow (evaluation/config/smoke.py)


def smoke_record() -> dict:
    """``{"smoke": [reductions]}`` in a job of a smoke run, nothing otherwise."""
    reductions = os.environ.get(SMOKE_ENV)
    return {"smoke": json.loads(reductions)} if reductions else {}


def read_json_object(path: str | Path, writer: str, what: str, rule: str | None = None) -> dict:
    """A result file's top-level JSON object, checked against the digest its manifest records
    (:func:`check_sealed`); one-line errors say to re-run ``writer`` (Snakemake's ``rule``, when
    given) or how to write ``what``."""
    path = Path(path)
    rerun = f"delete it and re-run snakemake (rule {rule})" if rule else f"re-run the {writer} that wrote it"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise IntegrityError(f"{path}: not valid JSON ({error}); {rerun}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: top level is {type(data).__name__}, not an object; "
                         f"write {what} as a JSON object")
    check_sealed(data, path, rule or writer)
    return data


# ----------------------------------------------------------------------------- integrity
# Every artifact's manifest records a content digest (DESIGN.md, "Standards"), verified by its
# readers and, before any job, by the workflow (workflow/rules/integrity.smk):
# - a folder (``manifest.json`` inside): ``files``, the sha256 of each other file by relative path,
#   so that a mismatch names the file; the Snakemake-independent digest of the folder as a whole
#   (an external set's key) is ``content_digest`` of that mapping (:func:`tree_digest`);
# - a JSON record or a torch file that embeds its manifest (``record["manifest"]``): a file cannot
#   hold the digest of its own bytes, so ``digest`` is the sha256 of the record's *content* without
#   that field (:func:`content_digest`: JSON values and tensors, independent of the encoding), which
#   the reader recomputes from what it loaded; a folder's manifest seals itself the same way.
# An artifact written before digests were recorded has none and is read as before.

DIGEST = "digest"          # manifest key: content_digest of the record without this key
FILES = "files"            # folder manifest key: {relative path: sha256 of the file}
MANIFEST = "manifest.json"
NOT_CONTENT = (MANIFEST, ".snakemake_timestamp")   # Snakemake touches the latter in a directory output
_verified: dict[tuple, dict] = {}   # folders verified by this process, by their files' (size, mtime)


class IntegrityError(InputError):
    """A stored artifact that no longer matches its manifest's digest (or cannot be read at all):
    one line naming it and the rule that re-makes it."""


def refuse(artifact: str | Path, problem: str, rule: str) -> IntegrityError:
    return IntegrityError(f"{artifact}: {problem}; delete it and re-run snakemake (rule {rule})")


def changed(rule: str) -> str:
    return f"changed or truncated since the {rule} job wrote it"


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def folder_files(folder: Path) -> list[str]:
    """Every file under ``folder`` but its manifest (and Snakemake's timestamp), as sorted POSIX paths
    relative to it."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and p.relative_to(folder).as_posix() not in NOT_CONTENT)


def folder_digests(folder: str | Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file of ``folder`` (:func:`folder_files`)."""
    folder = Path(folder)
    return {rel: file_digest(folder / rel) for rel in folder_files(folder)}


def tree_digest(folder: str | Path) -> str:
    """One sha256 of a folder's content: its sorted (relative path, file digest) list."""
    return content_digest(folder_digests(folder))


def content_digest(obj: Any) -> str:
    """sha256 of nested dicts (keys as strings, sorted), lists/tuples, JSON scalars and tensors
    (dtype, shape, bytes): equal for a record before writing and after reading it back as JSON or
    with ``torch.load``."""
    digest = hashlib.sha256()
    _feed(digest, obj)
    return digest.hexdigest()


def _feed(digest, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        tensor = obj.detach().cpu().contiguous()
        digest.update(f"T{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(obj, dict):
        digest.update(b"{")
        for key in sorted(obj, key=str):
            digest.update(json.dumps(str(key)).encode())
            _feed(digest, obj[key])
        digest.update(b"}")
    elif isinstance(obj, (list, tuple)):
        digest.update(b"[")
        for item in obj:
            _feed(digest, item)
            digest.update(b",")
        digest.update(b"]")
    else:
        digest.update(json.dumps(obj).encode() + b",")


def _holder(record: dict) -> dict:
    """The manifest that holds a record's digest: ``record["manifest"]`` when it embeds one (JSON
    records, torch files), else the record itself (a folder's manifest.json)."""
    return record["manifest"] if isinstance(record.get("manifest"), dict) else record


def record_digest(record: dict) -> str:
    """``content_digest`` of ``record`` without its digest field."""
    if _holder(record) is record:
        return content_digest({k: v for k, v in record.items() if k != DIGEST})
    return content_digest({**record, "manifest": {k: v for k, v in record["manifest"].items() if k != DIGEST}})


def seal(record: dict) -> dict:
    """``record`` with its digest in its manifest (see :func:`_holder`)."""
    if _holder(record) is record:
        return {**record, DIGEST: record_digest(record)}
    return {**record, "manifest": {**record["manifest"], DIGEST: record_digest(record)}}


def check_sealed(record: dict, artifact: str | Path, rule: str) -> None:
    """Refuse a record whose content no longer matches the digest it records (none: accepted)."""
    recorded = _holder(record).get(DIGEST)
    if recorded is not None and recorded != record_digest(record):
        raise refuse(artifact, f"does not match its manifest digest ({changed(rule)})", rule)


def write_manifest(folder: str | Path, record: dict) -> None:
    """Write ``folder``'s ``manifest.json``: ``record`` with the digest of every other file of the
    folder, sealed. The last write into a folder artifact."""
    folder = Path(folder)
    write_json_atomic(folder / MANIFEST, seal({**record, FILES: folder_digests(folder)}))


def verify_folder(folder: str | Path, rule: str, *, required: bool = False) -> dict | None:
    """A folder artifact's manifest after checking every file against it, or None for a folder
    without one (hand-made, or ``required``: refused). Each file is hashed once per process while
    its size and modification time stay the same."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        if required:
            raise refuse(folder, f"{MANIFEST} is missing (deleted since the {rule} job wrote it)", rule)
        return None
    key = (str(folder.resolve()), *((rel, *_stamp(folder / rel)) for rel in [MANIFEST, *folder_files(folder)]))
    if key not in _verified:
        _verified[key] = _check_folder(folder, rule)
    return _verified[key]


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def _check_folder(folder: Path, rule: str) -> dict:
    try:
        record = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise refuse(folder, f"{MANIFEST} is not valid JSON ({changed(rule)})", rule) from None
    if not isinstance(record, dict):
        raise refuse(folder, f"{MANIFEST} is not a JSON object ({changed(rule)})", rule)
    check_sealed(record, folder / MANIFEST, rule)
    listed = record.get(FILES)
    if listed is None:
        return record
    on_disk = folder_files(folder)
    for rel in sorted(set(listed) | set(on_disk)):
        if rel not in on_disk:
            raise refuse(folder, f"{rel} is missing (deleted since the {rule} job wrote it)", rule)
        if rel not in listed:
            raise refuse(folder, f"{rel} is not in its manifest (added since the {rule} job wrote it)", rule)
        if file_digest(folder / rel) != listed[rel]:
            raise refuse(folder, f"{rel} does not match its manifest digest ({changed(rule)})", rule)
    return record


def load_torch_record(path: str | Path, rule: str, **kwargs: Any) -> Any:
    """``torch.load(path, map_location="cpu", **kwargs)`` of a torch file that embeds its manifest,
    checked against the digest the manifest records; an unreadable file is one line too."""
    try:
        record = torch.load(path, map_location="cpu", **kwargs)
    except (RuntimeError, EOFError, pickle.UnpicklingError):
        raise refuse(path, f"not a readable torch file ({changed(rule)})", rule) from None
    if isinstance(record, dict):
        check_sealed(record, path, rule)
    return record


def verify_artifact(path: str | Path, rule: str) -> None:
    """Check a rule's output of any kind (a folder, a JSON record, a torch file) against its
    manifest; a folder without one is refused (every rule writes one)."""
    path = Path(path)
    if path.is_dir():
        verify_folder(path, rule, required=True)
    elif path.suffix == ".json":
        read_json_object(path, rule, "the record", rule)
    elif path.suffix == ".pt":
        load_torch_record(path, rule)


# ----------------------------------------------------------------------------- write failures

class _RecordingFile:
    """A binary file whose ``write`` keeps the OSError it raised: torch's C++ writer reports a failed
    write only as a RuntimeError ("unexpected pos ...", "PytorchStreamWriter failed writing file")."""

    def __init__(self, fh) -> None:
        self.fh, self.error = fh, None

    def write(self, data) -> int:
        try:
            return self.fh.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        self.fh.flush()


def naming(err: OSError, path: str | Path) -> OSError:
    """``err`` naming ``path`` when it names no file (a failed ``write`` or ``flush`` does not)."""
    return err if err.filename is not None else OSError(err.errno, err.strerror, str(path))


@contextlib.contextmanager
def os_errors_naming(path: str | Path) -> Iterator[None]:
    """Inside, a failed write raises the file system's OSError naming ``path`` (``evaluation.core.cli``
    ends it in one line): a bare one (Python's ``write`` names no file), and safetensors' own
    ``SafetensorError("... (os error N)")`` of diffusers' ``save_pretrained`` as the OSError of errno N."""
    from safetensors import SafetensorError

    try:
        yield
    except OSError as err:
        raise naming(err, path) from None
    except SafetensorError as err:
        code = re.search(r"\(os error (\d+)\)", str(err))
        if code is None:
            raise
        raise OSError(int(code.group(1)), os.strerror(int(code.group(1))), str(path)) from None


def save_torch(obj: Any, path: str | Path) -> None:
    """``torch.save(obj, path)`` through a Python file, so that a failed write (a full disk, the
    file-size limit) raises the file system's OSError naming ``path`` (:func:`os_errors_naming`)
    instead of torch's RuntimeError and a traceback."""
    with os_errors_naming(path), open(path, "wb") as fh:
        recording = _RecordingFile(fh)
        try:
            torch.save(obj, recording)
        except RuntimeError:
            if recording.error is None:
                raise
            raise recording.error from None
