"""The lgm and sfm methods wired into the suite: the class-statistics artifact and its rule's script, the size and
encoder checks of a job, the real batches, the config checks, and the DAG (one chunk of every class, the statistics
job and the teacher as inputs). The methods' output contract is tests/test_methods_contract.py's."""
from __future__ import annotations

import pytest
import torch

from evaluation.config.validate import validate_config
from evaluation.core.errors import InputError
from evaluation.data.datasets import dataset_info
from methods.distill import distill
from methods.encoder.augment import center_crop, normalize
from methods.encoder.encoders import load_encoder
from methods.encoder.real import shuffled_batches, train_images
from methods.encoder.statistics import load_class_statistics
from methods.registry import DistillContext, get_method
from tests.conftest import method_params, typed_params
from tests.workflow_run import ROOT, load_script, snakemake

DIGITS = {"encoder": "teacher", "synthetic_resolution": 16, "crop_resolution": 16, "iterations": 3,
          "pyramid_extent_iterations": 1, "augs_per_batch": 1}


@pytest.fixture(scope="module")
def statistics(tmp_path_factory, digits_dir, digits_teacher_dir):
    path = tmp_path_factory.mktemp("statistics") / "teacher.pt"
    load_script("class_statistics").main(["--dataset", "digits", "--data", str(digits_dir), "--encoder", "teacher",
                                          "--teacher", str(digits_teacher_dir), "--resolution", "16", "--crop", "16",
                                          "--out", str(path)])
    return path


def test_class_statistics_are_the_class_means_of_the_teacher_features(statistics, digits_dir, digits_teacher,
                                                                     digits_teacher_dir):
    images, labels = train_images(digits_dir, 16)
    features = load_encoder("teacher", teacher=digits_teacher)(normalize(center_crop(images, 16)))
    expected = torch.stack([features[labels == c].double().mean(0) for c in range(10)])
    torch.testing.assert_close(load_class_statistics(statistics, "teacher", 16, 16), expected, rtol=1e-5, atol=1e-6)
    record = torch.load(statistics)
    assert record["counts"].tolist() == torch.bincount(labels, minlength=10).tolist()
    assert record["manifest"]["config"]["weights"] == str(digits_teacher_dir.absolute() / "model.pt")


def test_statistics_of_other_settings_are_refused(statistics):
    with pytest.raises(InputError, match=r"class statistics of encoder/resolution/crop \('teacher', 16, 16\), the "
                                         r"method needs \('teacher', 16, 8\)"):
        load_class_statistics(statistics, "teacher", 16, 8)


def context(method, digits_dir, teacher, statistics=None, **params):
    return DistillContext(dataset_info("digits"), digits_dir, 1, 0, typed_params(method, **{**DIGITS, **params}),
                          teacher=teacher, statistics_path=statistics)


@pytest.mark.parametrize("method", ["lgm", "sfm"])
def test_sizes_must_fit_the_dataset_and_the_encoder(method, digits_dir, digits_teacher, statistics):
    run = get_method(method).distill
    with pytest.raises(InputError, match="synthetic_resolution 32 but dataset digits stores 16 px images; set the "
                                         "method's params.synthetic_resolution to 16"):
        run(context(method, digits_dir, digits_teacher, statistics, synthetic_resolution=32, crop_resolution=16))
    with pytest.raises(InputError, match="crop_resolution 8 but encoder 'teacher' takes 16 px images"):
        run(context(method, digits_dir, digits_teacher, statistics, crop_resolution=8))


def test_sfm_with_the_decoupled_loss_and_lgm_in_pixel_mode_run(digits_dir, digits_teacher, statistics):
    sfm = get_method("sfm").distill(context("sfm", digits_dir, digits_teacher, statistics, loss="sfm_decouple"))
    lgm = get_method("lgm").distill(context("lgm", digits_dir, digits_teacher, image_mode="pixel"))
    for synset in (sfm, lgm):
        assert synset.images.shape == (10, 3, 16, 16) and synset.labels.tolist() == list(range(10))


def test_a_chunk_is_refused_for_a_method_that_optimises_all_classes(tmp_path, digits_dir, digits_teacher):
    spec = {"method": "lgm", "params": method_params("lgm", **DIGITS), "dataset": "digits", "data": {}}
    with pytest.raises(InputError, match="method 'lgm' optimises all classes jointly and cannot distil the chunk 2:4"):
        distill(spec, digits_dir, 1, 0, tmp_path / "s", classes=range(2, 4), teacher=digits_teacher)
    with pytest.raises(InputError, match="method 'sfm' needs the class statistics of its encoder"):
        distill({**spec, "method": "sfm", "params": method_params("sfm", **DIGITS)}, digits_dir, 1, 0, tmp_path / "t",
                teacher=digits_teacher)


def test_real_batches_are_seeded_epochs_without_repeats():
    images, labels = torch.arange(10).float().view(10, 1), torch.arange(10)
    reads = []

    def read(indices):
        reads.append(len(indices))
        return images[indices], labels[indices]
    first = shuffled_batches(10, 4, torch.Generator().manual_seed(0), read)
    batches = [next(first) for _ in range(4)]          # 2 batches per epoch, the last 2 images dropped
    assert reads == [4] * 4                            # one batch read at a time, never the split
    again = shuffled_batches(10, 4, torch.Generator().manual_seed(0), read)
    assert all(torch.equal(b[1], next(again)[1]) for b in batches)
    for epoch in (batches[:2], batches[2:]):
        seen = torch.cat([b[1] for b in epoch])
        assert len(seen.unique()) == 8
    assert all(torch.equal(b[0].flatten().long(), b[1]) for b in batches)   # images stay with their labels
    whole = next(shuffled_batches(10, 64, torch.Generator().manual_seed(0), read))
    assert sorted(whole[1].tolist()) == list(range(10))


def config_with(method, **params):
    return {"profile": "t", "datasets": ["digits"], "ipcs": [1], "methods": {"m": {"method": method,
                                                                                  "params": params}}}


def test_config_checks_the_encoder_weights_key_and_the_crop():
    with pytest.raises(ValueError, match=r"methods\.m: encoder 'eva02_vitb' weights missing: encoders\.eva02_vitb is "
                                         r"not set; set it to a local copy of timm eva02_base_patch14_224\.mim_in22k"):
        validate_config(config_with("sfm", encoder="eva02_vitb"))
    config = {**config_with("sfm", encoder="eva02_vitb"), "encoders": {"eva02_vitb": "/not/yet/there.safetensors"}}
    assert validate_config(config)["methods"]["m"]["params"]["encoder"] == "eva02_vitb"   # the job checks the file
    with pytest.raises(ValueError, match="crop_resolution 224 exceeds synthetic_resolution 16"):
        validate_config(config_with("lgm", encoder="teacher", synthetic_resolution=16))
    with pytest.raises(ValueError, match=r"encoders: 'vit' is not one of|'vit' is not one of"):
        validate_config({**config_with("lgm", **DIGITS), "encoders": {"vit": "/x"}})


def test_default_profile_dag_gives_the_encoder_methods_one_chunk_the_statistics_and_the_teacher(tmp_path):
    proc = snakemake(tmp_path, "-n", "-p", "--cores", "1", "--configfile", str(ROOT / "config" / "config.yaml"),
                     "--config", "distill_chunk_classes=3")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-2000:]
    for method in ("lgm", "sfm"):
        assert f"chunks/digits/{method}/ipc1/seed0/0-10" in out and f"chunks/digits/{method}/ipc1/seed0/0-3" not in out
    assert "chunks/digits/dit/ipc1/seed0/0-3" in out
    assert out.count("class_statistics.py --dataset digits") == 1
    assert ("--teacher results/digits/teachers/digits --statistics "
            "results/digits/class_statistics/digits/teacher-r16-c16.pt") in out
