"""Metrics of distilled sets: clean-fid FID/KID, prdc, bootstrap intervals, OT distance, diversity,
the offline extractors and the ``features``/``measure`` entry points."""
from __future__ import annotations

import json
import re
import shutil
import urllib.request

import numpy as np
import prdc
import pytest
import torch
from cleanfid.fid import compute_fid, frechet_distance, get_folder_features, kernel_distance
from cleanfid.inception_torchscript import InceptionV3W
from PIL import Image
from torch import nn

from evaluation.data.datasets import dataset_info, load_split
from evaluation.metrics import features as features_entry
from evaluation.metrics import measure as measure_entry
from evaluation.metrics import extractors, metrics_config
from evaluation.metrics.bootstrap import bootstrap, resample_indices
from evaluation.metrics.diversity import diversity
from evaluation.metrics.extractors import (
    Extractor,
    MissingWeightsError,
    create_extractor,
)
from evaluation.data.synsets import write_synset
from evaluation.metrics.fid import FidResampler, fid, kid
from evaluation.metrics.ot_distance import ot_distance, real_subset
from evaluation.metrics.prdc_metrics import PrdcResampler, prdc_values
from evaluation.protocols.networks import create_network
from tests.fake_imagenet import make_fake_imagenet
from tests.standin_weights import write_inception_standin, write_resnet_standin, write_vgg16_standin
from tests.workflow_run import ROOT, load_script, snakemake

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
NETWORK = {"arch": "convnet", "depth": 2, "width": 16}


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    """An untrained 16 px ConvNet-2 saved in ``train_teacher``'s format."""
    torch.manual_seed(0)
    kwargs = {k: v for k, v in NETWORK.items() if k != "arch"}
    model = create_network("convnet", 10, 16, **kwargs)
    path = tmp_path_factory.mktemp("teacher")
    torch.save({"state_dict": model.state_dict(), "network": NETWORK, "num_classes": 10, "image_size": 16,
                "mean": IMAGENET_MEAN, "std": IMAGENET_STD}, path / "model.pt")
    return path


@pytest.fixture(scope="module")
def teacher(teacher_dir):
    return create_extractor("teacher", "cpu", teacher_dir)


@pytest.fixture(scope="module")
def digits(digits_dir):
    return load_split(digits_dir, "train")


def write_folder(folder, images):
    folder.mkdir(parents=True)
    for i, image in enumerate(images):
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{i:04d}.png")
    return str(folder)


def gaussian(rng, count, dim, shift=0.0):
    return (rng.normal(size=(count, dim)) + shift).astype(np.float32)


# ----------------------------------------------------------------------------- FID and KID

def test_fid_of_a_set_against_itself_is_zero(teacher, digits):
    feats = teacher.features(digits[0][:200])
    assert abs(fid(feats, feats)) < 1e-4
    assert fid(feats, teacher.features(digits[0][200:300])) > 1e-2


def test_teacher_fid_equals_cleanfid_compute_fid_on_folders(tmp_path, teacher, digits):
    images = digits[0]
    real_dir, syn_dir = write_folder(tmp_path / "real", images[:60]), write_folder(tmp_path / "syn", images[60:90])
    ours = fid(teacher.features(images[:60]), teacher.features(images[60:90]))
    theirs = compute_fid(real_dir, syn_dir, mode=teacher.cleanfid_mode, custom_feat_extractor=teacher.model,
                         device=torch.device("cpu"), num_workers=0, verbose=False)
    assert ours == pytest.approx(theirs, rel=1e-6)


def test_clean_mode_features_equal_cleanfid_folder_features(tmp_path, digits):
    """The inception path: clean-fid's 'clean' resize to 299 then the model, image by image."""
    stand_in = nn.Sequential(nn.AdaptiveAvgPool2d(3), nn.Flatten()).eval()   # sees [0, 255] at 299 px
    extractor = Extractor("stand-in", "clean", 27, stand_in, extractors.CLEAN_MODE, 299)
    images = digits[0][:12]
    theirs = get_folder_features(write_folder(tmp_path / "set", images), stand_in, num_workers=0,
                                 device=torch.device("cpu"), mode="clean", verbose=False)
    ours = extractor.features(images, batch_size=5)
    assert ours.shape == (12, 27)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    assert ours.std() > 1   # the features do depend on the images


@pytest.mark.parametrize("real_count, syn_count, dim", [(300, 20, 24), (12, 10, 64), (400, 200, 16)])
def test_fid_equals_cleanfid_frechet_distance(real_count, syn_count, dim):
    """The identity equals clean-fid's sqrtm form: singular synthetic, both singular, both full rank."""
    rng = np.random.default_rng(1)
    real, syn = gaussian(rng, real_count, dim), gaussian(rng, syn_count, dim, 0.3)
    theirs = frechet_distance(syn.mean(0), np.cov(syn, rowvar=False), real.mean(0), np.cov(real, rowvar=False))
    assert fid(real, syn) == pytest.approx(theirs, rel=1e-6)


def test_fid_resampler_replicates_cleanfid_fid():
    rng = np.random.default_rng(0)
    real, syn = gaussian(rng, 300, 24), gaussian(rng, 20, 24, 0.3)   # n < D: singular synthetic covariance
    replicate = FidResampler(real, syn)
    assert replicate(np.arange(20)) == pytest.approx(fid(real, syn), rel=1e-6)
    rows = rng.integers(0, 20, size=20)
    assert replicate(rows) == pytest.approx(fid(real, syn[rows]), rel=1e-6)


@pytest.mark.parametrize("real_count, syn_count, configured, expected", [
    (200, 30, 1000, 30), (200, 30, 12, 12), (25, 30, 1000, 25)])
def test_kid_subset_size_is_capped_and_matches_cleanfid(real_count, syn_count, configured, expected):
    rng = np.random.default_rng(1)
    real, syn = gaussian(rng, real_count, 8), gaussian(rng, syn_count, 8, 0.5)
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    value, size = kid(real, syn, num_subsets=10, max_subset_size=configured, seed=7)
    assert size == expected <= min(real_count, syn_count)
    np.testing.assert_array_equal(np.random.get_state()[1], before)   # global generator restored
    np.random.seed(7)
    assert value == pytest.approx(kernel_distance(real, syn, num_subsets=10, max_subset_size=configured))
    assert kid(real, syn, 10, configured, seed=7)[0] == value


def test_kid_of_one_sample_subsets_is_none():
    rng = np.random.default_rng(0)
    assert kid(gaussian(rng, 10, 4), gaussian(rng, 1, 4), 10, 1000, 0) == (None, 1)


# ----------------------------------------------------------------------------- prdc and bootstrap

def test_prdc_equals_the_package_and_its_resampled_formulas():
    rng = np.random.default_rng(2)
    real, syn = gaussian(rng, 150, 16), gaussian(rng, 40, 16, 0.4)
    direct = prdc.compute_prdc(real_features=real, fake_features=syn, nearest_k=5)
    ours = prdc_values(real, syn, 5)
    assert ours == pytest.approx({k: float(v) for k, v in direct.items()}, abs=0)
    replicate = PrdcResampler(real, syn, 5)
    assert replicate(np.arange(40)) == pytest.approx(ours, abs=0)
    rows = rng.integers(0, 40, size=40)
    resampled = prdc.compute_prdc(real_features=real, fake_features=syn[rows], nearest_k=5)
    assert replicate(rows) == pytest.approx({k: float(v) for k, v in resampled.items()}, abs=1e-12)


def test_prdc_needs_more_samples_than_k():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="at least 7 synthetic samples, got 6"):
        prdc_values(gaussian(rng, 50, 4), gaussian(rng, 6, 4), 5)


def intervals(real, syn, resamples, ci, seed):
    fid_rep, prdc_rep = FidResampler(real, syn), PrdcResampler(real, syn, 5)
    value = {"fid": fid(real, syn), **prdc_values(real, syn, 5)}
    return bootstrap(lambda row: {"fid": fid_rep(row), **prdc_rep(row)}, value,
                     resample_indices(len(syn), resamples, seed), ci)


def test_bootstrap_intervals_are_ordered_seeded_nested_and_null_without_resamples():
    rng = np.random.default_rng(3)
    real, syn = gaussian(rng, 200, 12), gaussian(rng, 40, 12, 0.5)
    wide = intervals(real, syn, 60, 0.95, seed=0)
    assert set(wide) == {"fid", "precision", "recall", "density", "coverage"}
    for name, entry in wide.items():
        assert entry["ci_low"] <= entry["ci_high"], name
    assert wide["fid"]["ci_high"] > wide["fid"]["ci_low"]
    assert intervals(real, syn, 60, 0.95, seed=0) == wide
    assert intervals(real, syn, 60, 0.95, seed=1)["fid"] != wide["fid"]
    narrow = intervals(real, syn, 60, 0.5, seed=0)   # same replicates: the 50% interval lies inside
    for name in wide:
        assert wide[name]["ci_low"] <= narrow[name]["ci_low"] <= narrow[name]["ci_high"] <= wide[name]["ci_high"]
        assert narrow[name]["value"] == wide[name]["value"]
    none = intervals(real, syn, 0, 0.95, seed=0)
    assert all(e["ci_low"] is None and e["ci_high"] is None for e in none.values())
    assert none["fid"]["value"] == wide["fid"]["value"]


def test_half_sampling_intervals_contain_the_full_set_value():
    """The with-replacement bootstrap's duplicates inflate FID and deflate coverage so much that its
    interval misses the full-set value; half-samples hold no duplicates and the interval is centred."""
    rng = np.random.default_rng(5)
    real, syn = gaussian(rng, 200, 12), gaussian(rng, 40, 12, 0.5)
    for name, entry in intervals(real, syn, 60, 0.95, seed=0).items():
        assert entry["ci_low"] < entry["value"] < entry["ci_high"], name
        assert entry["value"] - entry["ci_low"] == pytest.approx(entry["ci_high"] - entry["value"])
    degenerate = bootstrap(lambda row: {"recall": 1.0 - 0.1 * (row[0] % 2)}, {"recall": 1.0},
                           resample_indices(40, 20, seed=0), 0.95)["recall"]
    assert degenerate["ci_high"] == 1.0 > degenerate["ci_low"]   # clipped to the metric's range
    rows = resample_indices(40, 5, seed=0)
    assert rows.shape == (5, 20) and all(len(set(row)) == 20 for row in rows.tolist())


def test_half_sample_spread_of_a_mean_matches_its_standard_error():
    """For the mean, the half-sample variance reproduces the variance of the full-sample mean."""
    rng = np.random.default_rng(6)
    values = rng.normal(size=400)
    rows = resample_indices(len(values), 2000, seed=0)
    entry = bootstrap(lambda row: {"mean": float(values[row].mean())}, {"mean": float(values.mean())}, rows,
                      ci=0.6826894921370859)["mean"]
    standard_error = values.std(ddof=1) / np.sqrt(len(values))
    assert (entry["ci_high"] - entry["ci_low"]) / 2 == pytest.approx(standard_error, rel=0.1)


def test_half_sets_too_small_for_prdc_give_no_interval():
    entry = bootstrap(lambda row: {"m": 0.0}, {"m": 1.0}, resample_indices(10, 5, seed=0), 0.95, min_count=7)
    assert entry["m"] == {"value": 1.0, "ci_low": None, "ci_high": None}


# ----------------------------------------------------------------------------- OT distance, diversity

def test_ot_distance_is_zero_for_identical_sets_and_grows_with_a_shift():
    rng = np.random.default_rng(4)
    real = gaussian(rng, 60, 8)
    same, _ = ot_distance(real, real.copy(), max_real=1000, perplexity=30, seed=0)
    far, count = ot_distance(real, real + 5.0, max_real=1000, perplexity=30, seed=0)
    assert count == 60
    assert same < 0.05 * far
    assert ot_distance(real, real + 5.0, 1000, 30, seed=0)[0] == far


def test_ot_real_subset_is_capped_and_seeded():
    assert np.array_equal(real_subset(10, 20, 0), np.arange(10))
    chosen = real_subset(100, 30, 0)
    assert len(chosen) == len(set(chosen.tolist())) == 30 and np.all(np.diff(chosen) > 0)
    assert np.array_equal(chosen, real_subset(100, 30, 0))
    assert not np.array_equal(chosen, real_subset(100, 30, 1))


def test_diversity_of_duplicates_is_zero_and_of_points_on_a_line_is_the_mean_gap():
    rng = np.random.default_rng(5)
    point = rng.normal(size=(1, 4096)).astype(np.float32) * 100
    assert diversity(np.repeat(point, 5, axis=0)) == 0.0
    line = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [7.0, 0.0]])
    assert diversity(line) == pytest.approx((1 + 1 + 2 + 4) / 4)


# ----------------------------------------------------------------------------- offline weights

@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a download was attempted")
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


def test_missing_inception_weights_name_the_file_and_the_directory(tmp_path, monkeypatch, no_network):
    monkeypatch.setattr(extractors, "cleanfid_weights_dir", lambda: tmp_path)
    with pytest.raises(MissingWeightsError) as err:
        create_extractor("inception")
    message = str(err.value)
    assert "\n" not in message and "inception-2015-12-05.pt" in message and str(tmp_path) in message


def test_missing_vgg_weights_name_the_file_and_the_directory(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(MissingWeightsError) as err:
        create_extractor("vgg16_fc7")
    message = str(err.value)
    assert "\n" not in message and "vgg16-397923af.pth" in message
    assert str(tmp_path / "hub" / "checkpoints") in message and "metrics.vgg16_weights" in message


@pytest.fixture(scope="module")
def inception_standin(tmp_path_factory):
    """The Inception stand-in under a name of its own, and the same file where clean-fid looks."""
    path = write_inception_standin(tmp_path_factory.mktemp("weights") / "my-inception.pt")
    cleanfid_dir = tmp_path_factory.mktemp("cleanfid")
    shutil.copy(path, cleanfid_dir / "inception-2015-12-05.pt")
    return path, cleanfid_dir


def test_inception_weights_option_equals_cleanfid_inceptionv3w_on_the_same_file(inception_standin, digits,
                                                                                 monkeypatch, no_network):
    path, cleanfid_dir = inception_standin
    monkeypatch.setattr(extractors, "cleanfid_weights_dir", lambda: path.parent / "absent")
    ours = create_extractor("inception", weights=path)   # clean-fid's own folder holds nothing
    assert ours.weights == str(path.absolute()) and ours.dim == 2048
    cleanfid = InceptionV3W(str(cleanfid_dir), download=False, resize_inside=False).eval()
    theirs = Extractor("clean-fid", "clean", 2048, cleanfid, extractors.CLEAN_MODE, 299)
    images = digits[0][:6]
    features = ours.features(images, batch_size=4)
    assert features.shape == (6, 2048) and features.std() > 0
    np.testing.assert_array_equal(features, theirs.features(images, batch_size=4))   # bit-identical
    monkeypatch.setattr(extractors, "cleanfid_weights_dir", lambda: cleanfid_dir)   # null: clean-fid's place
    assert create_extractor("inception").weights == str(cleanfid_dir / "inception-2015-12-05.pt")


def test_vgg16_weights_option_reads_a_state_dict_anywhere(tmp_path, digits, monkeypatch, no_network):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))   # torchvision's cache holds nothing
    path = write_vgg16_standin(tmp_path / "weights" / "vgg.pth")
    assert path.stat().st_size < 1_000_000   # 138 M parameters at full shape, stored as strided views
    extractor = create_extractor("vgg16_fc7", weights=str(path))
    assert extractor.weights == str(path) and extractor.dim == 4096
    features = extractor.features(digits[0][:3])
    assert features.shape == (3, 4096) and np.isfinite(features).all()
    assert np.abs(features[0] - features[1]).max() > 0


@pytest.mark.parametrize("name, key", [("inception", "metrics.inception_weights"),
                                       ("vgg16_fc7", "metrics.vgg16_weights")])
def test_a_missing_configured_weight_file_is_one_line_naming_path_and_key(name, key, tmp_path, no_network):
    path = tmp_path / "nowhere" / "weights.pt"
    with pytest.raises(MissingWeightsError) as err:
        create_extractor(name, weights=path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and key in message
    assert ("inception-2015-12-05.pt" if name == "inception" else "vgg16-397923af.pth") in message


def test_weight_files_that_do_not_fit_are_one_line_errors(tmp_path, inception_standin, teacher_dir, no_network):
    not_torchscript = write_vgg16_standin(tmp_path / "vgg.pth")
    with pytest.raises(ValueError, match=r"vgg\.pth: not a TorchScript module \(.*\); use clean-fid's "
                                         r"inception-2015-12-05\.pt"):
        create_extractor("inception", weights=not_torchscript)
    with pytest.raises(ValueError, match=r"my-inception\.pt: not a state dict \(Cannot use .* TorchScript "
                                         r"archives .*\); replace it with torchvision's https://\S+vgg16"):
        create_extractor("vgg16_fc7", weights=inception_standin[0])
    with pytest.raises(ValueError, match=r"r18\.pth: weights of another architecture than VGG"):
        create_extractor("vgg16_fc7", weights=write_resnet_standin(tmp_path / "r18.pth"))
    with pytest.raises(ValueError, match="extractor 'teacher' takes no weight file"):
        create_extractor("teacher", "cpu", teacher_dir, weights=inception_standin[0])


def test_unknown_extractor_and_metric_key_are_one_line_errors():
    with pytest.raises(ValueError, match="unknown feature extractor 'clip'; valid: inception, teacher, vgg16_fc7"):
        create_extractor("clip")
    with pytest.raises(ValueError, match="metrics.kid_subsets is not a metrics setting"):
        metrics_config({"kid_subsets": 10})
    assert metrics_config({"enabled": True, "bootstrap": 3})["bootstrap"] == 3


# ----------------------------------------------------------------------------- entry points

METRICS = {"fid_extractor": "teacher", "feature_extractor": "teacher", "reference_split": "train",
           "bootstrap": 20, "ot_max_real": 200, "seed": 0}


@pytest.fixture
def torch_threads():
    """The entry points set torch's thread count for the whole process: restore it afterwards."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_features_and_measure_entry_points_write_the_documented_artifacts(tmp_path, digits_dir, teacher_dir,
                                                                          torch_threads):
    out = tmp_path / "features" / "teacher-train.pt"
    spec = {"dataset": "digits", "extractor": "teacher", "split": "train"}
    load_script("real_features").main(["--spec", json.dumps(spec), "--data", str(digits_dir), "--split", "train",
                         "--extractor", "teacher", "--teacher", str(teacher_dir), "--out", str(out)])
    record = torch.load(out)
    assert set(record) == {"features", "labels", "extractor", "resize", "split", "manifest"}
    labels = load_split(digits_dir, "train")[1]
    assert record["features"].dtype == torch.float32 and record["features"].shape == (len(labels), 256)
    assert torch.equal(record["labels"], labels) and record["labels"].dtype == torch.long
    assert (record["extractor"], record["split"]) == ("teacher", "train")
    assert record["manifest"]["config"] == spec

    test_images, test_labels = load_split(digits_dir, "test")
    keep = torch.cat([torch.nonzero(test_labels == c)[:3, 0] for c in range(10)])
    synset = tmp_path / "synset"
    write_synset(synset, test_images[keep], test_labels[keep], dataset_info("digits").class_names, {})
    spec = {"dataset": "digits", "method": "random", "ipc": 3, "seed": 0, "metrics": {**METRICS, "enabled": True}}
    result = tmp_path / "metrics.json"
    load_script("measure").main(["--spec", json.dumps(spec), "--synset", str(synset), "--fid-features", str(out),
                        "--features", str(out), "--teacher", str(teacher_dir), "--out", str(result)])
    record = json.loads(result.read_text())
    assert set(record) == {"dataset", "method", "ipc", "seed", "reference_split", "count", "reference_count",
                           "extractors", "metrics", "manifest"}
    assert (record["count"], record["reference_count"], record["reference_split"]) == (30, len(labels), "train")
    assert record["extractors"]["fid"]["name"] == record["extractors"]["features"]["name"] == "teacher"
    metrics = record["metrics"]
    assert set(metrics) == {"fid", "kid", "precision", "recall", "density", "coverage", "ot_distance", "diversity"}
    for name in ("fid", "precision", "recall", "density", "coverage"):
        assert metrics[name]["ci_low"] <= metrics[name]["ci_high"], name
    assert metrics["kid"]["subset_size"] == 30
    assert metrics["ot_distance"]["real_count"] == 200 and metrics["diversity"]["value"] > 0
    assert 0 <= metrics["coverage"]["value"] <= 1

    # same set and features, no bootstrap: values unchanged, intervals null
    plain = measure_entry.measure_set({**spec, "metrics": {**METRICS, "bootstrap": 0}}, synset, out, out, teacher_dir)
    # (BLAS thread counts differ from the CLI's single thread: the SVD moves ~1e-8)
    assert plain["metrics"]["fid"] == {"value": pytest.approx(metrics["fid"]["value"], rel=1e-6), "ci_low": None,
                                       "ci_high": None}
    ot_value = metrics["ot_distance"]["value"]
    assert plain["metrics"]["ot_distance"] == {**metrics["ot_distance"], "value": pytest.approx(ot_value, rel=1e-6)}

    with pytest.raises(measure_entry.FeatureArtifactError, match="split 'train', the metrics config asks for 'test'"):
        measure_entry.measure_set({**spec, "metrics": {**METRICS, "reference_split": "test"}}, synset, out, out,
                                  teacher_dir)


def test_entry_points_read_the_configured_weight_file_and_record_it(tmp_path, digits_dir, teacher_dir,
                                                                    inception_standin, torch_threads, no_network):
    path = str(inception_standin[0])
    out = tmp_path / "features" / "inception-test.pt"
    spec = {"dataset": "digits", "extractor": "inception", "split": "test", "weights": path}
    load_script("real_features").main(["--spec", json.dumps(spec), "--data", str(digits_dir), "--split", "test",
                         "--extractor", "inception", "--out", str(out)])
    record = torch.load(out)
    labels = load_split(digits_dir, "test")[1]
    assert record["features"].shape == (len(labels), 2048) and record["extractor"] == "inception"
    assert record["manifest"]["weights"] == path and record["manifest"]["config"] == spec
    teacher_features = tmp_path / "features" / "teacher-test.pt"
    features_entry.write_features({}, digits_dir, "test", "teacher", teacher_features, "cpu", teacher_dir)

    images, set_labels = load_split(digits_dir, "train")
    keep = torch.cat([torch.nonzero(set_labels == c)[:2, 0] for c in range(10)])
    synset = tmp_path / "synset"
    write_synset(synset, images[keep], set_labels[keep], dataset_info("digits").class_names, {})
    metrics = {**METRICS, "fid_extractor": "inception", "reference_split": "test", "bootstrap": 0,
               "inception_weights": path}
    spec = {"dataset": "digits", "method": "random", "ipc": 2, "seed": 0, "metrics": metrics}
    record = measure_entry.measure_set(spec, synset, out, teacher_features, teacher_dir)
    assert record["manifest"]["weights"] == {"inception": path, "teacher": str(teacher_dir / "model.pt")}
    assert record["extractors"]["fid"]["name"] == "inception" and record["metrics"]["fid"]["value"] > 0


def job_specs(out: str, rule: str) -> list[dict]:
    """The ``--spec`` JSON of every job of ``rule`` in a dry run's printed shell commands."""
    command = re.escape(f"$DMGD_SCRIPTS/{rule}.py --spec '")
    return [json.loads(spec) for spec in re.findall(command + r"(\{[^']*\})'", out)]


def test_rules_pass_configured_weight_files_and_keep_default_specs(tmp_path):
    """Set, each weight key reaches its jobs' specs (Table 9's profile: Inception FID, VGG-16 prdc;
    the torchvision teacher of the backbone check); null, the specs are what they were before the keys
    existed, so that no finished job re-runs."""
    root = make_fake_imagenet(tmp_path / "imagenet", ["imagenet_woof"], train_per_class=1, val_per_class=1, size=8)
    overlay = tmp_path / "weights.yaml"
    overlay.write_text("backbone: {check: true}\n"
                       "teacher: {source: torchvision, network: {arch: resnet, depth: 18, norm: batch}}\n")
    chosen = tmp_path / "weights-set.yaml"
    chosen.write_text("metrics: {inception_weights: /w/inception.pt, vgg16_weights: /w/vgg.pth}\n"
                      "teacher: {weights: /w/resnet18.pth}\n")
    specs = {}
    for name, files in (("default", [overlay]), ("set", [overlay, chosen])):
        proc = snakemake(tmp_path / name, "-n", "-p", "--cores", "1", "--configfile",
                         str(ROOT / "config" / "paper" / "quality.yaml"), *map(str, files),
                         "--config", f"imagenet_root={root}")
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-2000:]
        specs[name] = {rule: job_specs(out, rule) for rule in ("real_features", "measure", "train_teacher")}
    default, chosen = specs["default"], specs["set"]
    assert {s["extractor"] for s in default["real_features"]} == {"inception", "vgg16_fc7"}
    assert all("weights" not in s for s in default["real_features"])
    assert all(not {"inception_weights", "vgg16_weights"} & set(s["metrics"]) for s in default["measure"])
    assert len(default["train_teacher"]) == 1 and "weights" not in default["train_teacher"][0]["teacher"]
    assert {s["extractor"]: s["weights"] for s in chosen["real_features"]} == {
        "inception": "/w/inception.pt", "vgg16_fc7": "/w/vgg.pth"}
    assert len(chosen["measure"]) == 3 and all(
        (s["metrics"]["inception_weights"], s["metrics"]["vgg16_weights"]) == ("/w/inception.pt", "/w/vgg.pth")
        for s in chosen["measure"])
    assert chosen["train_teacher"][0]["teacher"]["weights"] == "/w/resnet18.pth"
