"""The external method: class folders matched to the dataset, first IPC files, clear refusals."""
from __future__ import annotations

import pytest
from PIL import Image

from evaluation.data.datasets import dataset_info
from methods.external import ExternalParams, class_folders
from methods.registry import DistillContext, get_method

DATA = {"digits_image_size": 16, "imagenet_image_size": 32}


def write_folder(root, names, per_class=3, size=20):
    for k, name in enumerate(names):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (size, size + 4), (20 * k, 10 * i, 0)).save(root / name / f"{i:02d}.png")
    return root


def run(root, dataset="digits", ipc=2):
    ctx = DistillContext(dataset_info(dataset), root, ipc, 0, ExternalParams(str(root)), {}, DATA)
    return get_method("external").distill(ctx)


def test_folders_by_wnid_follow_the_class_list_order(tmp_path):
    woof = dataset_info("imagenet_woof")
    root = write_folder(tmp_path / "set", sorted(woof.wnids))
    assert [p.name for p in class_folders(root, woof)] == list(woof.wnids)
    synset = run(root, "imagenet_woof")
    assert synset.images.shape == (20, 3, 32, 32) and synset.labels.tolist() == [c for c in range(10) for _ in range(2)]
    k = sorted(woof.wnids).index(woof.wnids[0])  # label 0's colour comes from its wnid folder
    assert synset.images[0, 0, 16, 16].item() == pytest.approx(20 * k, abs=2)


def test_zero_padded_label_folders_are_accepted(tmp_path):
    root = write_folder(tmp_path / "set", [f"{k:05d}" for k in range(10)])
    assert run(root).images.shape == (20, 3, 16, 16)


def test_first_files_in_sorted_order(tmp_path):
    root = write_folder(tmp_path / "set", [str(k) for k in range(10)], per_class=3)
    synset = run(root, ipc=2)
    assert synset.images[1, 1, 8, 8].item() == pytest.approx(10, abs=2)  # file 01.png of class 0


def test_mismatched_classes_are_refused(tmp_path):
    root = write_folder(tmp_path / "set", [str(k) for k in range(9)] + ["cat"])
    with pytest.raises(ValueError, match=r"external set .*set: its 10 class folders .* do not match the 10 classes of digits"):
        run(root)


def test_too_few_images_and_missing_folder_are_refused(tmp_path):
    root = write_folder(tmp_path / "set", [str(k) for k in range(10)], per_class=1)
    with pytest.raises(ValueError, match=r"holds 1 images, fewer than ipc 2"):
        run(root)
    with pytest.raises(ValueError, match=r"does not exist; set params.path"):
        run(tmp_path / "nowhere")
