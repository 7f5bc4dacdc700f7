"""Every paper profile ships ``device: auto``: each DAG entry point that takes ``--device`` resolves it
(cuda when available, else cpu) instead of handing the string to torch, which raises on ``.to("auto")``."""
from __future__ import annotations

import json

from evaluation.data.synsets import read_synset
from methods.diffusion.backbone import open_backbone
from tests.conftest import SAMPLER, TINY
from tests.workflow_run import load_script


def test_distill_entry_point_resolves_auto(tmp_path, digits_dir, tiny_backbone_dir):
    spec = {"method": "dit", "params": {}, "dataset": "digits", "sampler": {**SAMPLER, "steps": 2}, "data": {}}
    out = tmp_path / "set"
    load_script("distill").main(["--spec", json.dumps(spec), "--data", str(digits_dir), "--ipc", "1", "--seed", "0",
                  "--out", str(out), "--backbone", str(tiny_backbone_dir), "--device", "auto"])
    images, labels = read_synset(out, 10)
    assert images.shape[0] == 10 and labels.tolist() == list(range(10))
    assert json.loads((out / "manifest.json").read_text())["device"] != "auto"


def test_train_tiny_entry_point_resolves_auto(tmp_path, digits_dir):
    train = {**TINY, "seed": 0, "vae_steps": 1, "vae_batch_size": 8, "vae_lr": 0.002, "vae_kl_weight": 1e-6,
             "dit_steps": 1, "dit_batch_size": 8, "dit_lr": 0.002, "class_dropout": 0.1, "ema_decay": 0.5}
    out = tmp_path / "backbone"
    load_script("train_backbone").main(["--spec", json.dumps({"train": train, "numerics": "official", "num_classes": 10}),
                     "--data", str(digits_dir), "--out", str(out), "--loss-log", str(tmp_path / "loss.csv"),
                     "--device", "auto"])
    assert open_backbone(out).numerics == "official"
