"""Tests for evaluation.report.tables: statistics, ranking marks, missing cells, renderers, I/O."""
from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from evaluation.report.tables import (
    accuracy_table,
    load_runs,
    mixed_provenance,
    model_selection_markdown,
    to_csv,
    to_latex,
    to_markdown,
    write_accuracy_tables,
)


def make_runs(cells: dict[tuple[str, int], list[float]], dataset: str = "CIFAR10",
              protocol: str = "test", network: str = "ConvNet") -> pd.DataFrame:
    """One row per value; ``cells`` maps (method, ipc) to that cell's best_top1 values."""
    rows = []
    for (method, ipc), values in cells.items():
        for index, value in enumerate(values):
            rows.append({"dataset": dataset, "method": method, "ipc": ipc, "seed": index // 2,
                         "protocol": protocol, "network": network, "repeat": index % 2,
                         "best_top1": value, "last_top1": value - 1.0})
    return pd.DataFrame(rows)


def markdown_row(markdown: str, method: str) -> list[str]:
    """Entries (after the method name) of the pipe-table row for ``method``."""
    [line] = [line for line in markdown.splitlines() if line.startswith(f"| {method} |")]
    return [entry.strip() for entry in line.strip("|").split("|")][1:]


def cells(table: pd.DataFrame) -> dict:
    """The non-missing cells of a one-block table by (method, IPC)."""
    assert len(table[["dataset", "protocol", "network"]].drop_duplicates()) == 1
    return {(row.method, row.ipc): row for row in table.dropna(subset=["mean"]).itertuples()}


def grid(table: pd.DataFrame) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The methods (rows, in order) and IPCs (columns) of a one-block table; every pair is a row."""
    methods, ipcs = tuple(dict.fromkeys(table["method"])), tuple(dict.fromkeys(table["ipc"]))
    assert list(zip(table["method"], table["ipc"])) == [(m, i) for m in methods for i in ipcs]
    return methods, ipcs


def test_mean_and_std_match_numpy():
    values = [50.1, 52.3, 49.8, 51.0]
    table = accuracy_table(make_runs({("dmgd", 10): values, ("random", 10): [40.0]}))
    cell = cells(table)[("dmgd", 10)]
    assert cell.mean == pytest.approx(np.mean(values))
    assert cell.std == pytest.approx(np.std(values, ddof=1))
    assert cell.n == 4
    single = cells(table)[("random", 10)]
    assert (single.std, single.n) == (0.0, 1)


def test_last_top1_metric_uses_its_column():
    table = accuracy_table(make_runs({("dmgd", 1): [30.0, 32.0]}), metric="last_top1")
    assert cells(table)[("dmgd", 1)].mean == pytest.approx(30.0)


def test_best_bold_second_underlined_per_column():
    runs = make_runs({("a", 1): [30.0], ("b", 1): [35.0], ("c", 1): [20.0],
                      ("a", 10): [60.0], ("b", 10): [50.0], ("c", 10): [55.0]})
    markdown = to_markdown(accuracy_table(runs))
    assert markdown_row(markdown, "a") == ["<u>30.0 ± 0.0</u>", "**60.0 ± 0.0**"]
    assert markdown_row(markdown, "b") == ["**35.0 ± 0.0**", "50.0 ± 0.0"]
    assert markdown_row(markdown, "c") == ["20.0 ± 0.0", "<u>55.0 ± 0.0</u>"]
    latex = to_latex(accuracy_table(runs))
    assert r"a & \underline{30.0 $\pm$ 0.0} & \textbf{60.0 $\pm$ 0.0} \\" in latex
    assert r"b & \textbf{35.0 $\pm$ 0.0} & 50.0 $\pm$ 0.0 \\" in latex


def test_ties_share_rank():
    runs = make_runs({("a", 1): [40.0], ("b", 1): [40.0], ("c", 1): [30.0], ("d", 1): [30.0],
                      ("e", 1): [10.0]})
    table = accuracy_table(runs)
    ranks = {method: cell.rank for (method, _), cell in cells(table).items()}
    assert ranks == {"a": 1, "b": 1, "c": 2, "d": 2, "e": 3}
    markdown = to_markdown(table)
    assert markdown_row(markdown, "a") == markdown_row(markdown, "b") == ["**40.0 ± 0.0**"]
    assert markdown_row(markdown, "c") == markdown_row(markdown, "d") == ["<u>30.0 ± 0.0</u>"]
    assert markdown_row(markdown, "e") == ["10.0 ± 0.0"]


def test_means_equal_at_displayed_precision_tie():
    table = accuracy_table(make_runs({("a", 1): [40.01], ("b", 1): [39.99]}))
    assert {cell.rank for cell in cells(table).values()} == {1}


def test_single_method_column_is_only_bold():
    runs = make_runs({("a", 1): [40.0], ("b", 1): [30.0], ("a", 50): [70.0]})
    markdown = to_markdown(accuracy_table(runs))
    assert markdown_row(markdown, "a") == ["**40.0 ± 0.0**", "**70.0 ± 0.0**"]
    assert markdown_row(markdown, "b") == ["<u>30.0 ± 0.0</u>", "–"]


def test_missing_cell_shows_dash():
    runs = make_runs({("a", 1): [40.0], ("a", 10): [60.0], ("b", 10): [55.0]})
    table = accuracy_table(runs)
    assert ("b", 1) not in cells(table) and ("a", 1) in cells(table)
    assert markdown_row(to_markdown(table), "b") == ["–", "<u>55.0 ± 0.0</u>"]
    assert r"b & -- & \underline{55.0 $\pm$ 0.0} \\" in to_latex(table)
    csv = pd.read_csv(io.StringIO(to_csv(table)))
    assert len(csv) == 3


def test_method_order_respected_and_ipcs_ascending():
    runs = make_runs({("zeta", 50): [1.0], ("alpha", 1): [2.0], ("mid", 10): [3.0]})
    table = accuracy_table(runs, method_order=["mid", "zeta", "alpha", "unused"])
    assert grid(table) == (("mid", "zeta", "alpha"), (1, 10, 50))
    markdown = to_markdown(table)
    assert "| Method | IPC 1 | IPC 10 | IPC 50 |" in markdown
    assert markdown.index("| mid |") < markdown.index("| zeta |") < markdown.index("| alpha |")
    assert grid(accuracy_table(runs))[0] == ("zeta", "alpha", "mid")


def test_method_order_missing_a_method_is_an_error():
    runs = make_runs({("a", 1): [1.0], ("b", 1): [2.0]})
    with pytest.raises(ValueError, match=r"method_order lacks methods \['b'\]"):
        accuracy_table(runs, method_order=["a"])


def test_unknown_metric_is_an_error():
    with pytest.raises(ValueError, match="unknown metric 'top5'"):
        accuracy_table(make_runs({("a", 1): [1.0]}), metric="top5")


def test_blocks_per_dataset_protocol_network():
    runs = pd.concat([make_runs({("a", 1): [1.0]}, dataset="SVHN", network="ResNet18"),
                      make_runs({("a", 1): [2.0]}, dataset="CIFAR10", network="ConvNet")])
    table = accuracy_table(runs)
    assert list(table[["dataset", "network"]].drop_duplicates().itertuples(index=False, name=None)) == [("CIFAR10", "ConvNet"),
                                                              ("SVHN", "ResNet18")]
    markdown = to_markdown(table)
    assert "### CIFAR10 · test · ConvNet" in markdown
    assert markdown.index("### CIFAR10") < markdown.index("### SVHN · test · ResNet18")


def test_csv_round_trips_with_full_precision():
    values = [50.123456789, 52.987654321, 49.5]
    runs = make_runs({("dmgd", 10): values, ("random_first_k", 10): [40.0], ("dmgd", 1): [20.0]})
    csv = pd.read_csv(io.StringIO(to_csv(accuracy_table(runs))))
    assert list(csv.columns) == ["dataset", "protocol", "network", "method", "ipc", "mean", "std",
                                 "n", "rank", "mixed_provenance"]
    assert csv["mixed_provenance"].isna().all()
    row = csv[(csv.method == "dmgd") & (csv.ipc == 10)].iloc[0]
    assert row["mean"] == np.mean(values)
    assert row["std"] == np.std(values, ddof=1)
    assert (row["n"], row["rank"]) == (3, 1)
    assert csv[csv.method == "random_first_k"].iloc[0]["rank"] == 2


def test_latex_escapes_and_booktabs():
    runs = make_runs({("random_first_k", 1): [10.0], ("a&b", 1): [9.0]}, dataset="Tiny_IN#1%")
    latex = to_latex(accuracy_table(runs), footnotes=["50% of runs used seed_0"])
    assert r"random\_first\_k & \textbf{10.0 $\pm$ 0.0} \\" in latex
    assert r"a\&b &" in latex
    assert r"Tiny\_IN\#1\%" in latex
    assert "random_first_k" not in latex
    assert all(command in latex for command in (r"\toprule", r"\midrule", r"\bottomrule",
                                                r"\multicolumn{2}{l}"))
    assert r"50\% of runs used seed\_0" in latex


def test_load_runs_reads_and_sorts(tmp_path):
    base = {"dataset": "CIFAR10", "protocol": "test", "network": "ConvNet", "best_top1": 50.0,
            "last_top1": 49.0, "notes": [1, 2], "wall_s": 12.5}
    for name, method, seed in [("1.json", "b", 0), ("2.json", "a", 1), ("3.json", "a", 0)]:
        (tmp_path / name).write_text(json.dumps({**base, "method": method, "ipc": 10,
                                                 "seed": seed, "repeat": 0}))
    runs = load_runs(sorted(tmp_path.glob("*.json")))
    assert list(runs[["method", "seed"]].itertuples(index=False, name=None)) == [
        ("a", 0), ("a", 1), ("b", 0)]
    assert "wall_s" in runs.columns and "notes" not in runs.columns
    assert list(runs.columns[:9]) == ["dataset", "method", "ipc", "seed", "protocol", "network",
                                      "repeat", "best_top1", "last_top1"]
    assert runs["ipc"].tolist() == [10, 10, 10]


def test_load_runs_missing_key_names_file_and_key(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"dataset": "CIFAR10", "method": "a", "ipc": 1, "seed": 0,
                                "protocol": "test", "network": "ConvNet", "repeat": 0,
                                "best_top1": 50.0}))
    with pytest.raises(ValueError, match=r"run\.json: missing required key 'last_top1'"):
        load_runs([path])


def test_write_accuracy_tables_is_atomic_and_complete(tmp_path):
    runs = make_runs({("dmgd", 1): [40.0, 42.0], ("random", 1): [30.0, 31.0]})
    out = tmp_path / "tables"
    write_accuracy_tables(runs, out, "last_top1", "table1", footnotes=["Seeds 0 and 1."])
    assert sorted(p.name for p in out.iterdir()) == ["table1.csv", "table1.md", "table1.tex"]
    markdown = (out / "table1.md").read_text(encoding="utf-8")
    assert markdown.splitlines()[0].startswith("Top-1 accuracy (%), at the last epoch")
    assert "over 2 runs" in markdown.splitlines()[0]
    assert markdown.rstrip().endswith("Notes:\n\n- Seeds 0 and 1.")
    assert "Seeds 0 and 1." in (out / "table1.tex").read_text(encoding="utf-8")
    assert "Seeds" not in (out / "table1.csv").read_text(encoding="utf-8")
    assert pd.read_csv(out / "table1.csv")["mean"].tolist() == [40.0, 29.5]


def test_output_is_deterministic():
    runs = make_runs({("a", 1): [40.0, 41.0], ("b", 10): [30.0]})
    shuffled = runs.sample(frac=1.0, random_state=0)
    first, second = accuracy_table(runs), accuracy_table(shuffled, method_order=["a", "b"])
    assert to_markdown(first) == to_markdown(second)
    assert to_latex(first) == to_latex(second)
    assert to_csv(first) == to_csv(second)


def make_selection_runs(readings: dict[tuple[str, int], list[tuple[float, float | None, float]]],
                        protocol: str = "hard_label") -> pd.DataFrame:
    """One row per (best, val-selected, last) triple of each (method, ipc) cell."""
    rows = []
    for (method, ipc), triples in readings.items():
        for index, (best, val, last) in enumerate(triples):
            rows.append({"dataset": "CIFAR10", "method": method, "ipc": ipc, "seed": index,
                         "protocol": protocol, "network": "ConvNet", "repeat": 0, "best_top1": best,
                         "last_top1": last, "val_selected_top1": np.nan if val is None else val,
                         "selection": "best"})
    return pd.DataFrame(rows)


def selection_row(markdown: str, method: str, ipc: int) -> list[str]:
    [line] = [line for line in markdown.splitlines() if line.startswith(f"| {method} | {ipc} |")]
    return [entry.strip() for entry in line.strip("|").split("|")][2:]


def test_model_selection_puts_each_reading_in_its_column():
    runs = make_selection_runs({("dmgd", 10): [(60.0, 55.0, 50.0), (62.0, 57.0, 52.0)],
                                ("random", 10): [(40.0, 39.0, 38.0), (40.0, 39.0, 38.0)]})
    markdown = model_selection_markdown(runs, footnotes=["a note"])
    assert "| Method | IPC | Best | Val-selected | Last | Best − val |" in markdown
    assert selection_row(markdown, "dmgd", 10) == ["61.0 ± 1.4", "56.0 ± 1.4", "51.0 ± 1.4", "5.0"]
    assert selection_row(markdown, "random", 10) == ["40.0 ± 0.0", "39.0 ± 0.0", "38.0 ± 0.0", "1.0"]
    first = markdown.splitlines()[0]
    assert "over 2 runs per cell" in first and "only honest estimate" in first
    assert "The protocol reports the best test top-1 over its evaluations." in markdown
    assert markdown.rstrip().endswith("- a note")


def test_null_val_selected_shows_missing_never_a_partial_mean():
    runs = make_selection_runs({("dmgd", 1): [(60.0, None, 50.0), (62.0, None, 52.0)],
                                ("dmgd", 10): [(70.0, 65.0, 69.0), (72.0, None, 71.0)],
                                ("random", 10): [(40.0, 39.0, 38.0)]})
    markdown = model_selection_markdown(runs)
    assert selection_row(markdown, "dmgd", 1) == ["61.0 ± 1.4", "–", "51.0 ± 1.4", "–"]
    assert selection_row(markdown, "dmgd", 10) == ["71.0 ± 1.4", "–", "70.0 ± 1.4", "–"]
    table = accuracy_table(runs, metric="val_selected_top1")
    assert set(cells(table)) == {("random", 10)}
    assert markdown_row(to_markdown(table), "dmgd") == ["–", "–"]
    assert markdown_row(to_markdown(table), "random") == ["–", "**39.0 ± 0.0**"]
    assert pd.read_csv(io.StringIO(to_csv(table)))["method"].tolist() == ["random"]


def test_model_selection_states_the_final_ema_convention():
    runs = make_selection_runs({("dmgd", 10): [(50.0, None, 50.0)]}, protocol="glad")
    runs["selection"] = "final_ema"
    markdown = model_selection_markdown(runs)
    assert "The protocol tests the final EMA model once, so best = last." in markdown
    assert selection_row(markdown, "dmgd", 10) == ["50.0 ± 0.0", "–", "50.0 ± 0.0", "–"]


def test_load_runs_reads_optional_selection_keys(tmp_path):
    base = {"dataset": "CIFAR10", "method": "a", "ipc": 10, "protocol": "hard_label",
            "network": "ConvNet", "repeat": 0, "best_top1": 50.0, "last_top1": 49.0}
    (tmp_path / "0.json").write_text(json.dumps({**base, "seed": 0, "val_selected_top1": 47.5,
                                                 "val_selected_epoch": 30, "selection": "best"}))
    (tmp_path / "1.json").write_text(json.dumps({**base, "seed": 1, "val_selected_top1": None,
                                                 "val_selected_epoch": None, "selection": "best"}))
    (tmp_path / "2.json").write_text(json.dumps({**base, "seed": 2}))
    runs = load_runs(sorted(tmp_path.glob("*.json")))
    assert runs["val_selected_top1"].iloc[0] == 47.5
    assert runs["val_selected_top1"].iloc[1:].isna().all()
    assert str(runs["val_selected_epoch"].dtype) == "Int64"
    assert runs["val_selected_epoch"].iloc[0] == 30 and runs["val_selected_epoch"].iloc[1:].isna().all()
    assert runs["selection"].tolist()[:2] == ["best", "best"] and pd.isna(runs["selection"].iloc[2])
    (tmp_path / "3.json").write_text(json.dumps({**base, "seed": 3, "val_selected_top1": "high"}))
    with pytest.raises(ValueError, match=r"3\.json: key 'val_selected_top1' is 'high', not float or null"):
        load_runs(sorted(tmp_path.glob("*.json")))


# ---------------------------------------------------------------- mixed provenance


def write_record(root, seed: int, repeat: int, best: float, version: str | None = "a" * 40,
                 lr: float = 0.01, method: str = "dmgd", ipc: int = 10, synset: dict | None = None,
                 packages: dict | None = None) -> object:
    """A run record with a manifest (config slice, code version and, when given, the synthetic set's
    provenance) as evaluation.protocols.train writes it."""
    config = {"dataset": "CIFAR10", "method": method, "ipc": ipc, "seed": seed, "repeat": repeat,
              "protocol": "hard_label", "network_name": "convnet-3",
              "network": {"arch": "convnet", "depth": 3, "width": 128},
              "protocol_params": {"base": "hard_label", "optimizer": "sgd", "lr": lr}}
    manifest = {"config": config} if version is None else {"config": config, "code_version": version}
    if synset is not None:
        manifest["synset"] = synset
    if packages is not None:
        manifest["packages"] = packages
    record = {"dataset": "CIFAR10", "method": method, "ipc": ipc, "seed": seed, "protocol": "hard_label",
              "network": "convnet-3", "repeat": repeat, "best_top1": best, "last_top1": best - 1,
              "manifest": manifest}
    path = root / f"{method}-{ipc}-{seed}-{repeat}.json"
    path.write_text(json.dumps(record))
    return path


def test_load_runs_reads_provenance_and_network_from_the_manifest(tmp_path):
    runs = load_runs([write_record(tmp_path, 0, 0, 50.0), write_record(tmp_path, 1, 0, 51.0, version=None)])
    assert runs["manifest_code_version"].tolist()[0] == "a" * 40 and pd.isna(runs["manifest_code_version"].iloc[1])
    assert runs["network_arch"].tolist() == ["convnet", "convnet"] and runs["network_depth"].tolist() == [3, 3]
    assert runs["protocol_base"].tolist() == ["hard_label", "hard_label"]
    config = json.loads(runs["manifest_config"].iloc[0])
    assert "seed" not in config and "repeat" not in config and config["protocol_params"]["lr"] == 0.01


def test_mixed_code_versions_in_a_cell_are_marked_with_a_footnote(tmp_path):
    paths = [write_record(tmp_path, 0, r, 50.0 + r) for r in range(3)]
    paths += [write_record(tmp_path, 1, r, 52.0 + r, version="b" * 40 + "-dirty") for r in range(2)]
    paths += [write_record(tmp_path, s, 0, 40.0, method="random") for s in range(2)]
    table = accuracy_table(load_runs(paths))
    markdown = to_markdown(table)
    assert markdown_row(markdown, "dmgd") == ["**51.6 ± 1.1**†"]
    assert markdown_row(markdown, "random") == ["<u>40.0 ± 0.0</u>"]  # one version: no mark
    assert ("- † CIFAR10 · hard_label · convnet-3 · dmgd · IPC 10 pools runs of different provenance: "
            "code version aaaaaaaaaaaa (3 runs) vs bbbbbbbbbbbb-dirty (2 runs).") in markdown
    assert r"\textbf{51.6 $\pm$ 1.1}$^\dagger$" in to_latex(table)
    csv = pd.read_csv(io.StringIO(to_csv(table))).set_index("method")
    assert csv.loc["dmgd", "mixed_provenance"] == "code version aaaaaaaaaaaa (3 runs) vs bbbbbbbbbbbb-dirty (2 runs)"
    assert pd.isna(csv.loc["random", "mixed_provenance"])
    selection = model_selection_markdown(load_runs(paths))
    assert "| dmgd | 10 | 51.6 ± 1.1† |" in selection and "pools runs of different provenance" in selection


def test_a_dirty_suffix_is_a_different_version_and_a_missing_one_is_named(tmp_path):
    runs = load_runs([write_record(tmp_path, 0, 0, 50.0, version="abc"),
                      write_record(tmp_path, 0, 1, 50.0, version="abc-dirty"),
                      write_record(tmp_path, 1, 0, 50.0, version=None)])
    assert mixed_provenance(runs) == ("code version abc (1 run) vs abc-dirty (1 run) vs not recorded (1 run)",)


def test_mixed_package_versions_in_a_cell_name_the_differing_package(tmp_path):
    same = {"python": "3.11.7", "torch": "2.14.1", "numpy": "2.1.0"}
    paths = [write_record(tmp_path, s, 0, 50.0, packages=same) for s in range(2)]
    paths.append(write_record(tmp_path, 2, 0, 50.0, packages={**same, "torch": "2.13.0"}))
    paths.append(write_record(tmp_path, 3, 0, 50.0))
    table = accuracy_table(load_runs(paths))
    assert cells(table)[("dmgd", 10)].provenance == (
        'packages numpy "2.1.0" (3 runs) vs not recorded (1 run); python "3.11.7" (3 runs) vs not recorded (1 run); '
        'torch "2.14.1" (2 runs) vs "2.13.0" (1 run) vs not recorded (1 run)',)
    assert "pools runs of different provenance: packages" in to_markdown(table)
    agreeing = [write_record(tmp_path, s, 0, 50.0, packages=same) for s in range(2)]
    assert cells(accuracy_table(load_runs(agreeing)))[("dmgd", 10)].provenance == ()


def test_mixed_configs_in_a_cell_name_the_differing_key(tmp_path):
    paths = [write_record(tmp_path, s, 0, 50.0) for s in range(2)] + [write_record(tmp_path, 2, 0, 50.0, lr=0.1)]
    table = accuracy_table(load_runs(paths))
    assert cells(table)[("dmgd", 10)].provenance == ("config protocol_params.lr 0.01 (2 runs) vs 0.1 (1 run)",)
    same = [write_record(tmp_path, s, r, 50.0 + r) for s in range(2) for r in range(2)]  # seeds and repeats differ only
    assert cells(accuracy_table(load_runs(same)))[("dmgd", 10)].provenance == ()


def synset_provenance(guidance: float, version: str = "a" * 40, seed: int = 0) -> dict:
    return {"config": {"method": "dmgd", "params": {"guidance_scale": guidance}, "dataset": "CIFAR10"},
            "seed": seed, "code_version": version}


def test_sets_of_different_method_parameters_in_a_cell_are_marked(tmp_path):
    paths = [write_record(tmp_path, s, 0, 50.0, synset=synset_provenance(0.1, seed=s)) for s in range(2)]
    paths.append(write_record(tmp_path, 2, 0, 50.0, synset=synset_provenance(0.3, seed=2)))
    table = accuracy_table(load_runs(paths))
    assert cells(table)[("dmgd", 10)].provenance == (
        "config synset.params.guidance_scale 0.1 (2 runs) vs 0.3 (1 run)",)
    assert "pools runs of different provenance: config synset.params.guidance_scale" in to_markdown(table)


def test_a_set_made_by_another_code_version_is_named(tmp_path):
    paths = [write_record(tmp_path, 0, 0, 50.0, synset=synset_provenance(0.1)),
             write_record(tmp_path, 1, 0, 50.0, synset=synset_provenance(0.1, version="c" * 40, seed=1))]
    assert cells(accuracy_table(load_runs(paths)))[("dmgd", 10)].provenance == (
        "code version aaaaaaaaaaaa (1 run) vs aaaaaaaaaaaa (synset cccccccccccc) (1 run)",)
