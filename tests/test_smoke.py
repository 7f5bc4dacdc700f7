"""Every paper profile run for real with `smoke: true` over the smoke kit (tests/smoke_kit.py): a fake
ImageNet of every subset and of 1K, a miniature DiT-XL/2-shaped 1000-class backbone (hub layout and
official `.pt`), and stand-in weight files for Inception, VGG-16, the torchvision teacher (also S³'s
ResNet-18) and the frozen ViT encoders (one-block variants) given through the options a user gives local
weights with (tests/standin_weights.py).

Each test checks what a user would: tables with every method row, the images at the profile's size,
labels in the dataset's class order, backbone class ids equal to the subset's ImageNet ids, costs
recorded. `pytest -m smoke` runs all of them (.ci/run does); a plain `python -m pytest` runs the Woof
one (tests/conftest.py). Wall time and peak memory of each run are printed (`-s`) and appended to
``$SMOKE_REPORT`` when set (peak memory: the largest job's max RSS from Snakemake's benchmark files).
"""
from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import pytest
import yaml
from PIL import Image

from evaluation.data.datasets import dataset_info
from tests.smoke_kit import build_smoke_kit
from tests.standin_weights import (write_encoder_standin, write_inception_standin, write_resnet_standin,
                                   write_vgg16_standin)
from tests.workflow_run import snakemake

pytestmark = pytest.mark.smoke

ROOT = Path(__file__).resolve().parent.parent
PAPER = ROOT / "config" / "paper"
VIT_ENCODERS = ("dinov2_vitb", "clip_vitb32", "clip_vitb16", "eva02_vitb", "mocov3_vitb")
REFERENCE_SUBSETS = ROOT.parent / "shared" / "reference" / "imagenet_subsets.yaml"
# the backbone source each profile is smoke-tested with: both forms a user may hold
OFFICIAL_PT_PROFILES = {"imagenet_1k", "nette", "ablations"}


@pytest.fixture(scope="session")
def kit(tmp_path_factory):
    return build_smoke_kit(tmp_path_factory.mktemp("smoke_kit"))


@pytest.fixture(scope="session")
def weights(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("weights")
    paths = {"inception": folder / "inception-standin.pt", "vgg16": folder / "vgg16-standin.pth",
             "resnet18": folder / "resnet18-standin.pth"}
    write_inception_standin(paths["inception"])
    write_vgg16_standin(paths["vgg16"])
    write_resnet_standin(paths["resnet18"], depth=18)
    for name in VIT_ENCODERS:
        paths[name] = write_encoder_standin(name, folder / f"{name}-standin.pth")
    return paths


def overlay(profile: str, kit, weights: dict[str, Path]) -> dict:
    """What a cluster user adds to a paper profile: data root, local weights, smoke."""
    if profile in OFFICIAL_PT_PROFILES:
        backbone = {"source": str(kit.official_pt), "vae": str(kit.vae_dir), "num_heads": kit.num_heads}
    else:
        backbone = {"source": str(kit.backbone_dir), "vae": None}   # the directory's own vae/
    return {"smoke": True, "imagenet_root": str(kit.imagenet_root), "backbone": backbone,
            "metrics": {"inception_weights": str(weights["inception"]), "vgg16_weights": str(weights["vgg16"])},
            "teacher": {"weights": str(weights["resnet18"])}}


def run_profile(profile: str, kit, weights, tmp_path: Path) -> tuple[Path, dict]:
    workdir = tmp_path / "work"
    workdir.mkdir()
    extra = workdir / "smoke-overlay.yaml"
    raw = yaml.safe_load((PAPER / f"{profile}.yaml").read_text())
    settings = overlay(profile, kit, weights)
    if raw.get("teacher", {}).get("source") != "torchvision":
        del settings["teacher"]
    # S³'s extractor and the linear probes' / LGM's / SFM's encoders, where a user points them
    settings["encoders"] = {name: str(weights[name]) for name in ("resnet18", *VIT_ENCODERS)}
    extra.write_text(yaml.safe_dump(settings))
    started = time.time()
    proc = snakemake(workdir, "--cores", "2", "--configfile", str(PAPER / f"{profile}.yaml"), str(extra))
    wall = time.time() - started
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    assert "smoke run: ipcs:" in proc.stderr            # the reductions are printed at start
    results = workdir / "results" / f"{raw['profile']}-smoke"
    jobs = [row for tsv in (results / "benchmarks").rglob("*.tsv") for row in csv.DictReader(tsv.open(), delimiter="\t")]
    peak = max(jobs, key=lambda row: float(row["max_rss"]))
    report = (f"smoke {profile}: {wall:.0f} s wall, {len(jobs)} jobs, peak job RSS {float(peak['max_rss']):.0f} MB, "
              f"CPU {sum(float(row['cpu_time']) for row in jobs):.0f} s")
    print(report)
    if os.environ.get("SMOKE_REPORT"):
        with open(os.environ["SMOKE_REPORT"], "a") as fh:
            fh.write(report + "\n")
    return results, raw


def reference_class_ids(dataset: str) -> list[int]:
    """The subset's ImageNet class ids from the shared reference (independent of the package's copy)."""
    if dataset == "imagenet_1k":
        return list(range(1000))
    return yaml.safe_load(REFERENCE_SUBSETS.read_text())[dataset]["indices"]


def check_results(results: Path, raw: dict) -> None:
    methods = list(raw["methods"])
    tables = results / "tables"
    image_size = raw.get("data", {}).get("imagenet_image_size", 256)
    if raw.get("evaluation", {}).get("enabled", True):
        rows = list(csv.DictReader((tables / "accuracy.csv").open()))
        assert {row["method"] for row in rows} == set(methods)
        assert all(row["datasets" if "datasets" in row else "dataset"] in raw["datasets"] for row in rows)
    if raw.get("metrics", {}).get("enabled", True):
        rows = list(csv.DictReader((tables / "generation.csv").open()))
        assert {row["method"] for row in rows} == set(methods)
    costs = list(csv.DictReader((tables / "costs.csv").open()))
    assert {row["method"] for row in costs} >= {m for m in methods if raw["methods"][m]["method"] != "external"}
    figures = results / "figures"
    assert any((figures / "samples").rglob("*.png")) and (figures / "index.md").is_file()
    if raw.get("metrics", {}).get("enabled", True):
        assert any((figures / "tsne").glob("*.png"))
    for dataset in raw["datasets"]:
        info = dataset_info(dataset)
        for method in methods:
            synset = results / "synsets" / dataset / method / "ipc1" / f"seed{raw.get('seeds', [0])[0]}"
            rows = list(csv.DictReader((synset / "labels.csv").open()))
            assert [int(row["label"]) for row in rows] == list(range(info.num_classes))  # one per class, in order
            assert [row["class_name"] for row in rows] == list(info.class_names)
            with Image.open(synset / rows[0]["path"]) as image:
                assert image.size == (image_size, image_size)
            record = json.loads((synset / "manifest.json").read_text())
            assert record["smoke"] and record["config"]
            if "backbone_class_id" in record["records"]:
                assert record["records"]["backbone_class_id"] == reference_class_ids(dataset)


def smoke(profile: str, kit, weights, tmp_path: Path) -> None:
    results, raw = run_profile(profile, kit, weights, tmp_path)
    check_results(results, raw)


def test_smoke_woof(kit, weights, tmp_path):
    smoke("woof", kit, weights, tmp_path)


def test_smoke_nette(kit, weights, tmp_path):
    smoke("nette", kit, weights, tmp_path)


def test_smoke_idc10(kit, weights, tmp_path):
    smoke("idc10", kit, weights, tmp_path)


def test_smoke_idc100(kit, weights, tmp_path):
    smoke("idc100", kit, weights, tmp_path)


def test_smoke_imagenet_a_e(kit, weights, tmp_path):
    smoke("imagenet_a_e", kit, weights, tmp_path)


def test_smoke_imagenet_1k(kit, weights, tmp_path):
    smoke("imagenet_1k", kit, weights, tmp_path)


def test_smoke_quality(kit, weights, tmp_path):
    smoke("quality", kit, weights, tmp_path)


def test_smoke_ablations(kit, weights, tmp_path):
    smoke("ablations", kit, weights, tmp_path)


def test_smoke_linear_probe(kit, weights, tmp_path):
    smoke("linear_probe", kit, weights, tmp_path)


def test_every_paper_profile_has_its_smoke_test():
    assert {p.stem for p in PAPER.glob("*.yaml")} <= {name.removeprefix("test_smoke_") for name in globals()
                                                      if name.startswith("test_smoke_")}
