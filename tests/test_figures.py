"""Tests for evaluation.report.figures on a tiny result tree built in tmp_path in the workflow's layout:
digits synthetic sets of 16 px images, an untrained teacher, its real features and a runs.csv."""
from __future__ import annotations

import io
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from evaluation.data.synsets import read_synset, write_synset
from evaluation.metrics.extractors import create_extractor
from evaluation.protocols.networks import create_network
from evaluation.report.figures import build
from evaluation.report.figures.build import FigureSpec, read_samples, real_sample
from evaluation.report.figures.samples import draw_sample_grid, grid_layout
from tests.fake_imagenet import make_fake_imagenet_1k
from tests.test_workflow import job_stats
from tests.workflow_run import ROOT, TEST_PROFILE, load_script, script_command, snakemake

main = load_script("figures").main

CLASSES = tuple(str(d) for d in range(10))   # digits
IPCS, SIDE = (2, 3), 16
METHODS = ("dit", "dmgd", "dmgd-nosem")   # dit has no records; both dmgd variants record final_ot_loss


def write_tree(root: Path) -> Path:
    """results/<profile> with sets of ``METHODS`` at IPC 2 and 3, seed 0."""
    gen = torch.Generator().manual_seed(0)
    for method in METHODS:
        for ipc in IPCS:
            images = torch.randint(0, 256, (10 * ipc, 3, SIDE, SIDE), dtype=torch.uint8, generator=gen)
            labels = torch.arange(10).repeat_interleave(ipc)
            records = ({"final_ot_loss": (1 + torch.rand(10, ipc, generator=gen)).tolist()}
                       if method.startswith("dmgd") else {})
            write_synset(root / "synsets" / "digits" / method / f"ipc{ipc}" / "seed0", images, labels, CLASSES,
                         {"seed": 0, "records": records})
    teacher = root / "teachers" / "digits"
    teacher.mkdir(parents=True)
    torch.manual_seed(0)
    network = {"arch": "convnet", "depth": 2, "width": 8}
    model = create_network("convnet", 10, SIDE, depth=2, width=8)
    torch.save({"state_dict": model.state_dict(), "network": network, "num_classes": 10, "image_size": SIDE,
                "mean": [0.5] * 3, "std": [0.5] * 3}, teacher / "model.pt")
    real = torch.randint(0, 256, (80, 3, SIDE, SIDE), dtype=torch.uint8, generator=gen)
    features = create_extractor("teacher", "cpu", teacher).features(real)
    (root / "features" / "digits").mkdir(parents=True)
    torch.save({"features": torch.from_numpy(features), "labels": torch.arange(80) % 10, "extractor": "teacher",
                "resize": "none", "split": "train", "manifest": {}}, root / "features" / "digits" / "teacher-train.pt")
    rows = [{"dataset": "digits", "method": method, "ipc": ipc, "seed": 0, "protocol": protocol,
             "network": "convnet-2", "repeat": repeat, "best_top1": 50 + 10 * k + ipc + repeat,
             "last_top1": 40.0, "val_selected_top1": None if protocol == "soft_label" else 45 + ipc + repeat}
            for k, method in enumerate(METHODS) for ipc in IPCS for repeat in (0, 1)
            for protocol in ("hard_label", "soft_label")]
    (root / "tables").mkdir()
    pd.DataFrame(rows).to_csv(root / "tables" / "runs.csv", index=False)
    return root


def run(results: Path, out: Path, *extra: str, methods: str = "dit,dmgd", seed: int = 0) -> Path:
    main(["--results", str(results), "--methods", methods, "--datasets", "digits", "--ipcs", "2,3",
          "--seeds", "0", "--extractor", "teacher", "--max-real", "40", "--perplexity", "10",
          "--seed", str(seed), "--out", str(out), *extra])
    return out


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return write_tree(tmp_path_factory.mktemp("results") / "test")


@pytest.fixture(scope="module")
def figures(tree, tmp_path_factory) -> Path:
    return run(tree, tmp_path_factory.mktemp("figures"), "--max-classes", "4", "--tile", "64")


def png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


EXPECTED = ([f"samples/digits/{m}-ipc{k}-seed0.png" for m in ("dit", "dmgd") for k in IPCS]
            + [f"tsne/digits-ipc{k}.png" for k in IPCS] + [f"ot_loss/digits-ipc{k}.png" for k in IPCS]
            + [f"accuracy/digits-{p}-convnet-2.png" for p in ("hard_label", "soft_label")])


def test_every_figure_is_written_and_indexed(figures):
    written = sorted(str(p.relative_to(figures)) for p in figures.rglob("*.png"))
    assert written == sorted(EXPECTED)
    index = (figures / "index.md").read_text()
    for rel in EXPECTED:
        assert png(figures / rel).size > 0
        assert f"[{rel}]({rel})" in index
    assert "extractor teacher" in index and "40 real train features" in index


@pytest.mark.parametrize("ipc", IPCS)
def test_sample_grid_has_a_row_per_class_shown_and_a_column_per_sample(figures, ipc):
    layout = grid_layout(4, ipc, SIDE, 64, list(CLASSES[:4]), f"digits · dit · IPC {ipc} · seed 0")
    assert png(figures / f"samples/digits/dit-ipc{ipc}-seed0.png").shape == (layout.height, layout.width, 3)
    assert layout.height == grid_layout(4, 2, SIDE, 64, ["0"], "t").height   # rows set the height
    assert grid_layout(5, ipc, SIDE, 64, ["0"], "t").height == layout.height + layout.tile + 2


def test_sample_grid_tiles_are_the_images_in_generation_order(tree, figures):
    images, labels = read_synset(tree / "synsets/digits/dmgd/ipc3/seed0", 10)
    pixels = png(figures / "samples/digits/dmgd-ipc3-seed0.png")
    layout = grid_layout(4, 3, SIDE, 64, list(CLASSES[:4]), "digits · dmgd · IPC 3 · seed 0")
    for row, column in ((2, 1), (0, 0), (3, 2)):
        top, left = layout.tile_origin(row, column)
        image = images[labels == row][column]
        expected = image.repeat_interleave(4, 1).repeat_interleave(4, 2).permute(1, 2, 0).numpy()
        np.testing.assert_array_equal(pixels[top:top + 64, left:left + 64], expected)


def test_ot_loss_is_skipped_and_said_so_without_records(tree, tmp_path):
    out = run(tree, tmp_path / "fig", methods="dit")
    assert not (out / "ot_loss").exists()
    index = (out / "index.md").read_text()
    assert "digits · IPC 2: not drawn: no variant among dit records final_ot_loss" in index
    assert (out / "tsne/digits-ipc3.png").is_file() and (out / "samples/digits/dit-ipc2-seed0.png").is_file()


def test_ot_loss_overlays_the_variants_with_records(tree, tmp_path):
    out = run(tree, tmp_path / "fig", methods="dmgd,dit,dmgd-nosem")
    assert sorted(p.name for p in (out / "ot_loss").iterdir()) == ["digits-ipc2.png", "digits-ipc3.png"]
    caption = next(line for line in (out / "index.md").read_text().splitlines() if "ot_loss/digits-ipc3" in line)
    assert "dmgd n=10, dmgd-nosem n=10" in caption and "variants without the records: dit" in caption


def test_large_images_are_reduced_to_the_tile(tmp_path):
    images = torch.randint(0, 256, (6, 3, SIDE, SIDE), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    layout = draw_sample_grid(images, torch.arange(3).repeat_interleave(2), CLASSES[:3], "t", tmp_path / "g.png",
                              max_classes=10, max_samples=10, tile=8)
    assert (layout.rows, layout.columns, layout.tile, layout.scale) == (3, 2, 8, 0)
    assert png(tmp_path / "g.png").shape == (layout.height, layout.width, 3)


def test_figures_are_deterministic_under_the_seed(tree, figures, tmp_path):
    again = run(tree, tmp_path / "again", "--max-classes", "4", "--tile", "64")
    for rel in EXPECTED:
        assert (again / rel).read_bytes() == (figures / rel).read_bytes(), rel
    assert (again / "index.md").read_text() == (figures / "index.md").read_text()
    other = run(tree, tmp_path / "other", "--max-classes", "4", "--tile", "64", seed=1)
    assert (other / "tsne/digits-ipc2.png").read_bytes() != (figures / "tsne/digits-ipc2.png").read_bytes()
    assert (other / "accuracy/digits-hard_label-convnet-2.png").read_bytes() == \
        (figures / "accuracy/digits-hard_label-convnet-2.png").read_bytes()


def test_accuracy_without_validation_readings_says_so(figures):
    index = (figures / "index.md").read_text()
    soft = next(line for line in index.splitlines() if "soft_label-convnet-2.png" in line)
    assert "val-selected: none recorded" in soft and "best (solid) n = 2" in soft


def one_line_error(tree: Path, tmp_path: Path, capsys, **kwargs) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run(tree, tmp_path / "fig", **kwargs)
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert message.startswith("figures.py: error: ") and message.count("\n") == 1
    assert not (tmp_path / "fig" / "index.md").exists()
    return message


def test_missing_runs_csv_is_one_line_error(tree, tmp_path, capsys):
    bare = tmp_path / "bare"
    bare.mkdir()
    for part in ("synsets", "features", "teachers"):   # everything but tables/
        (bare / part).symlink_to(tree / part)
    assert "runs.csv; build the tables first" in one_line_error(bare, tmp_path, capsys)


def test_unknown_method_is_one_line_error(tree, tmp_path, capsys):
    message = one_line_error(tree, tmp_path, capsys, methods="dit,nosuch")
    assert "unknown method 'nosuch'" in message and "methods there: dit, dmgd, dmgd-nosem" in message


def test_cli_reports_bad_input_on_one_stderr_line(tree, tmp_path):
    result = subprocess.run(script_command("figures", "--results", str(tree), "--methods", "dit", "--datasets",
                                           "digits", "--ipcs", "7", "--seeds", "0", "--extractor", "teacher"),
                            check=False, capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.startswith("figures.py: error: ")
    assert io.StringIO(result.stderr).read().strip().count("\n") == 0
    assert "missing synthetic set" in result.stderr and "ipc7" in result.stderr


# ----------------------------------------------------------------------------- capped, seeded samples

@pytest.fixture
def opened(monkeypatch) -> list[str]:
    """Every image file PIL opens while the test runs (the figures decode pixels only through it)."""
    paths, real_open = [], Image.open

    def counting_open(fp, *args, **kwargs):
        paths.append(str(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", counting_open)
    return paths


def spec_of(tree: Path, tmp_path: Path, **kwargs) -> FigureSpec:
    return FigureSpec(**{"results": tree, "out": tmp_path / "fig", "methods": ["dmgd"], "datasets": ["digits"],
                         "ipcs": [3], "seeds": [0], "extractor": "teacher", **kwargs})


def test_synthetic_sample_reads_only_the_capped_images_seeded(tree, tmp_path, opened):
    directory = tree / "synsets/digits/dmgd/ipc3/seed0"   # 30 images, 3 per class
    all_images, all_labels = read_synset(directory, 10)
    opened.clear()
    spec = spec_of(tree, tmp_path, max_synthetic=7, max_classes=1, max_samples=1)
    grids, (images, labels) = read_samples(spec, [directory], 10, seed=5)
    first = list(opened)
    # 7 sampled images and the grid's one (class 0, first), each decoded once; the other 22+ never
    assert len(first) == len(set(first)) <= 8 and len(images) == 7
    assert len(set(labels.tolist())) == 7   # class-stratified: 7 of 10 classes, one each
    for image, label in zip(images, labels):   # the sample is stored images with their own labels
        assert any(torch.equal(image, other) for other in all_images[all_labels == int(label)])
    (grid_images, grid_labels), = grids
    assert torch.equal(grid_images, all_images[:1]) and grid_labels.tolist() == [0]
    opened.clear()
    again = read_samples(spec, [directory], 10, seed=5)[1]
    assert opened == first and torch.equal(again[0], images)   # same seed, same images
    opened.clear()
    other = read_samples(spec, [directory], 10, seed=6)[1]
    assert sorted(opened) != sorted(first) and not torch.equal(other[0], images)


def test_figures_step_decodes_at_most_the_cap_and_the_grid_per_set(tree, tmp_path, opened):
    out = run(tree, tmp_path / "fig", "--max-synthetic", "4", "--max-classes", "2", "--max-samples", "1")
    by_set = {}
    for path in opened:
        if "/synsets/" in path:
            by_set.setdefault(str(Path(path).parents[1]), []).append(path)
    assert len(by_set) == 4   # dit and dmgd at IPC 2 and 3, seed 0
    for paths in by_set.values():
        assert len(paths) == len(set(paths)) <= 4 + 2   # t-SNE sample + grid (2 classes x 1), once each
    index = (out / "index.md").read_text()
    assert "and 4 synthetic per method (seeded class-stratified subset of at most 4" in index
    assert png(out / "samples/digits/dit-ipc3-seed0.png").shape[0] == \
        grid_layout(2, 1, SIDE, 128, list(CLASSES[:2]), "digits · dit · IPC 3 · seed 0").height


def test_real_subset_is_capped_and_seeded(tree, tmp_path):
    stored = torch.load(tree / "features/digits/teacher-train.pt")["features"].numpy()   # 80 rows
    real, total = real_sample(spec_of(tree, tmp_path, max_real=25), "digits")
    assert total == 80 and real.shape == (25, stored.shape[1])
    rows = [int(np.flatnonzero((stored == row).all(axis=1))[0]) for row in real]
    assert len(set(rows)) == 25 and rows == sorted(rows)   # distinct stored rows, in stored order
    np.testing.assert_array_equal(real_sample(spec_of(tree, tmp_path, max_real=25), "digits")[0], real)
    assert not np.array_equal(real_sample(spec_of(tree, tmp_path, max_real=25, seed=1), "digits")[0], real)
    assert len(real_sample(spec_of(tree, tmp_path, max_real=500), "digits")[0]) == 80   # fewer than the cap: all


def test_no_features_needs_no_real_features_and_draws_the_other_figures(tree, tmp_path, monkeypatch):
    bare = tmp_path / "bare"
    bare.mkdir()
    for part in ("synsets", "tables"):   # no features/, no teachers/ (metrics.enabled false)
        (bare / part).symlink_to(tree / part)

    def no_extractor(*args, **kwargs):
        raise AssertionError("--no-features built a feature extractor")

    monkeypatch.setattr(build, "create_extractor", no_extractor)
    out = run(bare, tmp_path / "fig", "--no-features")
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    assert written == sorted(rel for rel in EXPECTED if not rel.startswith("tsne/"))
    assert "digits: not drawn: feature figures are off (--no-features" in (out / "index.md").read_text()


def test_without_no_features_missing_real_features_name_the_flag(tree, tmp_path, capsys):
    bare = tmp_path / "bare"
    bare.mkdir()
    for part in ("synsets", "tables", "teachers"):
        (bare / part).symlink_to(tree / part)
    message = one_line_error(bare, tmp_path, capsys)
    assert "missing real features" in message and "--no-features" in message


@pytest.mark.parametrize("enabled", [True, False])
def test_dag_computes_real_features_for_figures_only_with_metrics(tmp_path, enabled):
    overlay = tmp_path / "metrics.yaml"
    overlay.write_text(f"metrics: {{enabled: {str(enabled).lower()}}}\n")
    proc = snakemake(tmp_path / "work", "-n", "-p", "--configfile", str(TEST_PROFILE), str(overlay))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-2000:]
    jobs = job_stats(out)
    assert jobs["tables"] == 1 and jobs.get("real_features", 0) == (1 if enabled else 0)
    assert ("--no-features" in out) != enabled and "--max-real 1000 --max-synthetic 200" in out


def test_imagenet_1k_profile_schedules_no_real_features(tmp_path):
    root = make_fake_imagenet_1k(tmp_path / "imagenet")
    proc = snakemake(tmp_path / "work", "-n", "-p", "--cores", "1", "--configfile",
                     str(ROOT / "config" / "paper" / "imagenet_1k.yaml"), "--config", f"imagenet_root={root}")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-2000:]
    jobs = job_stats(out)   # metrics.enabled false: neither the metrics nor the figures need real features
    assert jobs["tables"] == 1 and "real_features" not in jobs and "measure" not in jobs
    assert "--no-features" in out
