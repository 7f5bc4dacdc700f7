"""Tests for the reported-vs-reproduced tables (evaluation.report.reported), the variance split
(evaluation.report.variance) and the cost table (evaluation.report.costs), on result trees built in tmp_path in
the layout the workflow writes."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from evaluation.data.datasets import DATASETS
from evaluation.protocols.networks import list_networks
from evaluation.protocols.protocols import reference_protocols
from evaluation.report.costs import cost_table, load_benchmarks, write_costs
from evaluation.report.quality_tables import METRICS as QUALITY_METRICS
from evaluation.report.quality_tables import load_metrics
from evaluation.report.reported import (
    REFERENCE_FILE,
    choose_reported,
    load_reference,
    load_vocabulary,
    parse_method_map,
    two_sigma,
    variant_methods,
    write_reported_tables,
)
from evaluation.report.tables import METRIC_DESCRIPTIONS, load_runs
from evaluation.report.variance import variance_split, variance_table
from methods.registry import list_methods
from tests.workflow_run import load_script

main = load_script("tables").main

REPO = Path(__file__).resolve().parent.parent
NETWORKS = {
    "convnet-6": {"arch": "convnet", "depth": 6, "width": 128},
    "resnet_ap-10": {"arch": "resnet_ap", "depth": 10},
    "resnet-18": {"arch": "resnet", "depth": 18},
    "convnet-5": {"arch": "convnet", "depth": 5, "width": 128},
    "vgg-11": {"arch": "vgg", "depth": 11},
    "alexnet": {"arch": "alexnet"},
    "vit": {"arch": "vit"},
}
GLAD_POOL = ("alexnet", "vgg-11", "resnet-18", "vit")
PROTOCOLS = {
    "hard_label": {"base": "hard_label", "optimizer": "sgd", "lr": 0.01, "batch_size": 64, "epochs": "ipc_rule",
                   "epoch_scale": 1.0, "num_evals": 100},
    "hard_label_adamw": {"base": "hard_label", "optimizer": "adamw", "lr": 0.001, "batch_size": 64,
                         "epochs": "ipc_rule", "epoch_scale": 1.0, "num_evals": 100},
    "soft_label": {"base": "soft_label", "optimizer": "adamw", "lr": 0.001, "batch_size": 100, "epochs": 300,
                   "temperature": 20.0, "num_evals": 6, "eval_from": 0.8},
    "glad": {"base": "glad", "optimizer": "sgd", "lr": 0.001, "batch_size": 256, "epochs": 1000,
             "ema_decay": 0.995},
}
VERSION = "0123456789abcdef0123456789abcdef01234567"


def write_run(root: Path, method: str, ipc: int, seed: int, repeat: int, best: float,
              dataset: str = "imagenet_woof", protocol: str = "hard_label", network: str = "resnet_ap-10",
              arch: dict | None = None, version: str = VERSION) -> Path:
    """An eval record with the manifest evaluation.protocols.train writes (config slice and code version)."""
    config = {"dataset": dataset, "method": method, "ipc": ipc, "seed": seed, "repeat": repeat,
              "protocol": protocol, "network_name": network, "network": arch or NETWORKS[network],
              "protocol_params": PROTOCOLS[protocol]}
    record = {"dataset": dataset, "method": method, "ipc": ipc, "seed": seed, "protocol": protocol,
              "network": network, "repeat": repeat, "best_top1": best, "last_top1": best - 1.0,
              "val_selected_top1": best - 0.5, "selection": "best",
              "manifest": {"config": config, "code_version": version}}
    path = root / "eval" / dataset / method / f"ipc{ipc}" / f"seed{seed}" / f"{protocol}-{network}-rep{repeat}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def write_cell(root: Path, method: str, ipc: int, values: list[list[float]], **kwargs) -> list[Path]:
    """One cell: ``values[seed][repeat]``."""
    return [write_run(root, method, ipc, seed, repeat, value, **kwargs)
            for seed, repeats in enumerate(values) for repeat, value in enumerate(repeats)]


def reported_rows(out: Path, family: str) -> pd.DataFrame:
    return pd.read_csv(out / f"reported_{family}.csv")


def one(frame: pd.DataFrame, **keys) -> pd.Series:
    mask = np.ones(len(frame), dtype=bool)
    for key, value in keys.items():
        mask &= frame[key] == value
    [index] = np.flatnonzero(mask)
    return frame.iloc[index]


def markdown_line(markdown: str, start: str) -> list[str]:
    [line] = [line for line in markdown.splitlines() if line.startswith(start)]
    return [entry.strip() for entry in line.strip("|").split("|")]


# ---------------------------------------------------------------- the reference and its vocabulary


def test_reference_loads_with_its_source_column_and_every_source_known():
    raw = pd.read_csv(REFERENCE_FILE, dtype=str, keep_default_na=False)
    assert list(raw.columns) == ["source", "table", "dataset", "method", "ipc", "arch", "protocol", "metric",
                                 "value", "std"]
    reference = load_reference()
    assert len(reference) == len(raw) and (reference["source"] == raw["source"]).all()
    assert set(reference["dataset"]) <= set(DATASETS)
    assert reference.loc[reference["std"] == "<1 (all)", "ref_std"].isna().all()


def test_vocabulary_targets_are_the_suites_names():
    vocabulary = load_vocabulary()
    assert set(vocabulary["methods"].values()) <= set(list_methods())
    ablations = yaml.safe_load((REPO / "config" / "paper" / "ablations.yaml").read_text())["methods"]
    for table in vocabulary["ablations"].values():
        for target in table["rows"].values():
            assert target in list_methods() or target in ablations, target
    for networks in vocabulary["archs"].values():
        assert all(net["arch"] in list_networks() for net in networks)
    assert set(vocabulary["protocols"].values()) <= set(reference_protocols())
    assert set(vocabulary["metrics"].values()) <= set(METRIC_DESCRIPTIONS) | set(QUALITY_METRICS)
    for family in vocabulary["families"].values():
        assert set(family["datasets"]) <= set(DATASETS)
        assert set(family.get("groups", [])) <= set(vocabulary["ablations"])


def test_variant_reference_methods_and_method_map():
    keys = variant_methods(["dmgd", "random-first-k", "t8-cfg-7", "mine"], parse_method_map(["mine=dmgd"]))
    assert keys == {"dmgd": ("dmgd", "name"), "random-first-k": (None, "none"), "t8-cfg-7": ("t8-cfg-7", "name"),
                    "mine": ("dmgd", "--method-map")}
    assert parse_method_map(["a=random,b=dit", "c=dmgd"]) == {"a": "random", "b": "dit", "c": "dmgd"}
    with pytest.raises(ValueError, match="'a' is not VARIANT=METHOD"):
        parse_method_map(["a"])
    with pytest.raises(ValueError, match="unknown reference method 'DMGD'"):
        variant_methods(["a"], {"a": "DMGD"})


# ---------------------------------------------------------------- the join


def test_absent_method_ipc_network_or_protocol_shows_an_empty_reported_cell(tmp_path):
    paths = (write_cell(tmp_path, "dmgd", 10, [[41.0, 40.0]]) + write_cell(tmp_path, "dmgd", 30, [[50.0, 51.0]])
             + write_cell(tmp_path, "d4m", 10, [[35.0, 36.0]])               # no d4m row on Woof
             + write_cell(tmp_path, "random-first-k", 10, [[30.0, 31.0]])    # not a reference method name
             + write_cell(tmp_path, "dmgd", 10, [[40.0, 41.0]], network="odd",  # named like nothing known
                          arch={"arch": "resnet_ap", "depth": 18})
             + write_cell(tmp_path, "dmgd", 10, [[40.0, 41.0]], protocol="soft_label"))
    out = tmp_path / "tables"
    write_reported_tables(load_runs(paths), out)
    rows = reported_rows(out, "main")
    joined = one(rows, method="dmgd", ipc=10, network="resnet_ap-10", protocol="hard_label")
    assert (joined["reported"], joined["reported_std"], joined["reported_table"]) == (40.8, 1.1, "DMGD T1")
    for keys in ({"method": "dmgd", "ipc": 30}, {"method": "d4m", "ipc": 10}, {"method": "random-first-k", "ipc": 10},
                 {"method": "dmgd", "network": "odd"}, {"method": "dmgd", "protocol": "soft_label"}):
        row = one(rows, **keys) if "network" in keys or "protocol" in keys else one(
            rows, network="resnet_ap-10", protocol="hard_label", **keys)
        assert pd.isna(row["reported"]) and pd.isna(row["difference"]) and pd.isna(row["flag"]), keys
    markdown = (out / "reported_main.md").read_text(encoding="utf-8")
    assert markdown_line(markdown, "| d4m | 10 |") == ["d4m", "10", "", "", "<u>35.5 ± 0.7</u>", "", "", ""]
    assert "No reference method for random-first-k" in markdown
    assert not (out / "reported_idc.md").exists() and not (out / "reported_ablations.md").exists()
    index = (out / "reported.md").read_text(encoding="utf-8")
    assert "| reported_main.md |" in index and "| random-first-k | – | none: not a reference method name |" in index


def test_method_map_compares_a_variant_with_a_registry_method(tmp_path):
    paths = write_cell(tmp_path, "random-first-k", 10, [[30.0, 31.0]])
    out = tmp_path / "tables"
    write_reported_tables(load_runs(paths), out, method_map={"random-first-k": "random"})
    row = one(reported_rows(out, "main"), method="random-first-k")
    assert (row["reference_method"], row["reported"], row["reported_method"]) == ("random", 29.4, "Random")


def test_several_reference_rows_for_one_key_pick_the_documented_one(tmp_path):
    paths = (write_cell(tmp_path, "dmgd", 10, [[41.0, 40.0]]) + write_cell(tmp_path, "mgd3", 50, [[55.0, 56.0]])
             + write_cell(tmp_path, "t5-noise", 10, [[36.0, 37.0]]))
    out = tmp_path / "tables"
    write_reported_tables(load_runs(paths), out)
    main_rows = reported_rows(out, "main")
    dmgd = one(main_rows, method="dmgd", ipc=10)
    # DMGD T1 (= the README, the family's first preference) over the supplementary's ablation tables
    assert (dmgd["reported_table"], dmgd["reported_std"]) == ("DMGD T1", 1.1)
    assert "DMGD S5: 40.8 ± 1.2" in dmgd["also_reported"] and "DMGD S8: 40.8 ± 1.1" in dmgd["also_reported"]
    mgd3 = one(main_rows, method="mgd3", ipc=50)
    assert (mgd3["reported_table"], mgd3["reported_std"]) == ("DMGD T1", 0.8)
    markdown = (out / "reported_main.md").read_text(encoding="utf-8")
    assert ("imagenet_woof · hard_label · resnet_ap-10 · mgd3 · IPC 50: also reported as MGD3 T8: 56.5 ± 1.9 "
            "(compared with DMGD T1).") in markdown
    # within an ablation group, the group's own table is compared
    ablation_rows = reported_rows(out, "ablations")
    group = one(ablation_rows, method="dmgd", group="Supp. Table 5 (dynamic label ablation)")
    assert (group["reported_table"], group["reported_std"], group["reported_method"]) == (
        "DMGD S5", 1.2, "Soft label with Noise + OT")
    noise = one(ablation_rows, method="t5-noise")
    assert (noise["reported"], noise["reported_table"]) == (36.6, "DMGD S5")


def test_choose_reported_order_and_disagreements():
    reference = load_reference()
    key = ((reference["dataset"] == "imagenet_woof") & (reference["ref_method"] == "mgd3") & (reference["ref_ipc"] == 50)
           & (reference["ref_network"] == "resnet_ap-10"))
    chosen = choose_reported(reference[key.fillna(False)], prefer=["MGD3 T8"])
    assert tuple(chosen[["reported_table", "reported_std", "also_reported", "disagreeing"]]) == (
        "MGD3 T8", 1.9, ("DMGD T1: 56.5 ± 0.8",), ("DMGD T1: 56.5 ± 0.8",))
    assert choose_reported(reference.iloc[0:0]) is None


def test_ablation_rows_join_only_their_variants(tmp_path):
    paths = write_cell(tmp_path, "t8-cfg-7", 10, [[38.0, 39.0]]) + write_cell(tmp_path, "dmgd", 10, [[41.0, 40.0]])
    paths += write_cell(tmp_path, "dmgd-cfg-7", 10, [[38.0, 39.0]])  # same setting, a name the reference lacks
    out = tmp_path / "tables"
    write_reported_tables(load_runs(paths), out)
    main_rows, ablation_rows = reported_rows(out, "main"), reported_rows(out, "ablations")
    assert set(main_rows["method"]) == {"dmgd", "dmgd-cfg-7"}       # ablation variants have their own family
    assert one(main_rows, method="dmgd")["reported"] == 40.8 and pd.isna(one(main_rows, method="dmgd-cfg-7")["reported"])
    cfg = one(ablation_rows, method="t8-cfg-7")
    assert (cfg["reported"], cfg["reported_table"], cfg["reported_method"]) == (38.9, "DMGD S8", "1+omega=7")
    assert set(ablation_rows["group"]) == {"Supp. Table 8 (hyperparameters)"}


def test_secondary_rows_are_named_and_without_std_use_the_reproduced_std(tmp_path):
    paths = write_cell(tmp_path, "dmgd", 10, [[45.0, 47.0]], dataset="imagenet_1k", protocol="soft_label",
                       network="resnet-18", arch={"arch": "resnet", "depth": 18, "norm": "batch"})
    out = tmp_path / "tables"
    write_reported_tables(load_runs(paths), out)
    row = one(reported_rows(out, "imagenet_1k"), method="dmgd")
    assert (row["reported"], row["reported_secondary"], row["sigma_basis"]) == (46.3, True, "reproduced only")
    assert row["two_sigma"] == pytest.approx(2 * np.std([45.0, 47.0], ddof=1))
    markdown = (out / "reported_imagenet_1k.md").read_text(encoding="utf-8")
    assert "papernotes (SECONDARY) ImageNet-1K" in markdown and "Source of the rows marked SECONDARY" in markdown
    assert markdown_line(markdown, "| dmgd | 10 |")[6] == "2.8*"


# ---------------------------------------------------------------- the 2σ flag


def test_flag_inside_and_outside_the_combined_two_sigma(tmp_path):
    # reported (DMGD T1): IPC 10 40.8 ± 1.1, IPC 20 46.7 ± 1.4; reproduced std sqrt(2/3) in both cells
    inside = [[40.0, 42.0], [41.0, 41.0]]        # mean 41.0, |Δ| 0.2 < 2·sqrt(1.1² + σ²)
    outside = [[51.0, 53.0], [52.0, 52.0]]       # mean 52.0, |Δ| 5.3 > 2·sqrt(1.4² + σ²)
    paths = write_cell(tmp_path, "dmgd", 10, inside) + write_cell(tmp_path, "dmgd", 20, outside)
    out = tmp_path / "tables"
    write_reported_tables(load_runs(paths), out)
    rows = reported_rows(out, "main")
    std = np.std([40.0, 42.0, 41.0, 41.0], ddof=1)
    first, second = one(rows, ipc=10), one(rows, ipc=20)
    assert first["two_sigma"] == pytest.approx(2 * math.sqrt(1.1 ** 2 + std ** 2)) and not first["flag"]
    assert second["two_sigma"] == pytest.approx(2 * math.sqrt(1.4 ** 2 + std ** 2)) and second["flag"]
    assert second["difference"] == pytest.approx(52.0 - 46.7)
    markdown = (out / "reported_main.md").read_text(encoding="utf-8")
    assert markdown_line(markdown, "| dmgd | 10 |")[-3:] == ["+0.2", "2.7", ""]
    assert markdown_line(markdown, "| dmgd | 20 |")[-3:] == ["+5.3", "3.2", "✗"]


def test_two_sigma_bases():
    assert two_sigma(1.5, 2.0, 4) == (pytest.approx(5.0), "both")
    assert two_sigma(math.nan, 2.0, 4) == (pytest.approx(4.0), "reproduced only")
    assert two_sigma(1.5, 0.0, 1) == (pytest.approx(3.0), "reported only")
    threshold, basis = two_sigma(math.nan, 0.0, 1)
    assert math.isnan(threshold) and basis == "none"


# ---------------------------------------------------------------- marks on the reproduced numbers


def test_bold_and_underline_rank_the_rows_shown(tmp_path):
    paths = (write_cell(tmp_path, "dmgd", 10, [[45.0]]) + write_cell(tmp_path, "mgd3", 10, [[44.0]])
             + write_cell(tmp_path, "dit", 10, [[30.0]]) + write_cell(tmp_path, "t5-noise", 10, [[99.0]]))
    out = tmp_path / "tables"
    write_reported_tables(load_runs(paths), out)
    markdown = (out / "reported_main.md").read_text(encoding="utf-8")
    assert markdown_line(markdown, "| dmgd | 10 |")[4] == "**45.0 ± 0.0**"   # t5-noise is not a row here
    assert markdown_line(markdown, "| mgd3 | 10 |")[4] == "<u>44.0 ± 0.0</u>"
    assert markdown_line(markdown, "| dit | 10 |")[4] == "30.0 ± 0.0"
    assert "| n/a | n/a |" not in markdown  # reported stds exist for all three


def test_mixed_code_versions_are_marked_in_reported_tables(tmp_path):
    paths = write_cell(tmp_path, "dmgd", 10, [[41.0, 40.0]])
    paths += [write_run(tmp_path, "dmgd", 10, 1, 0, 42.0, version=VERSION + "-dirty")]
    out = tmp_path / "tables"
    write_reported_tables(load_runs(paths), out)
    row = one(reported_rows(out, "main"), method="dmgd")
    assert row["mixed_provenance"] == "code version 0123456789ab (2 runs) vs 0123456789ab-dirty (1 run)"
    markdown = (out / "reported_main.md").read_text(encoding="utf-8")
    assert markdown_line(markdown, "| dmgd | 10 |")[4] == "**41.0 ± 1.0**†"
    assert "† imagenet_woof · hard_label · resnet_ap-10 · dmgd · IPC 10 pools runs of different provenance" in markdown


# ---------------------------------------------------------------- composite networks, quality, files


def test_cross_architecture_mean_of_imagenet_a_e(tmp_path):
    rng = np.random.default_rng(1)
    values = {network: rng.normal(60.0, 2.0, size=(2, 3)) for network in GLAD_POOL + ("convnet-5",)}
    paths = [write_run(tmp_path, "mgd3", 10, seed, repeat, float(values[network][seed, repeat]), dataset="imagenet_a",
                       protocol="glad", network=network)
             for network in values for seed in range(2) for repeat in range(3)]
    out = tmp_path / "tables"
    write_reported_tables(load_runs(paths), out)
    row = one(reported_rows(out, "imagenet_a_e"), method="mgd3")
    per_run = np.mean([values[network] for network in GLAD_POOL], axis=0).ravel()  # convnet-5 left out
    assert row["network"] == "mean(alexnet, vgg-11, resnet-18, vit)"
    assert (row["reproduced_mean"], row["reproduced_std"], row["n"]) == (
        pytest.approx(per_run.mean()), pytest.approx(np.std(per_run, ddof=1)), 6)
    assert (row["reported"], row["reported_table"]) == (63.4, "DMGD S3")
    # unequal repeats per seed are fine; a member missing for one (seed, repeat) leaves the cell out
    unequal = [path for path in paths if not path.name.endswith("rep2.json") or "seed1" not in str(path)]
    write_reported_tables(load_runs(unequal), tmp_path / "unequal")
    assert one(reported_rows(tmp_path / "unequal", "imagenet_a_e"), method="mgd3")["n"] == 5
    holed = [path for path in paths if not (path.name == "glad-vit-rep2.json" and "seed1" in str(path))]
    write_reported_tables(load_runs(holed), tmp_path / "holed")
    assert not (tmp_path / "holed" / "reported_imagenet_a_e.md").exists()
    # without ViT there is no mean to compare: no A-E table at all
    partial = [path for path in paths if "-vit-" not in path.name]
    write_reported_tables(load_runs(partial), tmp_path / "partial")
    assert not (tmp_path / "partial" / "reported_imagenet_a_e.md").exists()


def write_metrics_record(root: Path, method: str, seed: int, values: dict[str, float]) -> Path:
    metrics = {name: {"value": values.get(name, 0.5)} for name in QUALITY_METRICS}
    record = {"dataset": "imagenet_woof", "method": method, "ipc": 100, "seed": seed, "reference_split": "train",
              "count": 1000, "reference_count": 12000,
              "extractors": {"fid": {"name": "inception", "resize": "clean-fid"},
                             "features": {"name": "vgg16_fc7", "resize": "bilinear to 224 px"}},
              "metrics": metrics,
              "manifest": {"config": {"dataset": "imagenet_woof", "metrics": {"nearest_k": 5}}, "code_version": "v"}}
    path = root / "metrics" / "imagenet_woof" / method / "ipc100" / f"seed{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def test_generation_quality_against_table_9_in_display_units(tmp_path):
    paths = [write_metrics_record(tmp_path, "dmgd", seed, {"fid": 48.0 + seed, "precision": 0.92 + seed / 100})
             for seed in range(2)]
    out = tmp_path / "tables"
    write_reported_tables(None, out, metrics=load_metrics(paths))
    rows = reported_rows(out, "generation")
    fid, precision = one(rows, metric="fid"), one(rows, metric="precision")
    assert (fid["reported"], fid["reported_table"], fid["difference"]) == (48.8, "DMGD S9", pytest.approx(-0.3))
    assert (precision["reported"], precision["reproduced_mean"]) == (92.4, pytest.approx(92.5))
    assert one(rows, metric="coverage")["reported_secondary"]
    assert "kid" not in set(rows["metric"])  # Table 9 reports no KID
    markdown = (out / "reported_generation.md").read_text(encoding="utf-8")
    assert markdown_line(markdown, "| dmgd | FID ↓ |")[2:5] == ["48.8", "DMGD S9", "**48.5 ± 0.7**"]


def test_a_profile_outside_the_papers_writes_only_the_index(tmp_path):
    paths = write_cell(tmp_path, "dmgd", 10, [[60.0, 61.0]], dataset="digits", network="convnet-6")
    out = tmp_path / "tables"
    write_reported_tables(load_runs(paths), out)
    assert sorted(p.name for p in out.iterdir()) == ["reported.md"]
    assert "No family of the reference has results in this profile" in (out / "reported.md").read_text()


# ---------------------------------------------------------------- variance split


def test_variance_split_of_a_balanced_design_matches_numpy():
    rng = np.random.default_rng(0)
    seed_effects = np.array([-2.0, 0.5, 3.0])
    values = 50.0 + seed_effects[:, None] + rng.normal(0.0, 1.0, size=(3, 4))  # 3 seeds x 4 repeats
    seeds = np.repeat(np.arange(3), 4)
    split = variance_split(values.ravel(), seeds)
    grand, means = values.mean(), values.mean(axis=1)
    n_total = values.size
    between = 4 * np.sum((means - grand) ** 2) / (n_total - 1)
    within = np.sum((values - means[:, None]) ** 2) / (n_total - 1)
    assert split["total_var"] == pytest.approx(np.var(values, ddof=1))
    assert split["between_seed_var"] == pytest.approx(between)
    assert split["within_seed_var"] == pytest.approx(within)
    assert split["between_seed_var"] + split["within_seed_var"] == pytest.approx(split["total_var"])
    ms_within = np.sum((values - means[:, None]) ** 2) / (n_total - 3)
    ms_between = 4 * np.sum((means - grand) ** 2) / 2
    assert split["anova_repeat_var"] == pytest.approx(ms_within)
    assert split["anova_seed_var"] == pytest.approx((ms_between - ms_within) / 4)
    assert split["seed_share"] == pytest.approx(between / np.var(values, ddof=1))


def test_variance_split_unbalanced_and_one_seed():
    values, seeds = np.array([1.0, 2.0, 3.0, 7.0, 9.0]), np.array([0, 0, 0, 1, 1])
    split = variance_split(values, seeds)
    n0 = (5 - (9 + 4) / 5) / 1
    ms_within = (2.0 + 2.0) / 3
    ms_between = 3 * (2.0 - 4.4) ** 2 + 2 * (8.0 - 4.4) ** 2
    assert split["anova_seed_var"] == pytest.approx((ms_between - ms_within) / n0)
    assert split["between_seed_var"] + split["within_seed_var"] == pytest.approx(np.var(values, ddof=1))
    single = variance_split(np.array([1.0, 2.0, 4.0]), np.zeros(3))
    assert single["between_seed_var"] == 0.0 and math.isnan(single["anova_seed_var"])
    assert single["within_seed_var"] == pytest.approx(np.var([1.0, 2.0, 4.0], ddof=1))


def test_variance_table_from_runs(tmp_path):
    paths = write_cell(tmp_path, "dmgd", 10, [[40.0, 41.0, 42.0], [44.0, 45.0, 46.0]])
    paths += write_cell(tmp_path, "dit", 10, [[30.0, 31.0]])
    table = variance_table(load_runs(paths))
    row = one(table[table["metric"] == "best_top1"], method="dmgd")
    assert (row["seeds"], row["runs"], row["repeats_per_seed"]) == (2, 6, "3")
    assert row["total_var"] == pytest.approx(np.var([40, 41, 42, 44, 45, 46], ddof=1))
    assert row["between_seed_var"] == pytest.approx(6 * 2.0 ** 2 / 5)
    dit = one(table[table["metric"] == "best_top1"], method="dit")
    assert dit["between_seed_var"] == 0.0 and "one generation seed" in dit["note"]


# ---------------------------------------------------------------- costs


HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def write_benchmark(path: Path, *seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "".join(f"{s}\t0:00:01\t1\t1\t1\t1\t0\t0\t1\t1\n" for s in seconds))


def test_cost_table_from_benchmark_files(tmp_path):
    bench = tmp_path / "benchmarks"
    jobs = {("dmgd", 10, 0): 170.0, ("dmgd", 10, 1): 160.0, ("dmgd", 50, 0): 800.0,
            ("minimax", 10, 0): 150.0, ("minimax", 50, 0): 740.0}
    for (method, ipc, seed), seconds in jobs.items():
        write_benchmark(bench / "distill" / "imagenet_woof" / method / f"ipc{ipc}-seed{seed}.tsv", seconds)
    write_benchmark(bench / "distill" / "imagenet_woof" / "dmgd" / "ipc50-seed1.tsv", 790.0, 810.0)  # repeats
    write_benchmark(bench / "finetune_backbone" / "minimax-imagenet_woof.tsv", 2520.0)
    write_benchmark(bench / "encode_latents" / "imagenet_woof.tsv", 300.0)
    frame, finetune, latents = load_benchmarks(bench)
    assert finetune == {("imagenet_woof", "minimax"): 2520.0} and latents == {"imagenet_woof": 300.0}
    table = cost_table(frame, finetune, ["minimax", "dmgd"]).set_index("method")
    dmgd_seconds = np.array([170.0, 160.0, 800.0, 800.0])
    dmgd = table.loc["dmgd"]
    assert (dmgd["sets"], dmgd["ipcs"]) == (4, "10, 50")
    assert dmgd["distill_s_per_set"] == pytest.approx(dmgd_seconds.mean())
    assert dmgd["distill_s_per_set_std"] == pytest.approx(np.std(dmgd_seconds, ddof=1))
    assert dmgd["distill_s_per_image"] == pytest.approx(np.mean(dmgd_seconds / (np.array([10, 10, 50, 50]) * 10)))
    assert math.isnan(dmgd["finetune_s"]) and dmgd["total_s"] == pytest.approx(dmgd_seconds.sum())
    assert table.loc["minimax", "total_s"] == pytest.approx(2520.0 + 150.0 + 740.0)
    assert list(table.index) == ["minimax", "dmgd"]
    paths = write_costs(bench, tmp_path / "tables", ["minimax", "dmgd"], load_reference())
    markdown = paths[0].read_text(encoding="utf-8")
    assert "| minimax | 2 | 10, 50 | 445.0 ± 417.2 | 1.490 | 2520.0 | 3410.0 |" in markdown
    assert "| dmgd | 4 | 10, 50 | 482.5 ± 366.6 | 1.625 | – | 1930.0 |" in markdown
    assert "encode_latents on imagenet_woof: 300.0 s" in markdown and "sec_per_image = 1.65" in markdown


def test_class_chunked_sets_sum_their_chunks_and_incomplete_ones_are_left_out(tmp_path):
    folder = tmp_path / "benchmarks" / "distill" / "imagenet_1k" / "dmgd"
    for start, seconds in ((0, 100.0), (250, 110.0), (500, 120.0), (750, 130.0)):
        write_benchmark(folder / f"ipc10-seed0-{start}-{start + 250}.tsv", seconds)
    write_benchmark(folder / "ipc10-seed1-0-250.tsv", 100.0)  # three chunks missing
    write_benchmark(tmp_path / "benchmarks" / "merge_chunks" / "imagenet_1k" / "dmgd" / "ipc10-seed0.tsv", 40.0)
    jobs, _, _ = load_benchmarks(tmp_path / "benchmarks")
    complete, partial = one(jobs, seed=0), one(jobs, seed=1)
    assert (complete["seconds"], complete["chunks"]) == (500.0, 4)   # the chunks and their merge
    assert math.isnan(partial["seconds"]) and "do not cover its classes" in partial["note"]
    row = cost_table(jobs, {}).iloc[0]
    assert (row["sets"], row["distill_s_per_set"], row["distill_s_per_image"]) == (1, 500.0, 500.0 / 10000)
    markdown = write_costs(tmp_path / "benchmarks", tmp_path / "tables")[0].read_text(encoding="utf-8")
    assert "imagenet_1k/dmgd/ipc10-seed1: chunks 0-250 do not cover its classes; left out" in markdown


def test_finetune_benchmarks_in_a_folder_per_method_and_an_empty_folder(tmp_path):
    write_benchmark(tmp_path / "b" / "finetune_backbone" / "minimax" / "imagenet_nette.tsv", 100.0)
    assert load_benchmarks(tmp_path / "b")[1] == {("imagenet_nette", "minimax"): 100.0}
    with pytest.raises(ValueError, match="--benchmarks .*empty: no such folder"):
        write_costs(tmp_path / "empty", tmp_path / "tables")
    (tmp_path / "empty").mkdir()
    markdown, csv = write_costs(tmp_path / "empty", tmp_path / "tables")
    assert "No distill/<dataset>/<method>/ipc<k>-seed<s>.tsv or finetune_backbone benchmark" in markdown.read_text()
    assert pd.read_csv(csv).empty


# ---------------------------------------------------------------- command line


def test_report_cli_with_the_new_options(tmp_path):
    runs = (write_cell(tmp_path, "random-first-k", 10, [[30.0, 31.0]]) + write_cell(tmp_path, "dmgd", 10, [[41.0, 40.0]])
            + write_cell(tmp_path, "dmgd", 10, [[41.0, 40.0]], protocol="hard_label_adamw"))
    write_benchmark(tmp_path / "benchmarks" / "distill" / "imagenet_woof" / "dmgd" / "ipc10-seed0.tsv", 170.0)
    out = tmp_path / "tables"
    main(["--runs", *map(str, runs), "--out", str(out), "--method-order", "random-first-k,dmgd",
          "--benchmarks", str(tmp_path / "benchmarks"), "--method-map", "random-first-k=random"])
    written = {p.name for p in out.iterdir()}
    assert {"reported.md", "reported_main.md", "reported_main.csv", "variance.csv", "costs.md", "costs.csv",
            "accuracy.md", "runs.csv"} <= written
    rows = reported_rows(out, "main")
    assert set(rows["protocol"]) == {"hard_label", "hard_label_adamw"}
    assert set(rows["protocol_base"]) == {"hard_label"} and (rows["reported"].notna()).all()
    markdown = (out / "reported_main.md").read_text(encoding="utf-8")
    assert "### imagenet_woof · hard_label_adamw (base hard_label) · resnet_ap-10" in markdown
    assert "hard_label_adamw: variant of hard_label, adamw lr 0.001" in markdown
    assert "manifest_code_version" in pd.read_csv(out / "runs.csv").columns
