"""Entry point of the merge rule: join class chunks of one distillation into the full synthetic set.

Usage: ``python workflow/scripts/merge_chunks.py --dataset NAME --out DIR --chunks DIR [DIR ...]``, each DIR
a set written by ``python workflow/scripts/distill.py ... --classes START:STOP`` (methods/chunks.py).

The chunks must share one spec (method, params, dataset, sampler, data), seed, IPC and code
version, and their class ranges must cover the dataset's classes exactly once. The full set is
written atomically: image files hard-linked (copied across file systems), ``labels.csv`` rows in
class order, and a manifest as an unchunked run's (per-class records concatenated in class order,
``wall_time_s`` the chunks' sum) with the list of chunks (range, path, device, time, packages).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from evaluation.core.artifacts import atomic_path, code_version, smoke_record, verify_folder, write_manifest
from evaluation.core.errors import InputError
from evaluation.data.datasets import dataset_info
from evaluation.data.synsets import index_synset, write_labels

from .chunks import format_classes

SHARED = ("config", "seed", "ipc", "code_version")   # what every chunk of one set must agree on
CHUNK_FIELDS = ("device", "wall_time_s", "packages", "num_images")


class MergeError(InputError):
    """Chunks that cannot form one set; one line naming the problem and the fix."""


def read_manifest(chunk: Path) -> dict:
    record = verify_folder(chunk, "distill")
    if record is None:
        raise MergeError(f"{chunk}: no manifest.json; pass chunk sets written by methods.distill --classes")
    if "classes" not in record:
        raise MergeError(f"{chunk}: manifest.json names no class range; re-distil it with this code "
                         f"(methods.distill writes 'classes')")
    return record


def first_difference(a, b, where: str) -> str:
    """The dotted path of the first place where two JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key, "<absent>") != b.get(key, "<absent>"):
                return first_difference(a.get(key, "<absent>"), b.get(key, "<absent>"), f"{where}.{key}")
    return f"{where} ({json.dumps(a)} vs {json.dumps(b)})"


def check_spec(chunks: list[Path], records: list[dict]) -> None:
    """Every chunk was made by one spec, seed, IPC and code version, with the same record keys."""
    for chunk, record in zip(chunks[1:], records[1:]):
        for key in SHARED:
            if record.get(key) != records[0].get(key):
                raise MergeError(f"chunk {chunk} differs from chunk {chunks[0]} in "
                                 f"{first_difference(records[0].get(key), record.get(key), key)}; distil every "
                                 f"chunk of a set with one spec, seed, IPC and code version")
        if set(record.get("records", {})) != set(records[0].get("records", {})):
            raise MergeError(f"chunk {chunk} keeps records {sorted(record.get('records', {}))} but chunk "
                             f"{chunks[0]} keeps {sorted(records[0].get('records', {}))}; re-distil the chunks "
                             f"with one code version")


def check_cover(chunks: list[Path], ranges: list[range], num_classes: int, dataset: str) -> None:
    """The ranges (sorted by start) are disjoint and together cover 0..num_classes-1."""
    expected = 0
    for k, (chunk, classes) in enumerate(zip(chunks, ranges)):
        if classes.start < expected:
            raise MergeError(f"chunks {chunks[k - 1]} ({format_classes(ranges[k - 1])}) and {chunk} "
                             f"({format_classes(classes)}) overlap on classes "
                             f"{classes.start}:{min(expected, classes.stop)}; pass each class range once")
        if classes.start > expected:
            raise MergeError(f"classes {expected}:{classes.start} of {dataset} are in no chunk; distil them with "
                             f"--classes {expected}:{classes.start} and pass that chunk too")
        expected = classes.stop
    if expected != num_classes:
        raise MergeError(f"classes {expected}:{num_classes} of {dataset} are in no chunk; distil them with "
                         f"--classes {expected}:{num_classes} and pass that chunk too")


def place(source: Path, target: Path) -> None:
    """Hard-link ``source`` at ``target``, or copy it where links cannot cross file systems."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def merge_chunks(chunks: list[Path], dataset: str, out_dir: Path) -> None:
    if not chunks:
        raise MergeError("no chunks given; pass the chunk sets with --chunks DIR [DIR ...]")
    info = dataset_info(dataset)
    records = [read_manifest(chunk) for chunk in chunks]
    check_spec(chunks, records)
    if records[0]["config"].get("dataset", dataset) != dataset:
        raise MergeError(f"chunk {chunks[0]} is a set of {records[0]['config']['dataset']}, not {dataset}; "
                         f"pass --dataset {records[0]['config']['dataset']}")
    order = sorted(range(len(chunks)), key=lambda k: tuple(records[k]["classes"]))
    chunks, records = [Path(chunks[k]) for k in order], [records[k] for k in order]
    ranges = [range(*record["classes"]) for record in records]
    check_cover(chunks, ranges, info.num_classes, info.name)
    rows = [index_synset(chunk, info.num_classes, classes) for chunk, classes in zip(chunks, ranges)]
    merged = {key: records[0][key] for key in (*SHARED, "packages")} | smoke_record()
    merged.update(
        device=records[0]["device"] if len({r["device"] for r in records}) == 1
        else "; ".join(dict.fromkeys(r["device"] for r in records)),
        wall_time_s=round(sum(r["wall_time_s"] for r in records), 3),
        classes=[0, info.num_classes],
        num_images=sum(len(r) for r in rows),
        records={key: [entry for r in records for entry in r["records"][key]] for key in records[0]["records"]},
        chunks=[{"classes": r["classes"], "path": str(chunk), **{k: r.get(k) for k in CHUNK_FIELDS}}
                for chunk, r in zip(chunks, records)],
        merged_by=code_version(),
    )
    with atomic_path(out_dir) as tmp:
        for chunk, chunk_rows in zip(chunks, rows):
            for path, _, _ in chunk_rows:
                (tmp / path).parent.mkdir(parents=True, exist_ok=True)
                place(chunk / path, tmp / path)
        write_labels(tmp, [row for chunk_rows in rows for row in chunk_rows])
        write_manifest(tmp, merged)
