"""Tests for evaluation.data.datasets (digits, ImageNet subsets on a fake tree, class lists) and for
methods.random_real.select_indices."""
from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from evaluation.data.datasets import (
    DATASETS,
    SPLITS,
    SUBSETS_FILE,
    DatasetError,
    dataset_info,
    digits_train_class_sizes,
    imagenet_class_folders,
    load_split,
    prepare_digits,
    prepare_imagenet,
    read_image,
    split_labels,
    split_paths,
)
from methods.random_real import select_indices
from tests.fake_imagenet import (
    BAND_COLOUR,
    class_colour,
    fake_wnids,
    make_fake_imagenet,
)

REPO = Path(__file__).resolve().parents[1]
REFERENCE_CANDIDATES = [REPO.parent / "shared" / "reference" / "imagenet_subsets.yaml",
                        REPO / "shared" / "reference" / "imagenet_subsets.yaml"]
LAYOUT = "train/<wnid>"
WOOF = "imagenet_woof"
WOOF_WNIDS = ["n02096294", "n02093754", "n02111889", "n02088364", "n02086240", "n02089973", "n02087394",
              "n02115641", "n02099601", "n02105641"]
WOOF_INDICES = [193, 182, 258, 162, 155, 167, 159, 273, 207, 229]
NUM_DIGITS = 1797


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# ----------------------------------------------------------------------------- digits

@pytest.fixture(scope="module")
def digits_splits(tmp_path_factory):
    """Digits prepared at 8 px (identity resize) and 16 px, fraction 0.25, split seed 0."""
    base = tmp_path_factory.mktemp("digits")
    dirs = {}
    for key, size in (("s8", 8), ("s16", 16)):
        dirs[key] = base / key
        dirs[key + "_counts"] = prepare_digits(dirs[key], image_size=size, test_fraction=0.25, split_seed=0)
    return dirs


def test_digits_split_sizes_sum_to_dataset(digits_splits):
    counts = digits_splits["s16_counts"]
    assert counts["train"] + counts["val"] + counts["test"] == NUM_DIGITS
    assert counts["test"] == pytest.approx(0.25 * NUM_DIGITS, abs=1)
    assert counts["val"] == pytest.approx(0.1 * (NUM_DIGITS - counts["test"]), abs=1)
    for split in SPLITS:
        assert len(split_labels(digits_splits["s16"], split)) == counts[split]


def test_digits_split_is_stratified(digits_splits):
    train, val, test = (Counter(split_labels(digits_splits["s16"], split).tolist()) for split in SPLITS)
    for label in range(10):
        class_size = train[label] + val[label] + test[label]
        assert abs(test[label] - 0.25 * class_size) <= 1, (label, test[label], class_size)
        assert abs(val[label] - 0.1 * (train[label] + val[label])) <= 1, (label, val[label])


def test_digits_labels_all_present_in_every_split(digits_splits):
    for split in SPLITS:
        assert sorted(set(split_labels(digits_splits["s16"], split).tolist())) == list(range(10))


def test_digits_images_uint8_rgb_gray_of_requested_size(digits_splits):
    for key, size in (("s8", 8), ("s16", 16)):
        for split in SPLITS:
            images, labels = load_split(digits_splits[key], split)
            assert images.dtype == torch.uint8 and labels.dtype == torch.long
            assert images.shape[1:] == (3, size, size) and len(images) == len(labels)
            assert torch.equal(images[:, 0], images[:, 1]) and torch.equal(images[:, 0], images[:, 2])
            assert images.max() > 200 and images.min() == 0  # the full 0..16 range was scaled
    assert split_paths(digits_splits["s16"], "train") is None


def test_digits_splits_partition_the_dataset(digits_splits):
    """At 8 px the resize is the identity: train + val + test is exactly sklearn's digits (as a
    multiset of (image, label)), so the splits are disjoint and cover every sample once."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    expected = np.round(digits.images / 16.0 * 255).astype(np.uint8)
    original = Counter((img.tobytes(), int(t)) for img, t in zip(expected, digits.target))
    prepared = Counter()
    for split in SPLITS:
        images, labels = load_split(digits_splits["s8"], split)
        prepared.update((img[0].numpy().tobytes(), int(t)) for img, t in zip(images, labels))
    assert sum(prepared.values()) == NUM_DIGITS
    assert prepared == original
    # the splits share no sample (duplicated digits aside, which the multiset already accounts for)
    train_images = {img[0].numpy().tobytes() for img in load_split(digits_splits["s8"], "train")[0]}
    test_images, _ = load_split(digits_splits["s8"], "test")
    shared = [img for img in test_images if img[0].numpy().tobytes() in train_images]
    duplicates = sum(1 for count in Counter(img.tobytes() for img in expected).values() if count > 1)
    assert len(shared) <= duplicates


def test_digits_prepare_is_deterministic_and_seed_dependent(tmp_path, digits_splits):
    again = prepare_digits(tmp_path / "again", image_size=8, test_fraction=0.25, split_seed=0)
    other = prepare_digits(tmp_path / "other", image_size=8, test_fraction=0.25, split_seed=1)
    assert again == digits_splits["s8_counts"]
    for split in SPLITS:
        a_img, a_lab = load_split(digits_splits["s8"], split)
        b_img, b_lab = load_split(tmp_path / "again", split)
        assert torch.equal(a_img, b_img) and torch.equal(a_lab, b_lab)
    a_img, _ = load_split(digits_splits["s8"], "test")
    c_img, _ = load_split(tmp_path / "other", "test")
    assert other["test"] == len(a_img)  # same size, different members
    assert not torch.equal(a_img, c_img)


def test_digits_load_split_indices_and_resize(digits_splits):
    images, labels = load_split(digits_splits["s16"], "train")
    sub_images, sub_labels = load_split(digits_splits["s16"], "train", indices=[5, 0, 7])
    assert torch.equal(sub_images, images[[5, 0, 7]]) and torch.equal(sub_labels, labels[[5, 0, 7]])
    small, _ = load_split(digits_splits["s16"], "train", image_size=8, indices=[0, 1])
    assert small.shape == (2, 3, 8, 8) and small.dtype == torch.uint8


# ----------------------------------------------------------------------------- ImageNet (fake tree)

@pytest.fixture(scope="module")
def fake_root(tmp_path_factory):
    """Woof and nette classes, as in a real ImageNet root holding more classes than one subset."""
    return make_fake_imagenet(tmp_path_factory.mktemp("imagenet") / "root", [WOOF, "imagenet_nette"])


@pytest.fixture(scope="module")
def woof_dir(fake_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / WOOF
    counts = prepare_imagenet(out, fake_root, dataset_info(WOOF), val_per_class=1, split_seed=0)
    assert counts == {"train": 20, "val": 10, "test": 20}
    return out


def test_fake_tree_layout(fake_root):
    wnids = fake_wnids([WOOF, "imagenet_nette"])
    assert len(wnids) == 20
    assert sorted(p.name for p in (fake_root / "train").iterdir()) == sorted(wnids)
    assert sorted(p.name for p in (fake_root / "val" / WOOF_WNIDS[0]).iterdir()) == [
        f"ILSVRC2012_val_{WOOF_WNIDS[0]}_{i}.JPEG" for i in range(2)]
    with pytest.raises(ValueError, match="imagenet_1k"):
        make_fake_imagenet(fake_root.parent / "x", ["imagenet_1k"])


def test_woof_list_is_not_sorted():
    assert list(dataset_info(WOOF).wnids) == WOOF_WNIDS
    assert WOOF_WNIDS != sorted(WOOF_WNIDS)


def test_prepare_imagenet_labels_follow_yaml_order(woof_dir, fake_root):
    for split, folder, per_class in (("train", "train", 2), ("val", "train", 1), ("test", "val", 2)):
        rows = read_csv(woof_dir / f"{split}.csv")
        assert len(rows) == 10 * per_class
        for row in rows:
            path = Path(row["path"])
            assert path.parent.parent == fake_root / folder
            assert path.parent.name == WOOF_WNIDS[int(row["label"])]
        assert [int(r["label"]) for r in rows] == [k for k in range(10) for _ in range(per_class)]
    # explicitly: Shih-Tzu (n02086240) is label 4 in file order, label 0 if the list were sorted
    shih_tzu = {int(r["label"]) for r in read_csv(woof_dir / "train.csv") if "n02086240" in r["path"]}
    assert shih_tzu == {4} and sorted(WOOF_WNIDS).index("n02086240") == 0
    assert split_labels(woof_dir, "train").tolist() == [k for k in range(10) for _ in range(2)]
    assert split_labels(woof_dir, "val").tolist() == list(range(10))
    assert split_paths(woof_dir, "test") == [r["path"] for r in read_csv(woof_dir / "test.csv")]


def test_prepare_imagenet_ignores_classes_outside_the_subset(woof_dir):
    paths = split_paths(woof_dir, "train")
    nette = set(dataset_info("imagenet_nette").wnids)
    assert not any(Path(p).parent.name in nette for p in paths)


def test_load_split_imagenet_centre_crops(woof_dir):
    images, labels = load_split(woof_dir, "test", image_size=32)
    assert images.shape == (20, 3, 32, 32) and images.dtype == torch.uint8
    assert labels.tolist() == [k for k in range(10) for _ in range(2)]
    band = torch.tensor(BAND_COLOUR).view(3, 1, 1)
    for image, label in zip(images, labels.tolist()):
        # fake class position == woof label (the tree was made with woof first)
        colour = torch.tensor(class_colour(label)).view(3, 1, 1)
        deviation = (image.int() - colour).abs()
        assert deviation[:, 4:-4, 4:-4].max() <= 10  # the class colour, not another class
        assert deviation.max() < 60                   # no band rows/columns: the crop is centred
        assert (image.int() - band).abs().amax(dim=0).min() > 60
    subset, sub_labels = load_split(woof_dir, "test", image_size=32, indices=[3, 0])
    assert torch.equal(subset, images[[3, 0]]) and sub_labels.tolist() == [1, 0]


def test_read_image_centre_crop_at_native_size(fake_root):
    """At size 40 the short side is not rescaled: the crop is exactly the class-colour square."""
    for position, wnid in enumerate(WOOF_WNIDS[:2]):  # portrait (even) and landscape (odd)
        path = fake_root / "train" / wnid / f"{wnid}_0.JPEG"
        image = read_image(path, 40)
        assert image.shape == (3, 40, 40) and image.dtype == torch.uint8
        deviation = (image.int() - torch.tensor(class_colour(position)).view(3, 1, 1)).abs()
        assert deviation.max() < 40 and deviation.float().mean() < 3
        # a non-centred (top/left) crop would include a 4-px band of BAND_COLOUR (>= 110 away)


def test_load_split_imagenet_needs_image_size(woof_dir):
    with pytest.raises(DatasetError, match="image size"):
        load_split(woof_dir, "train")


def assert_layout_error(err: pytest.ExceptionInfo, *fragments: object) -> None:
    message = str(err.value)
    assert "\n" not in message
    assert LAYOUT in message
    for fragment in fragments:
        assert str(fragment) in message, (fragment, message)


def test_error_root_none():
    with pytest.raises(DatasetError) as err:
        imagenet_class_folders(None, dataset_info(WOOF))
    assert_layout_error(err, "imagenet_root", WOOF)


def test_error_root_missing(tmp_path):
    with pytest.raises(DatasetError) as err:
        prepare_imagenet(tmp_path / "out", tmp_path / "nowhere", dataset_info(WOOF), val_per_class=1, split_seed=0)
    assert_layout_error(err, tmp_path / "nowhere", "does not exist")
    assert not (tmp_path / "out").exists()


def test_error_root_without_val(tmp_path):
    root = make_fake_imagenet(tmp_path / "root", [WOOF], train_per_class=1, val_per_class=1)
    for path in (root / "val").rglob("*"):
        if path.is_file():
            path.unlink()
    for path in sorted((root / "val").iterdir()):
        path.rmdir()
    (root / "val").rmdir()
    with pytest.raises(DatasetError) as err:
        imagenet_class_folders(root, dataset_info(WOOF))
    assert_layout_error(err, root, "val/")


@pytest.mark.parametrize("folder", ["train", "val"])
def test_error_missing_class_folder(tmp_path, folder):
    root = make_fake_imagenet(tmp_path / "root", [WOOF], train_per_class=1, val_per_class=1)
    class_dir = root / folder / WOOF_WNIDS[7]
    for path in class_dir.iterdir():
        path.unlink()
    class_dir.rmdir()
    with pytest.raises(DatasetError) as err:
        imagenet_class_folders(root, dataset_info(WOOF))
    assert_layout_error(err, class_dir, "missing class folder")


def test_error_empty_class_folder(tmp_path):
    root = make_fake_imagenet(tmp_path / "root", [WOOF], train_per_class=1, val_per_class=1)
    class_dir = root / "val" / WOOF_WNIDS[2]
    for path in class_dir.iterdir():
        path.unlink()
    (class_dir / "notes.txt").write_text("not an image")
    with pytest.raises(DatasetError) as err:
        prepare_imagenet(tmp_path / "out", root, dataset_info(WOOF), val_per_class=1, split_seed=0)
    assert_layout_error(err, class_dir, "no images")


def test_error_imagenet_1k_wrong_folder_count(fake_root):
    with pytest.raises(DatasetError) as err:
        imagenet_class_folders(fake_root, dataset_info("imagenet_1k"))
    assert_layout_error(err, fake_root / "train", "20 class folders", "1000")


def assert_unreadable(err: pytest.ExceptionInfo, path: Path) -> None:
    """One line naming the file and the fix (an image of any folder, so no ImageNet layout)."""
    assert str(err.value) == f"unreadable image {path} ({type(err.value.__cause__).__name__}); replace or remove the file"


def test_read_image_garbage_bytes(tmp_path):
    path = tmp_path / "n00000000_0.JPEG"
    path.write_bytes(b"this is not a JPEG at all" * 10)
    with pytest.raises(DatasetError) as err:
        read_image(path, 32)
    assert_unreadable(err, path)


def test_read_image_truncated_jpeg(tmp_path, fake_root):
    source = fake_root / "train" / WOOF_WNIDS[0] / f"{WOOF_WNIDS[0]}_0.JPEG"
    path = tmp_path / "truncated.JPEG"
    path.write_bytes(source.read_bytes()[: len(source.read_bytes()) // 2])
    with pytest.raises(DatasetError) as err:
        read_image(path, 32)
    assert_unreadable(err, path)


def test_load_split_reports_the_corrupt_file(tmp_path):
    root = make_fake_imagenet(tmp_path / "root", [WOOF], train_per_class=2, val_per_class=1)
    bad = root / "train" / WOOF_WNIDS[5] / f"{WOOF_WNIDS[5]}_1.JPEG"
    bad.write_bytes(b"\x00" * 64)
    prepare_imagenet(tmp_path / "out", root, dataset_info(WOOF), 0, 0)  # no val; indexing reads no image
    load_split(tmp_path / "out", "train", image_size=16, indices=[0, 10])
    with pytest.raises(DatasetError) as err:
        load_split(tmp_path / "out", "train", image_size=16)
    assert_unreadable(err, bad)


# ----------------------------------------------------------------------------- class lists

def subsets_yaml() -> dict:
    return yaml.safe_load(SUBSETS_FILE.read_text())


LISTED = [name for name in DATASETS if name not in ("digits", "imagenet_1k")]


def test_datasets_cover_the_yaml():
    entries = subsets_yaml()
    assert set(DATASETS) == {"digits"} | {n for n in entries if not n.endswith("_if_sorted_file")}
    assert {WOOF, "imagenet_nette", "imagenet_idc10", "imagenet_idc100", "imagenet_1k"} <= set(DATASETS)
    assert dataset_info("imagenet_1k").num_classes == 1000 and dataset_info("digits").num_classes == 10


@pytest.mark.parametrize("name", LISTED)
def test_class_list_counts_agree(name):
    entry = subsets_yaml()[name]
    info = dataset_info(name)
    assert entry["count"] == len(entry["wnids"]) == len(entry["names"]) == len(entry["indices"])
    assert info.num_classes == len(info.wnids) == len(info.class_names) == entry["count"]
    assert list(info.wnids) == entry["wnids"] and list(info.backbone_labels) == entry["indices"]
    assert len(set(info.wnids)) == len(info.wnids) and len(set(info.backbone_labels)) == len(info.wnids)
    assert all(0 <= i < 1000 for i in info.backbone_labels)


def test_class_indices_consistent_with_sorted_wnid_order():
    """index = position in the sorted 1000-wnid list, so the same wnid always has the same index and
    name, and wnid order equals index order across every list of the file."""
    pairs = {}
    names = {}
    for name, entry in subsets_yaml().items():
        if "wnids" not in entry:
            continue
        for k, (wnid, index) in enumerate(zip(entry["wnids"], entry["indices"])):
            assert pairs.setdefault(wnid, index) == index, (name, wnid)
            if "names" in entry:
                assert names.setdefault(wnid, entry["names"][k]) == entry["names"][k], (name, wnid)
    by_wnid = [pairs[w] for w in sorted(pairs)]
    assert by_wnid == sorted(by_wnid)


def test_woof_indices_in_file_order():
    assert list(dataset_info(WOOF).backbone_labels) == WOOF_INDICES
    assert dataset_info(WOOF).class_names[4] == "Shih-Tzu"


def test_idc10_is_the_first_ten_of_idc100():
    idc10, idc100 = dataset_info("imagenet_idc10"), dataset_info("imagenet_idc100")
    assert idc10.wnids == idc100.wnids[:10]
    assert idc10.class_names == idc100.class_names[:10]
    assert idc10.backbone_labels == idc100.backbone_labels[:10]
    assert list(idc10.wnids) != sorted(idc10.wnids)


def test_subsets_file_equals_reference():
    found = [path for path in REFERENCE_CANDIDATES if path.exists()]
    if not found:
        pytest.skip(f"no reference list at {REFERENCE_CANDIDATES[0]}")
    assert SUBSETS_FILE.read_bytes() == found[0].read_bytes()


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(DatasetError) as err:
        dataset_info("imagenet_wof")
    message = str(err.value)
    assert "imagenet_wof" in message
    for name in DATASETS:
        assert name in message


# ----------------------------------------------------------------------------- select_indices

def count_classes(labels: torch.Tensor) -> int:
    return int(labels.max()) + 1


def test_select_indices_refuses_a_class_without_images():
    labels = class_labels([3, 3])
    with pytest.raises(ValueError, match="ipc 1 exceeds the 0 training images of class 2"):
        select_indices(labels, 3, 1, seed=0, selection="seeded")


def class_labels(sizes: list[int], seed: int = 0) -> torch.Tensor:
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(sizes)])
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))]


def test_select_indices_seeded():
    labels = class_labels([7, 5, 9, 12])
    chosen = select_indices(labels, count_classes(labels), 3, seed=0, selection="seeded")
    assert len(chosen) == 12 and len(set(chosen)) == 12
    assert labels[chosen].tolist() == [c for c in range(4) for _ in range(3)]
    assert select_indices(labels, count_classes(labels), 3, seed=0, selection="seeded") == chosen
    assert select_indices(labels, count_classes(labels), 3, seed=1, selection="seeded") != chosen
    # all of a class: a permutation of its members
    everything = select_indices(labels, count_classes(labels), 5, seed=2, selection="seeded")
    assert sorted(everything[5:10]) == torch.nonzero(labels == 1).flatten().tolist()


def test_select_indices_seeded_per_class_independent():
    """Class c's pick depends on (seed, c) and its members only, not on the other classes."""
    labels = class_labels([7, 5, 9])
    other = labels.clone()
    rest = labels != 0
    other[rest] = labels[rest].flip(0)  # classes 1 and 2 move around; class 0 keeps its positions
    assert not torch.equal(other, labels)
    assert (select_indices(labels, count_classes(labels), 2, seed=3, selection="seeded")[:2]
            == select_indices(other, count_classes(other), 2, seed=3, selection="seeded")[:2])


def test_select_indices_first_k_sorted_paths():
    labels = torch.tensor([0, 1, 0, 1, 0, 1, 0])
    paths = ["c0/f.JPEG", "c1/b.JPEG", "c0/a.JPEG", "c1/c.JPEG", "c0/d.JPEG", "c1/a.JPEG", "c0/b.JPEG"]
    assert select_indices(labels, count_classes(labels), 2, seed=0, selection="first_k", paths=paths) == [2, 6, 5, 1]
    assert select_indices(labels, count_classes(labels), 2, seed=99, selection="first_k", paths=paths) == [2, 6, 5, 1]
    assert select_indices(labels, count_classes(labels), 2, seed=0, selection="first_k") == [0, 2, 1, 3]


def test_select_indices_first_k_on_prepared_imagenet(woof_dir):
    labels, paths = split_labels(woof_dir, "train"), split_paths(woof_dir, "train")
    chosen = select_indices(labels, count_classes(labels), 2, seed=0, selection="first_k", paths=paths)
    assert [Path(paths[i]).name for i in chosen[:2]] == [f"{WOOF_WNIDS[0]}_0.JPEG", f"{WOOF_WNIDS[0]}_1.JPEG"]


@pytest.mark.parametrize("selection", ["seeded", "first_k"])
def test_select_indices_ipc_too_large(selection):
    labels = class_labels([7, 5, 9])
    with pytest.raises(ValueError, match="ipc 6 exceeds the 5 training images of class 1"):
        select_indices(labels, count_classes(labels), 6, seed=0, selection=selection)


def test_imagenet_val_split_is_held_out_of_train(woof_dir, fake_root):
    train, val = set(split_paths(woof_dir, "train")), set(split_paths(woof_dir, "val"))
    assert not train & val
    assert all("/train/" in path for path in val)
    everything = {str(p.resolve()) for p in (fake_root / "train").glob("*/*") if p.parent.name in
                  dataset_info(WOOF).wnids}
    assert train | val == everything


def test_hold_out_is_seeded_and_keeps_half_a_class():
    from evaluation.data.datasets import hold_out

    files = [Path(f"{i:03d}.JPEG") for i in range(10)]
    kept, held = hold_out(files, 3, seed=0)
    assert len(held) == 3 and sorted(kept + held) == files and kept == sorted(kept)
    assert hold_out(files, 3, seed=0) == (kept, held) and hold_out(files, 3, seed=1) != (kept, held)
    assert len(hold_out(files, 50, seed=0)[1]) == 5


def test_digits_train_class_sizes_match_the_prepared_split(digits_dir):
    """What the config checks IPC against (evaluation/config/validate.py) is the prepared train split's."""
    data_cfg = {"digits_test_fraction": 0.2, "split_seed": 0, "digits_val_fraction": 0.1}
    labels = torch.load(digits_dir / "train.pt")["labels"]
    assert digits_train_class_sizes(data_cfg) == torch.bincount(labels, minlength=10).tolist()
