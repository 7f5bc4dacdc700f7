"""Tests for evaluation.report and the metric tables of evaluation.report.quality_tables, on record trees
built in tmp_path in the layout the workflow writes."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evaluation.report.quality_tables import (
    DISTRIBUTION_METRICS,
    GENERATION_METRICS,
    distribution_markdown,
    generation_markdown,
    load_metrics,
    metric_footnotes,
    quality_csv,
    quality_table,
)
from evaluation.report.build import protocol_footnotes
from tests.workflow_run import load_script

main = load_script("tables").main

FID_RESIZE = "clean-fid: bicubic to 299 px"
FEATURES_RESIZE = "bilinear to 224 px"
PROTOCOL_PARAMS = {
    "hard_label": {"optimizer": "sgd", "lr": 0.01, "batch_size": 64, "epochs": "ipc_rule",
                   "epoch_scale": 0.05, "cutmix_prob": 1.0, "num_evals": 100, "eval_from": 0.0,
                   "ema_decay": None, "temperature": None},
    "soft_label": {"optimizer": "adamw", "lr": 0.001, "batch_size": 100, "epochs": 300,
                   "temperature": 20.0, "num_evals": 6, "eval_from": 0.8},
    "glad": {"optimizer": "sgd", "lr": 0.001, "batch_size": 256, "epochs": 1000, "ema_decay": 0.995,
             "num_evals": 1, "lr_by_arch": {"vgg": 0.0001}},
}
SELECTIONS = {"hard_label": "best", "soft_label": "best", "glad": "final_ema"}


def write_eval(root: Path, method: str, ipc: int, seed: int, protocol: str = "hard_label",
               best: float = 50.0, last: float = 49.0, val: float | None = 48.0, repeat: int = 0,
               dataset: str = "CIFAR10", network: str = "ConvNet", params: dict | None = None) -> Path:
    """An evaluation run record at eval/<dataset>/<method>/ipc<k>/seed<s>/<protocol>-<network>-rep<r>.json."""
    record = {"dataset": dataset, "method": method, "ipc": ipc, "seed": seed, "protocol": protocol,
              "repeat": repeat, "network": network, "best_top1": best, "best_epoch": 7,
              "last_top1": last, "val_selected_top1": val, "val_selected_epoch": None if val is None else 5,
              "selection": SELECTIONS[protocol], "epochs": 10,
              "curve": [{"epoch": 10, "top1": last, "val_top1": val}],
              "manifest": {"config": {"protocol_params": params or PROTOCOL_PARAMS[protocol]}}}
    path = root / "eval" / dataset / method / f"ipc{ipc}" / f"seed{seed}" / f"{protocol}-{network}-rep{repeat}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def write_metrics(root: Path, method: str, ipc: int, seed: int, values: dict, dataset: str = "CIFAR10",
                  fid_name: str = "inception", features_name: str = "vgg16_fc7", split: str = "train",
                  nearest_k: int | None = 5, code_version: str | None = None) -> Path:
    """A metrics record at metrics/<dataset>/<method>/ipc<k>/seed<s>.json; ``values`` maps a metric
    to its value or (value, ci_low, ci_high); unnamed metrics get a neutral value."""
    metrics = {}
    for name in GENERATION_METRICS + DISTRIBUTION_METRICS:
        value = values.get(name, 0.5)
        low, high = (value[1], value[2]) if isinstance(value, tuple) else (None, None)
        entry = {"value": value[0] if isinstance(value, tuple) else value}
        if name in ("fid", "precision", "recall", "density", "coverage"):
            entry.update(ci_low=low, ci_high=high)
        if name == "kid":
            entry["subset_size"] = min(1000, ipc * 10)
        metrics[name] = entry
    settings = {"bootstrap": 200, "ci": 0.95, "ot_max_real": 500, "tsne_perplexity": 30.0}
    if nearest_k is not None:
        settings["nearest_k"] = nearest_k
    record = {"dataset": dataset, "method": method, "ipc": ipc, "seed": seed, "reference_split": split,
              "count": ipc * 10, "reference_count": 50000,
              "extractors": {"fid": {"name": fid_name, "resize": FID_RESIZE},
                             "features": {"name": features_name, "resize": FEATURES_RESIZE}},
              "metrics": metrics,
              "manifest": {"config": {"dataset": dataset, "metrics": settings}}}
    if code_version is not None:
        record["manifest"]["code_version"] = code_version
    path = root / "metrics" / dataset / method / f"ipc{ipc}" / f"seed{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def row(markdown: str, first: str, block: str | None = None) -> list[str]:
    """Entries after the first column of the row starting with ``first`` (within ``block``)."""
    if block is not None:
        markdown = markdown.split(f"### {block}\n", 1)[1].split("###", 1)[0]
    [line] = [line for line in markdown.splitlines() if line.startswith(f"| {first} |")]
    return [entry.strip() for entry in line.strip("|").split("|")][1:]


# ---------------------------------------------------------------- generation table


def test_generation_bold_follows_each_metrics_direction(tmp_path):
    paths = [write_metrics(tmp_path, "a", 10, 0, {"fid": (40.0, 38.0, 42.0), "recall": 0.50}),
             write_metrics(tmp_path, "b", 10, 0, {"fid": (45.0, 43.0, 47.0), "recall": 0.55}),
             write_metrics(tmp_path, "c", 10, 0, {"fid": (50.0, 48.0, 52.0), "recall": 0.60})]
    markdown = generation_markdown(quality_table(load_metrics(paths), GENERATION_METRICS))
    assert "| Metric | a | b | c |" in markdown
    assert row(markdown, "FID ↓") == ["**40.0 [38.0, 42.0]**", "45.0 [43.0, 47.0]", "50.0 [48.0, 52.0]"]
    assert row(markdown, "Recall (%) ↑") == ["50.0", "55.0", "**60.0**"]


def test_generation_interval_formatting_and_seed_envelope(tmp_path):
    paths = [write_metrics(tmp_path, "dmgd", 10, 0, {"fid": (48.0, 46.1, 50.0),
                                                     "precision": (0.924, 0.91, 0.94), "kid": 0.0123}),
             write_metrics(tmp_path, "dmgd", 10, 1, {"fid": (49.6, 47.0, 51.0),
                                                     "precision": (0.930, 0.92, 0.95), "kid": 0.0125}),
             write_metrics(tmp_path, "dit", 10, 0, {"fid": 48.6, "precision": (0.912, 0.90, 0.93)})]
    table = quality_table(load_metrics(paths), GENERATION_METRICS, method_order=["dit", "dmgd"])
    markdown = generation_markdown(table)
    assert "envelope of the seeds' intervals" in markdown.splitlines()[0]
    assert row(markdown, "FID ↓") == ["**48.6**", "48.8 [46.1, 51.0]"]  # no interval recorded: none shown
    assert row(markdown, "Precision (%) ↑") == ["91.2 [90.0, 93.0]", "**92.7 [91.0, 95.0]**"]
    assert row(markdown, "KID ×10³ ↓") == ["500.00", "**12.40**"]
    csv = pd.read_csv(io.StringIO(quality_csv(table)))
    fid = csv[(csv.method == "dmgd") & (csv.metric == "fid")].iloc[0]
    assert (fid["mean"], fid["ci_low"], fid["ci_high"], fid["n"]) == (pytest.approx(48.8), 46.1, 51.0, 2)


def test_generation_bold_ties_at_displayed_precision(tmp_path):
    paths = [write_metrics(tmp_path, "a", 10, 0, {"fid": 40.01}),
             write_metrics(tmp_path, "b", 10, 0, {"fid": 39.99})]
    markdown = generation_markdown(quality_table(load_metrics(paths), GENERATION_METRICS))
    assert row(markdown, "FID ↓") == ["**40.0**", "**40.0**"]


def test_generation_method_absent_for_an_ipc_is_missing(tmp_path):
    paths = [write_metrics(tmp_path, "a", 10, 0, {"fid": 40.0}),
             write_metrics(tmp_path, "b", 10, 0, {"fid": 45.0}),
             write_metrics(tmp_path, "a", 50, 0, {"fid": 30.0})]
    table = quality_table(load_metrics(paths), GENERATION_METRICS)
    markdown = generation_markdown(table)
    assert row(markdown, "FID ↓", "CIFAR10 · IPC 10") == ["**40.0**", "45.0"]
    assert row(markdown, "FID ↓", "CIFAR10 · IPC 50") == ["**30.0**", "–"]
    assert all(entry == "–" for entry in [row(markdown, label, "CIFAR10 · IPC 50")[1]
                                          for label in ("KID ×10³ ↓", "Recall (%) ↑", "Density ↑")])


def test_generation_null_value_is_missing_not_a_partial_mean(tmp_path):
    paths = [write_metrics(tmp_path, "a", 10, 0, {"fid": 40.0}),
             write_metrics(tmp_path, "a", 10, 1, {"fid": None}),
             write_metrics(tmp_path, "b", 10, 0, {"fid": 45.0})]
    markdown = generation_markdown(quality_table(load_metrics(paths), GENERATION_METRICS))
    assert row(markdown, "FID ↓") == ["–", "**45.0**"]


@pytest.mark.parametrize(("changed", "what", "first", "second"), [
    ({"fid_name": "clip"}, "the fid extractor", "'inception'", "'clip'"),
    ({"features_name": "inception"}, "the features extractor", "'vgg16_fc7'", "'inception'"),
    ({"split": "test"}, "the reference split", "'train'", "'test'"),
    ({"nearest_k": 3}, "prdc nearest_k", "5", "3"),
])
def test_mixed_settings_raise_one_line_error_naming_both(tmp_path, changed, what, first, second):
    paths = [write_metrics(tmp_path, "a", 10, 0, {}), write_metrics(tmp_path, "b", 10, 0, {}, **changed)]
    with pytest.raises(ValueError, match="metrics records disagree on") as error:
        quality_table(load_metrics(paths), GENERATION_METRICS)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"metrics records disagree on {what}: {first} ({paths[0]}) vs {second} ({paths[1]});")


def test_distribution_table_ignores_a_differing_fid_extractor(tmp_path):
    paths = [write_metrics(tmp_path, "a", 10, 0, {}), write_metrics(tmp_path, "b", 10, 0, {}, fid_name="clip")]
    table = quality_table(load_metrics(paths), DISTRIBUTION_METRICS)
    assert set(table["dataset"]) == {"CIFAR10"} and tuple(dict.fromkeys(table["method"])) == ("a", "b")


def test_seeds_measured_by_different_code_versions_are_marked(tmp_path):
    paths = [write_metrics(tmp_path, "a", 10, 0, {"fid": 40.0}, code_version="v1"),
             write_metrics(tmp_path, "a", 10, 1, {"fid": 42.0}, code_version="v2"),
             write_metrics(tmp_path, "b", 10, 0, {"fid": 45.0}, code_version="v1")]
    table = quality_table(load_metrics(paths), GENERATION_METRICS)
    markdown = generation_markdown(table)
    assert row(markdown, "FID ↓") == ["**41.0**†", "45.0"]
    csv = pd.read_csv(io.StringIO(quality_csv(table)))
    assert csv.loc[(csv.method == "a") & (csv.metric == "fid"), "mixed_provenance"].item() == \
        "code version v1 (1 record) vs v2 (1 record)"


# ---------------------------------------------------------------- distribution table


def test_distribution_means_and_stds_over_seeds(tmp_path):
    rng = np.random.default_rng(0)
    expected_rows, paths = [], []
    for method in ("dmgd", "minimax"):
        for ipc in (10, 50):
            for seed in range(3):
                values = {"coverage": float(rng.uniform(0.3, 0.9)), "ot_distance": float(rng.uniform(1, 5)),
                          "diversity": float(rng.uniform(10, 30))}
                paths.append(write_metrics(tmp_path, method, ipc, seed, values))
                expected_rows += [(method, ipc, name, value) for name, value in values.items()]
    expected = (pd.DataFrame(expected_rows, columns=["method", "ipc", "metric", "value"])
                .groupby(["method", "ipc", "metric"])["value"].agg(["mean", "std", "count"]))
    table = quality_table(load_metrics(paths), DISTRIBUTION_METRICS)
    csv = pd.read_csv(io.StringIO(quality_csv(table))).set_index(["method", "ipc", "metric"])
    assert len(csv) == len(expected) == 12
    for key, stats in expected.iterrows():
        assert csv.loc[key, "mean"] == pytest.approx(stats["mean"], rel=1e-12)
        assert csv.loc[key, "std"] == pytest.approx(stats["std"], rel=1e-12)
        assert csv.loc[key, "n"] == stats["count"] == 3
    markdown = distribution_markdown(table)
    shown = row(markdown, "dmgd")[0]  # IPC 10 coverage, in %
    mean, std = expected.loc[("dmgd", 10, "coverage"), ["mean", "std"]] * 100
    assert shown.strip("*") == f"{mean:.1f} ± {std:.1f}"


def test_distribution_bold_is_direction_aware(tmp_path):
    paths = [write_metrics(tmp_path, "a", 10, 0, {"coverage": 0.8, "ot_distance": 3.0, "diversity": 12.0}),
             write_metrics(tmp_path, "b", 10, 0, {"coverage": 0.6, "ot_distance": 2.0, "diversity": 15.0}),
             write_metrics(tmp_path, "a", 20, 0, {"coverage": 0.5, "ot_distance": 1.0, "diversity": 9.0}),
             write_metrics(tmp_path, "b", 20, 0, {"coverage": 0.7, "ot_distance": 1.5, "diversity": 8.0})]
    markdown = distribution_markdown(quality_table(load_metrics(paths), DISTRIBUTION_METRICS))
    assert ("| Method | IPC 10 Coverage (%) ↑ | IPC 10 OT distance ↓ | IPC 10 Diversity ↑ "
            "| IPC 20 Coverage (%) ↑ | IPC 20 OT distance ↓ | IPC 20 Diversity ↑ |") in markdown
    assert row(markdown, "a") == ["**80.0 ± 0.0**", "3.00 ± 0.00", "12.00 ± 0.00",
                                  "50.0 ± 0.0", "**1.00 ± 0.00**", "**9.00 ± 0.00**"]
    assert row(markdown, "b") == ["60.0 ± 0.0", "**2.00 ± 0.00**", "**15.00 ± 0.00**",
                                  "**70.0 ± 0.0**", "1.50 ± 0.00", "8.00 ± 0.00"]


# ---------------------------------------------------------------- footnotes


def test_metric_footnotes_name_extractors_reference_and_settings(tmp_path):
    intervals = {name: (0.5, 0.4, 0.6) for name in ("fid", "recall", "coverage")}
    frame = load_metrics([write_metrics(tmp_path, "a", 10, 0, intervals), write_metrics(tmp_path, "a", 50, 0, {})])
    notes = metric_footnotes(frame, GENERATION_METRICS)
    assert f"FID and KID: features of the inception extractor, resize: {FID_RESIZE}." in notes
    assert (f"Precision, recall and density: features of the vgg16_fc7 extractor, resize: "
            f"{FEATURES_RESIZE}.") in notes
    assert "Reference: the real train split (CIFAR10: 50000 real images vs synthetic sets of 100/500 images)." in notes
    assert "prdc (precision, recall, density, coverage): k = 5 nearest neighbours." in notes
    assert "Bootstrap: 200 half-samples (n/2 without replacement) of the synthetic set, normal intervals around the full-set value, 95% intervals; intervals of FID and recall." in notes
    assert "KID: subsets of 100/500 images." in notes
    distribution = " ".join(metric_footnotes(frame, DISTRIBUTION_METRICS))
    assert "inception" not in distribution
    assert "Coverage, OT distance and diversity: features of the vgg16_fc7 extractor" in distribution
    assert "t-SNE perplexity 30" in distribution and "at most 500 real samples" in distribution
    assert "intervals of coverage (in the CSV only; the table shows the spread over seeds)." in distribution


def test_metric_footnotes_say_what_is_not_recorded(tmp_path):
    frame = load_metrics([write_metrics(tmp_path, "a", 10, 0, {}, nearest_k=None)])
    notes = metric_footnotes(frame, GENERATION_METRICS)
    assert "prdc k: not recorded in the records' manifests." in notes
    assert "Bootstrap: 200 half-samples (n/2 without replacement) of the synthetic set, normal intervals around the full-set value, 95% intervals; no metric of this table has an interval." in notes


def test_protocol_footnotes_render_the_keys_each_protocol_has(tmp_path):
    paths = [write_eval(tmp_path, "a", 10, 0, "hard_label"), write_eval(tmp_path, "a", 10, 0, "soft_label"),
             write_eval(tmp_path, "a", 10, 0, "glad", val=None)]
    hard, soft, glad = sorted(protocol_footnotes(paths), key=lambda n: ["hard", "soft", "glad"].index(n[:4]))
    assert hard.startswith("hard_label: sgd lr 0.01, batch 64, epochs = reference ipc_epoch x 0.05, "
                           "CutMix p 1.0; reported number: best test top-1 over 100 evaluations.")
    assert soft.startswith("soft_label: adamw lr 0.001, batch 100, 300 epochs, teacher soft labels at "
                           "temperature 20.0; reported number: best test top-1 over 6 evaluations in the "
                           "last 20% of epochs.")
    assert glad.startswith("glad: sgd lr 0.001 (vgg 0.0001), batch 256, 1000 epochs, EMA decay 0.995; "
                           "reported number: the final EMA model tested once (best = last).")


def test_protocol_footnotes_split_differing_settings_by_ipc(tmp_path):
    params = dict(PROTOCOL_PARAMS["soft_label"])
    paths = [write_eval(tmp_path, "a", 10, 0, "soft_label"),
             write_eval(tmp_path, "a", 50, 0, "soft_label", params={**params, "batch_size": 200})]
    notes = protocol_footnotes(paths)
    assert [note.split(":")[0] for note in notes] == ["soft_label (IPC 10)", "soft_label (IPC 50)"]
    assert "batch 100" in notes[0] and "batch 200" in notes[1]


# ---------------------------------------------------------------- command line


def test_report_cli_writes_every_table(tmp_path):
    runs = [write_eval(tmp_path, method, ipc, seed, protocol, best=60.0 + seed, last=55.0, val=val,
                       repeat=repeat)
            for method in ("dmgd", "random")
            for ipc in (1, 10)
            for seed in (0, 1)
            for repeat in (0, 1)
            for protocol, val in (("hard_label", 58.0 + repeat), ("glad", None))]
    metrics = [write_metrics(tmp_path, method, ipc, seed, {"fid": (40.0 + seed, 38.0, 44.0)})
               for method in ("dmgd", "random") for ipc in (1, 10) for seed in (0, 1)]
    checks = tmp_path / "check.json"
    checks.write_text(json.dumps({"dataset": "CIFAR10", "samples": 100, "recognisability": 0.9,
                                  "per_class": [0.8, 1.0]}))
    out = tmp_path / "tables"
    main(["--runs", *map(str, runs), "--backbone-checks", str(checks), "--metrics", *map(str, metrics),
          "--out", str(out), "--method-order", "random,dmgd", "--note", "Seeds 0 and 1."])
    stems = ("accuracy", "accuracy_last", "accuracy_val", "generation", "distribution")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{stem}{suffix}" for stem in stems for suffix in (".md", ".tex", ".csv")]
        + ["runs.csv", "model_selection.md", "backbone.md", "variance.csv", "reported.md", "manifest.json"])
    table = pd.read_csv(out / "runs.csv")
    assert len(table) == 32
    assert {"val_selected_top1", "val_selected_epoch", "selection"} <= set(table.columns)
    glad = table[table.protocol == "glad"]
    assert glad["val_selected_top1"].isna().all() and set(glad["selection"]) == {"final_ema"}
    selection = (out / "model_selection.md").read_text(encoding="utf-8")
    assert "| dmgd | 10 | 60.5 ± 0.6 | 58.5 ± 0.6 | 55.0 ± 0.0 | 2.0 |" in selection
    assert "| dmgd | 10 | 60.5 ± 0.6 | – | 55.0 ± 0.0 | – |" in selection
    val = pd.read_csv(out / "accuracy_val.csv")
    assert set(val["protocol"]) == {"hard_label"} and (val["mean"] == 58.5).all()
    generation = (out / "generation.md").read_text(encoding="utf-8")
    assert "| Metric | random | dmgd |" in generation
    assert "features of the inception extractor" in generation and "Seeds 0 and 1." in generation
    assert "Seeds 0 and 1." in (out / "accuracy.md").read_text(encoding="utf-8")
    assert "hard_label: sgd lr 0.01" in (out / "accuracy_val.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("metrics_args", [[], ["--metrics"]])
def test_report_cli_without_metrics_writes_no_metric_tables(tmp_path, metrics_args):
    runs = [write_eval(tmp_path, "dmgd", 10, 0)]
    out = tmp_path / "tables"
    main(["--runs", str(runs[0]), *metrics_args, "--out", str(out)])
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{stem}{suffix}" for stem in ("accuracy", "accuracy_last", "accuracy_val")
         for suffix in (".md", ".tex", ".csv")] + ["runs.csv", "model_selection.md", "variance.csv", "reported.md",
                                                    "manifest.json"])
