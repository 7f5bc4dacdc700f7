"""Class chunks (issue #6): splitting the classes, ``--classes``, and merging chunk sets, with the
one-line errors for bad sizes, bad ranges, overlaps, gaps and mismatched chunks."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from evaluation.core.artifacts import seal
from evaluation.data.datasets import dataset_info
from evaluation.data.synsets import read_synset
from methods.chunks import class_chunks, format_classes, parse_classes
from methods.distill import check_synset, distill
from methods.merge_chunks import MergeError, merge_chunks
from methods.registry import DistillContext, SyntheticSet
from tests.workflow_run import load_script

distill_cli = load_script("distill")
merge_cli = load_script("merge_chunks")

RANDOM = {"method": "random", "params": {"selection": "seeded"}, "dataset": "digits", "data": {}}


def one_line(message: str) -> str:
    assert "\n" not in message.strip(), message
    return message


# ----------------------------------------------------------------------------- splitting

def test_class_chunks():
    assert class_chunks(1000, 250) == [(0, 250), (250, 500), (500, 750), (750, 1000)]
    assert class_chunks(10, 3) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert class_chunks(10, 10) == class_chunks(10, 20) == class_chunks(10, None) == [(0, 10)]
    assert class_chunks(1, 1) == [(0, 1)]
    chunks = class_chunks(1000, 300)
    assert [c for a, b in chunks for c in range(a, b)] == list(range(1000)) and chunks[-1] == (900, 1000)


@pytest.mark.parametrize("size", [0, -250, 2.5, "250", True])
def test_bad_chunk_sizes(size):
    with pytest.raises(ValueError, match="chunk size .* must be a positive integer.*distill_chunk_classes") as err:
        class_chunks(1000, size)
    one_line(str(err.value))


@pytest.mark.parametrize("num_classes", [0, -1, 10.0])
def test_bad_class_counts(num_classes):
    with pytest.raises(ValueError, match="positive integer"):
        class_chunks(num_classes, 3)


def test_parse_classes():
    assert parse_classes("250:500", 1000) == range(250, 500)
    assert parse_classes(None, 10) == parse_classes("", 10) == range(10)
    assert parse_classes("9:10", 10) == range(9, 10)
    assert format_classes(range(250, 500)) == format_classes((250, 500)) == "250:500"


@pytest.mark.parametrize("text, fragment", [("5:5", "non-empty range inside 0:10"), ("7:3", "non-empty"),
                                            ("0:11", "inside 0:10"), ("-1:3", "inside 0:10"),
                                            ("3", "not START:STOP"), ("a:b", "not START:STOP")])
def test_bad_class_ranges(text, fragment):
    with pytest.raises(ValueError, match=fragment) as err:
        parse_classes(text, 10)
    one_line(str(err.value))


def test_context_checks_its_classes(digits_dir):
    info = dataset_info("digits")
    assert DistillContext(info, digits_dir, 1, 0).classes == range(10)
    assert DistillContext(info, digits_dir, 1, 0, classes=range(3, 6)).rows(torch.tensor([3, 5])).tolist() == [0, 2]
    for bad in (range(5, 12), range(4, 4), range(0, 10, 2)):
        with pytest.raises(ValueError, match="classes"):
            DistillContext(info, digits_dir, 1, 0, classes=bad)


@pytest.mark.parametrize("classes", ["0:11", "4:4", "x"])
def test_distill_cli_refuses_bad_classes_in_one_line(classes, tmp_path, capsys):
    argv = ["--spec", json.dumps(RANDOM), "--data", str(tmp_path), "--ipc", "1", "--seed", "0",
            "--out", str(tmp_path / "s"), "--classes", classes]
    with pytest.raises(SystemExit) as exit_:
        distill_cli.main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "classes" in err and "START:STOP" in err
    assert not (tmp_path / "s").exists()


def test_a_method_must_return_its_classes_and_per_class_records():
    images = torch.zeros(4, 3, 2, 2, dtype=torch.uint8)
    check_synset("m", SyntheticSet(images, torch.tensor([3, 3, 4, 4]), {"loss": [[1, 2], [3, 4]]}), range(3, 5), 2)
    with pytest.raises(RuntimeError, match="2 per class of classes 3:5"):
        check_synset("m", SyntheticSet(images, torch.tensor([0, 0, 1, 1])), range(3, 5), 2)
    with pytest.raises(RuntimeError, match="record 'loss'.*one entry per class"):
        check_synset("m", SyntheticSet(images, torch.tensor([3, 3, 4, 4]), {"loss": [1, 2, 3, 4]}), range(3, 5), 2)


# ----------------------------------------------------------------------------- merging

@pytest.fixture(scope="module")
def chunk_sets(tmp_path_factory, digits_dir):
    """``random`` chunk sets of the digits: name -> directory."""
    root = tmp_path_factory.mktemp("chunks")
    made = {}
    for name, spec, seed, classes in [("a", RANDOM, 0, range(5)), ("b", RANDOM, 0, range(5, 10)),
                                      ("mid", RANDOM, 0, range(3, 7)), ("a4", RANDOM, 0, range(4)),
                                      ("b_seed1", RANDOM, 1, range(5, 10)),
                                      ("b_first_k", {**RANDOM, "params": {"selection": "first_k"}}, 0, range(5, 10)),
                                      ("full", RANDOM, 0, None)]:
        distill(spec, digits_dir, 2, seed, root / name, classes=classes)
        made[name] = root / name
    return made


def merge_error(chunk_sets, names, out, *fragments):
    with pytest.raises(MergeError) as err:
        merge_chunks([chunk_sets[n] for n in names], "digits", out)
    message = one_line(str(err.value))
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert not out.exists()
    return message


def test_merge_equals_the_unchunked_set(chunk_sets, tmp_path):
    out = tmp_path / "merged"
    merge_cli.main(["--chunks", str(chunk_sets["b"]), str(chunk_sets["a"]), "--dataset", "digits", "--out", str(out)])
    images, labels = read_synset(out, 10)
    full_images, full_labels = read_synset(chunk_sets["full"], 10)
    assert torch.equal(images, full_images) and torch.equal(labels, full_labels)
    record = json.loads((out / "manifest.json").read_text())
    assert record["classes"] == [0, 10] and [c["classes"] for c in record["chunks"]] == [[0, 5], [5, 10]]
    assert record["num_images"] == 20 and record["chunks"][0]["path"] == str(chunk_sets["a"])
    assert [p.name for p in out.parent.iterdir()] == ["merged"]  # no temporaries


def test_a_chunk_is_not_a_full_set(chunk_sets):
    with pytest.raises(ValueError, match="5 classes missing"):
        read_synset(chunk_sets["a"], 10)
    assert read_synset(chunk_sets["a"], 10, range(5))[1].unique().tolist() == [0, 1, 2, 3, 4]


def test_merge_refuses_overlapping_chunks(chunk_sets, tmp_path):
    merge_error(chunk_sets, ["a", "mid", "b"], tmp_path / "m", "overlap on classes 3:5", "(0:5)", "(3:7)",
                "pass each class range once")
    merge_error(chunk_sets, ["a", "a", "b"], tmp_path / "m", "overlap on classes 0:5")


def test_merge_refuses_missing_classes(chunk_sets, tmp_path):
    merge_error(chunk_sets, ["a4", "b"], tmp_path / "m", "classes 4:5 of digits are in no chunk", "--classes 4:5")
    merge_error(chunk_sets, ["a"], tmp_path / "m", "classes 5:10 of digits are in no chunk", "--classes 5:10")
    merge_error(chunk_sets, ["b"], tmp_path / "m", "classes 0:5", "--classes 0:5")


def test_merge_refuses_chunks_of_different_specs(chunk_sets, tmp_path):
    merge_error(chunk_sets, ["a", "b_seed1"], tmp_path / "m", "in seed (0 vs 1)", "one spec, seed, IPC and code version")
    merge_error(chunk_sets, ["a", "b_first_k"], tmp_path / "m", 'config.params.selection ("seeded" vs "first_k")')
    other = tmp_path / "b_other_code"
    shutil.copytree(chunk_sets["b"], other)
    record = json.loads((other / "manifest.json").read_text())
    (other / "manifest.json").write_text(json.dumps(seal({**record, "code_version": "0123abc"})))
    with pytest.raises(MergeError, match="code_version .*0123abc"):
        merge_chunks([chunk_sets["a"], other], "digits", tmp_path / "m")
    with pytest.raises(MergeError, match="set of digits, not imagenet_woof; pass --dataset digits"):
        merge_chunks([chunk_sets["a"], chunk_sets["b"]], "imagenet_woof", tmp_path / "m")


def test_merge_refuses_a_chunk_whose_files_disagree_with_its_range(chunk_sets, tmp_path):
    bad = tmp_path / "b_bad"
    shutil.copytree(chunk_sets["b"], bad)
    record = json.loads((bad / "manifest.json").read_text())
    (bad / "manifest.json").write_text(json.dumps(seal({**record, "classes": [5, 9]})))
    other = tmp_path / "last"
    shutil.copytree(chunk_sets["b"], other)
    (other / "manifest.json").write_text(json.dumps(seal({**record, "classes": [9, 10]})))
    with pytest.raises(ValueError, match="class folder 00009 is outside the chunk's classes 5:9"):
        merge_chunks([chunk_sets["a"], bad, other], "digits", tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_merge_cli_errors_are_one_line(chunk_sets, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        merge_cli.main(["--chunks", str(chunk_sets["a"]), "--dataset", "digits", "--out", str(tmp_path / "m")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "classes 5:10 of digits are in no chunk" in err
    with pytest.raises(SystemExit):
        merge_cli.main(["--chunks", str(tmp_path), "--dataset", "digits", "--out", str(tmp_path / "m")])
    assert "no manifest.json" in capsys.readouterr().err


def test_a_merged_smoke_set_keeps_the_smoke_reductions(chunk_sets, tmp_path, monkeypatch):
    """The merge writes its own manifest; in a smoke run it must carry the reductions like every other
    artifact (the ImageNet-1K smoke run found it dropping them)."""
    from evaluation.core.artifacts import SMOKE_ENV
    monkeypatch.setenv(SMOKE_ENV, json.dumps(["ipcs: [10] -> [1]"]))
    merge_chunks([chunk_sets["a"], chunk_sets["b"]], "digits", tmp_path / "m")
    assert json.loads((tmp_path / "m" / "manifest.json").read_text())["smoke"] == ["ipcs: [10] -> [1]"]
