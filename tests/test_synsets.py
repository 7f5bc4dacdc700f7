"""Tests for evaluation.data.synsets: the ImageFolder + labels.csv + manifest.json artifact."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from evaluation.data.synsets import (
    SynsetError,
    class_folder,
    index_synset,
    read_synset,
    write_synset,
)

CLASS_NAMES = ("zero", "one", "two")
LABELS = [1, 0, 2, 1, 0, 1]  # not grouped by class: files are numbered per class in input order


def make_images(n: int, size: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def synset(tmp_path) -> tuple[Path, torch.Tensor, torch.Tensor]:
    out = tmp_path / "synsets" / "digits" / "random" / "ipc2" / "seed0"
    images, labels = make_images(len(LABELS)), torch.tensor(LABELS)
    write_synset(out, images, labels, CLASS_NAMES, {"method": "random", "seed": 0})
    return out, images, labels


def read_rows(directory: Path) -> list[dict]:
    with open(directory / "labels.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def write_rows(directory: Path, rows: list[dict]) -> None:
    with open(directory / "labels.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "label", "class_name"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def test_round_trip(synset):
    out, images, labels = synset
    read_images, read_labels = read_synset(out, num_classes=3)
    assert read_images.dtype == torch.uint8 and read_labels.dtype == torch.long
    assert torch.equal(read_images, images)
    assert torch.equal(read_labels, labels)


def test_layout(synset):
    out, _, _ = synset
    assert sorted(p.name for p in out.iterdir()) == ["00000", "00001", "00002", "labels.csv", "manifest.json"]
    assert class_folder(0) == "00000" and class_folder(12) == "00012"
    assert sorted(p.name for p in (out / "00001").iterdir()) == ["0000.png", "0001.png", "0002.png"]
    assert sorted(p.name for p in (out / "00000").iterdir()) == ["0000.png", "0001.png"]
    assert sorted(p.name for p in (out / "00002").iterdir()) == ["0000.png"]
    header = (out / "labels.csv").read_text().splitlines()[0]
    assert header == "path,label,class_name"
    rows = read_rows(out)
    assert [(r["path"], int(r["label"]), r["class_name"]) for r in rows] == [
        ("00001/0000.png", 1, "one"), ("00000/0000.png", 0, "zero"), ("00002/0000.png", 2, "two"),
        ("00001/0001.png", 1, "one"), ("00000/0001.png", 0, "zero"), ("00001/0002.png", 1, "one")]
    manifest = json.loads((out / "manifest.json").read_text())
    assert {key: manifest[key] for key in ("method", "seed")} == {"method": "random", "seed": 0}
    assert sorted(manifest["files"]) == sorted(["labels.csv", *(r["path"] for r in rows)])


def test_no_temporaries_left(synset):
    out, _, _ = synset
    assert [p.name for p in out.parent.iterdir()] == [out.name]
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]


def test_rewrite_replaces_previous_set(synset):
    out, _, _ = synset
    images, labels = make_images(3, seed=1), torch.tensor([0, 1, 2])
    write_synset(out, images, labels, CLASS_NAMES, {"run": 2})
    read_images, read_labels = read_synset(out, num_classes=3)
    assert torch.equal(read_images, images) and torch.equal(read_labels, labels)
    assert sorted(p.name for p in (out / "00001").iterdir()) == ["0000.png"]
    assert [p.name for p in out.parent.iterdir()] == [out.name]


def test_failed_write_leaves_nothing(tmp_path):
    parent = tmp_path / "ipc2"
    out = parent / "seed0"
    with pytest.raises(TypeError):
        write_synset(out, make_images(3), torch.tensor([0, 1, 2]), CLASS_NAMES, {"x": object()})
    assert not out.exists()
    assert not parent.exists()   # nor the folder that the write created


def test_failed_rewrite_keeps_previous_set(synset):
    out, images, labels = synset
    with pytest.raises(TypeError):
        write_synset(out, make_images(3, seed=1), torch.tensor([0, 1, 2]), CLASS_NAMES, {"x": object()})
    read_images, read_labels = read_synset(out, num_classes=3)
    assert torch.equal(read_images, images) and torch.equal(read_labels, labels)
    assert [p.name for p in out.parent.iterdir()] == [out.name]


def assert_synset_error(err: pytest.ExceptionInfo, directory: Path, *fragments: str) -> None:
    message = str(err.value)
    assert "\n" not in message
    assert str(directory) in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_error_missing_labels_csv(synset):
    out, _, _ = synset
    (out / "labels.csv").unlink()
    with pytest.raises(SynsetError) as err:
        read_synset(out, num_classes=3)
    assert_synset_error(err, out, "labels.csv")


def test_error_png_not_listed(synset):
    out, _, _ = synset
    extra = out / "00002" / "0001.png"
    extra.write_bytes((out / "00002" / "0000.png").read_bytes())
    with pytest.raises(SynsetError) as err:
        read_synset(out, num_classes=3)
    assert_synset_error(err, out, "00002/0001.png", "not in labels.csv")


def test_error_listed_file_missing(synset):
    out, _, _ = synset
    (out / "00000" / "0001.png").unlink()
    with pytest.raises(SynsetError) as err:
        read_synset(out, num_classes=3)
    assert_synset_error(err, out, "00000/0001.png", "missing")


def test_error_label_disagrees_with_folder(synset):
    out, _, _ = synset
    rows = read_rows(out)
    rows[2]["label"] = "0"  # 00002/0000.png
    write_rows(out, rows)
    with pytest.raises(SynsetError) as err:
        read_synset(out, num_classes=3)
    assert_synset_error(err, out, "00002/0000.png", "label 0", "00002")


def test_error_missing_class(synset):
    out, _, _ = synset
    with pytest.raises(SynsetError) as err:
        read_synset(out, num_classes=5)
    assert_synset_error(err, out, "00003", "2 classes missing")


def test_error_missing_class_after_removal(synset):
    out, _, _ = synset
    (out / "00002" / "0000.png").unlink()
    (out / "00002").rmdir()
    write_rows(out, [r for r in read_rows(out) if not r["path"].startswith("00002/")])
    (out / "manifest.json").unlink()   # a set edited by hand: no digests to match any more
    assert len(read_synset(out, num_classes=2)[0]) == 5
    with pytest.raises(SynsetError) as err:
        read_synset(out, num_classes=3)
    assert_synset_error(err, out, "class 00002")


def test_error_label_beyond_num_classes(synset):
    out, _, _ = synset  # labels 0, 1, 2
    with pytest.raises(SynsetError) as err:
        read_synset(out, num_classes=2)
    assert_synset_error(err, out, "00002")


# ----------------------------------------------------------------------------- chunks (methods/chunks.py)

@pytest.fixture
def chunk(tmp_path) -> tuple[Path, torch.Tensor, torch.Tensor]:
    """Classes 3:5 of a 6-class dataset, folders and labels global."""
    out = tmp_path / "chunk"
    images, labels = make_images(4), torch.tensor([3, 3, 4, 4])
    write_synset(out, images, labels, ("a", "b", "c", "d", "e", "f"), {"classes": [3, 5]})
    return out, images, labels


def test_chunk_round_trip(chunk):
    out, images, labels = chunk
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["00003", "00004"]
    read_images, read_labels = read_synset(out, num_classes=6, classes=range(3, 5))
    assert torch.equal(read_images, images) and torch.equal(read_labels, labels)
    assert [(p, label) for p, label, _ in index_synset(out, 6, range(3, 5))] == [
        ("00003/0000.png", 3), ("00003/0001.png", 3), ("00004/0000.png", 4), ("00004/0001.png", 4)]


def test_a_chunk_fails_the_full_set_check(chunk):
    out, _, _ = chunk
    with pytest.raises(SynsetError) as err:
        read_synset(out, num_classes=6)
    assert_synset_error(err, out, "class 00000", "4 classes missing")


def test_chunk_read_with_the_wrong_range(chunk):
    out, _, _ = chunk
    with pytest.raises(SynsetError) as err:
        read_synset(out, num_classes=6, classes=range(3, 4))
    assert_synset_error(err, out, "00004", "outside the chunk's classes 3:4")
    with pytest.raises(SynsetError) as err:
        read_synset(out, num_classes=6, classes=range(2, 5))
    assert_synset_error(err, out, "class 00002", "1 classes missing")
