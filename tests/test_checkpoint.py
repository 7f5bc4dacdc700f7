"""Checkpoints of the long loops (evaluation/core/checkpoint.py): a run interrupted right after its k-th
checkpoint and started again resumes from it and ends bit-identical to an uninterrupted run
(results and weights); a checkpoint of another job is ignored; a finished job leaves none behind."""
from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
import torch

from evaluation.config.validate import validate_config
from evaluation.core.checkpoint import Checkpoint, interval_from_env, job_identity
from evaluation.protocols.train import load_teacher, train_teacher
from evaluation.protocols.training import train_and_evaluate
from methods.diffusion import train_tiny
from methods.diffusion.backbone import open_backbone
from methods.minimax_finetune import finetune
from tests.conftest import typed_params
from tests.test_training import HARD, NUM_CLASSES, coloured_images, protocol


class Interrupted(Exception):
    """Stands for the job being killed."""


def interrupt_after(monkeypatch, saves: int) -> None:
    """The ``saves``-th checkpoint is written, then the run stops (as if killed right after it)."""
    original, count = Checkpoint.save, itertools.count(1)

    def save(self, state, at):
        original(self, state, at)
        if next(count) == saves:
            raise Interrupted(at)
    monkeypatch.setattr(Checkpoint, "save", save)


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key, value in a.items():
        assert torch.equal(value, b[key]), key


def test_a_checkpoint_of_another_job_is_ignored(tmp_path, capsys):
    Checkpoint(tmp_path / "job.ckpt", "job a").save({"epoch": 3}, at="epoch 3")
    assert Checkpoint(tmp_path / "job.ckpt", "job a").load() == {"epoch": 3}
    assert "resumed from checkpoint at epoch 3" in capsys.readouterr().out
    assert Checkpoint(tmp_path / "job.ckpt", "job b").load() is None
    assert "ignoring checkpoint" in capsys.readouterr().out
    Checkpoint(tmp_path / "job.ckpt", "job a").remove()
    assert not (tmp_path / "job.ckpt").exists() and Checkpoint(tmp_path / "job.ckpt", "job a").load() is None


def test_identity_follows_spec_arguments_and_inputs(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "x.pt").write_bytes(b"1")
    first = job_identity("evaluate", {"seed": 0}, [data], device="cpu")
    assert job_identity("evaluate", {"seed": 0}, [data], device="cpu") == first
    assert job_identity("evaluate", {"seed": 1}, [data], device="cpu") != first
    assert job_identity("evaluate", {"seed": 0}, [data], device="cuda") != first
    stat = (data / "x.pt").stat()
    os.utime(data / "x.pt", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))   # a regenerated input
    assert job_identity("evaluate", {"seed": 0}, [data], device="cpu") != first


def test_cadence_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("DMGD_CHECKPOINT_INTERVAL_S", raising=False)
    assert interval_from_env() == 300
    monkeypatch.setenv("DMGD_CHECKPOINT_INTERVAL_S", "0")
    assert Checkpoint.beside(tmp_path / "run.json", "job").due()
    assert Checkpoint.beside(tmp_path / "run.json", "job").path == tmp_path / "run.json.ckpt"
    monkeypatch.setenv("DMGD_CHECKPOINT_INTERVAL_S", "3600")
    assert not Checkpoint.beside(tmp_path / "run.json", "job").due()


def evaluation_run(overrides: dict, checkpoint: Checkpoint | None):
    train = coloured_images(per_class=6, seed=1)
    result, model = train_and_evaluate(*train, coloured_images(per_class=5, seed=2), val=coloured_images(2, 3),
                                       protocol=protocol(**overrides), network="convnet",
                                       network_kwargs={"depth": 2, "width": 16}, num_classes=NUM_CLASSES, epochs=5,
                                       seed=0, device="cpu", checkpoint=checkpoint)
    return result, model.state_dict()


@pytest.mark.parametrize("overrides", [
    {**HARD, "num_evals": 5},   # SGD, multistep, CutMix
    {**HARD, "num_evals": 5, "optimizer": "adamw", "lr": 0.003, "ema_decay": 0.9, "schedule": "warmup_cosine"}])
def test_evaluation_training_resumes_bit_identical(overrides, tmp_path, monkeypatch, capsys):
    reference, weights = evaluation_run(overrides, None)
    interrupt_after(monkeypatch, 2)
    with pytest.raises(Interrupted):
        evaluation_run(overrides, Checkpoint(tmp_path / "run.ckpt", "job", interval_s=0))
    result, resumed = evaluation_run(overrides, Checkpoint(tmp_path / "run.ckpt", "job", interval_s=0))
    assert "resumed from checkpoint at epoch 2" in capsys.readouterr().out
    assert result == reference and len(result["curve"]) == 5
    assert_same_weights(resumed, weights)


def test_evaluation_training_ignores_another_jobs_checkpoint(tmp_path, monkeypatch, capsys):
    reference, weights = evaluation_run(HARD, None)
    interrupt_after(monkeypatch, 1)
    with pytest.raises(Interrupted):
        evaluation_run({**HARD, "lr": 0.5}, Checkpoint(tmp_path / "run.ckpt", "job with lr 0.5", interval_s=0))
    result, fresh = evaluation_run(HARD, Checkpoint(tmp_path / "run.ckpt", "job", interval_s=0))
    assert "ignoring checkpoint" in capsys.readouterr().out
    assert result == reference
    assert_same_weights(fresh, weights)


def small_config(**sections) -> dict:
    return validate_config({"profile": "t", "datasets": ["digits"], "ipcs": [1],
                            "methods": {"random": {"method": "random"}}, **sections})


def test_teacher_resumes_bit_identical_and_leaves_no_checkpoint(digits_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DMGD_CHECKPOINT_INTERVAL_S", "0")
    config = small_config(teacher={"epochs": 2, "network": {"arch": "convnet", "depth": 2, "width": 8}})
    spec = {"dataset": "digits", "teacher": config["teacher"], "protocol_params": config["protocols"]["hard_label"]}
    reference = train_teacher(spec, digits_dir, tmp_path / "reference", "cpu")
    assert not (tmp_path / "reference.ckpt").exists()
    interrupt_after(monkeypatch, 1)
    with pytest.raises(Interrupted):
        train_teacher(spec, digits_dir, tmp_path / "teacher", "cpu")
    assert (tmp_path / "teacher.ckpt").is_file() and not (tmp_path / "teacher").exists()
    assert train_teacher(spec, digits_dir, tmp_path / "teacher", "cpu") == reference
    assert "resumed from checkpoint at epoch 1" in capsys.readouterr().out
    assert not (tmp_path / "teacher.ckpt").exists()
    assert_same_weights(load_teacher(tmp_path / "teacher")[0].state_dict(),
                        load_teacher(tmp_path / "reference")[0].state_dict())


TINY_TRAIN = {"vae_channels": [8, 16], "latent_channels": 4, "dit_layers": 2, "dit_heads": 2, "dit_head_dim": 8,
              "dit_patch_size": 2, "vae_steps": 4, "dit_steps": 4, "vae_batch_size": 4, "dit_batch_size": 4}


def backbone_files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*.safetensors"))}


def test_backbone_training_resumes_bit_identical_in_either_phase(digits_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DMGD_CHECKPOINT_INTERVAL_S", "0")
    monkeypatch.setattr(train_tiny, "LOG_EVERY", 2)   # loss rows before and after the interruption
    cfg = small_config(backbone={"train": TINY_TRAIN})["backbone"]["train"]
    train_tiny.train_tiny_backbone(digits_dir, cfg, 10, tmp_path / "reference", tmp_path / "reference.csv")
    reference = backbone_files(tmp_path / "reference")
    assert len(reference) == 2   # the DiT's and the VAE's weights
    for saves, position in [(2, "vae step 2"), (6, "dit step 2")]:
        out, loss = tmp_path / f"tiny{saves}", tmp_path / f"loss{saves}.csv"
        interrupt_after(monkeypatch, saves)
        with pytest.raises(Interrupted):
            train_tiny.train_tiny_backbone(digits_dir, cfg, 10, out, loss)
        train_tiny.train_tiny_backbone(digits_dir, cfg, 10, out, loss)
        assert f"resumed from checkpoint at {position}" in capsys.readouterr().out
        assert not out.with_name(out.name + ".ckpt").exists() and backbone_files(out) == reference
        assert loss.read_text() == (tmp_path / "reference.csv").read_text()
    assert loss.read_text().count("\n") == 1 + 4   # header, 2 VAE and 2 DiT rows


def test_minimax_finetuning_resumes_bit_identical(tiny_backbone_dir, latents_path, tmp_path, monkeypatch, capsys):
    params = typed_params("minimax", steps=6, batch_size=8, ema_decay=0.5)

    def run(checkpoint):
        return finetune(open_backbone(tiny_backbone_dir), torch.load(latents_path), params, "cpu",
                        checkpoint, backbone_labels=range(10)).transformer.state_dict()
    reference = run(None)
    interrupt_after(monkeypatch, 3)
    with pytest.raises(Interrupted):
        run(Checkpoint(tmp_path / "ft.ckpt", "job", interval_s=0))
    resumed = run(Checkpoint(tmp_path / "ft.ckpt", "job", interval_s=0))
    assert "resumed from checkpoint at step 3" in capsys.readouterr().out
    assert_same_weights(resumed, reference)
