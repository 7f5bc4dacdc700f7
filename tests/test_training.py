"""Tests for evaluation.protocols and evaluation.training: schedule rules, evaluation helpers, and a
short end-to-end run on a separable synthetic set (learning, determinism, result bookkeeping)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from evaluation.protocols import hard_label_epochs, milestones
from evaluation.training import evaluation_epochs, make_optimizer, predict, top1, train_and_evaluate

NUM_CLASSES = 10
SIZE = 16
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
# Ten well-separated colours from the corners and face centres of the RGB cube.
COLOURS = torch.tensor([[30, 30, 30], [225, 30, 30], [30, 225, 30], [30, 30, 225], [225, 225, 30],
                        [225, 30, 225], [30, 225, 225], [225, 225, 225], [128, 128, 30], [30, 128, 128]])


def coloured_images(per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images of class k: colour k plus Gaussian noise (std 20 levels)."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(NUM_CLASSES).repeat_interleave(per_class)
    noise = 20 * torch.randn(len(labels), 3, SIZE, SIZE, generator=generator)
    images = COLOURS[labels].float()[:, :, None, None] + noise
    return images.round().clamp(0, 255).to(torch.uint8), labels


def run(seed: int = 0, **overrides) -> dict:
    train_images, train_labels = coloured_images(per_class=12, seed=1)
    test_images, test_labels = coloured_images(per_class=10, seed=2)
    settings = dict(network="convnet", network_kwargs={"depth": 2, "width": 16}, num_classes=NUM_CLASSES,
                    epochs=6, batch_size=40, lr=0.05, momentum=0.9, weight_decay=5e-4, optimizer="sgd",
                    milestones=milestones(6), gamma=0.2, rrc_scale=(0.5, 1.0), cutmix_alpha=1.0,
                    cutmix_prob=0.5, num_evals=3, mean=MEAN, std=STD, seed=seed, device="cpu", progress=False)
    settings.update(overrides)
    return train_and_evaluate(train_images, train_labels, test_images, test_labels, **settings)[0]


@pytest.mark.parametrize("ipc, num_classes, epochs", [
    (1, 10, 3000), (10, 10, 2000), (20, 10, 1500), (50, 10, 1500), (100, 10, 1000), (200, 10, 1000),
    (500, 10, 500), (1000, 10, 300), (1, 100, 2000), (10, 100, 1300), (20, 100, 1000), (50, 100, 1000),
    (100, 100, 600), (10, 1000, 2000)])
def test_hard_label_epochs_follow_ipc_epoch(ipc, num_classes, epochs):
    assert hard_label_epochs(ipc, num_classes) == epochs


def test_hard_label_epochs_rejects_non_positive_ipc():
    with pytest.raises(ValueError, match="ipc 0 is invalid"):
        hard_label_epochs(0, 10)


@pytest.mark.parametrize("epochs, expected", [(1000, [666, 833]), (1500, [1000, 1250]), (6, [4, 5])])
def test_milestones_at_two_thirds_and_five_sixths(epochs, expected):
    assert milestones(epochs) == expected


@pytest.mark.parametrize("epochs, num_evals, expected", [
    (10, 1, [10]), (10, 3, [3, 6, 10]), (10, 10, list(range(1, 11))), (1000, 4, [250, 500, 750, 1000])])
def test_evaluation_epochs_evenly_spaced_ending_at_last(epochs, num_evals, expected):
    assert evaluation_epochs(epochs, num_evals) == expected


@pytest.mark.parametrize("num_evals", [0, 11])
def test_evaluation_epochs_rejects_out_of_range(num_evals):
    with pytest.raises(ValueError, match=f"num_evals {num_evals} is invalid"):
        evaluation_epochs(10, num_evals)


def test_unknown_optimizer_lists_options():
    with pytest.raises(ValueError, match=r"unknown optimizer 'adam'; valid: sgd, adamw"):
        make_optimizer("adam", nn.Linear(2, 2).parameters(), 0.1, 0.9, 0.0)


class ColourOracle(nn.Module):
    """Predicts the class whose colour is nearest to the image's mean colour (after normalisation)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        colours = (COLOURS.float() / 255 - torch.tensor(MEAN)) / torch.tensor(STD)
        return -torch.cdist(x.mean(dim=(2, 3)), colours)


def test_predict_and_top1_in_batches_restore_mode():
    images, labels = coloured_images(per_class=3, seed=0)
    model = ColourOracle().train()
    predictions = predict(model, images, MEAN, STD, batch_size=7, device="cpu")
    assert predictions.dtype == torch.long and torch.equal(predictions, labels)
    assert model.training
    shifted = (labels + 1) % NUM_CLASSES
    assert top1(model, images, labels, MEAN, STD, 7, "cpu") == 100.0
    assert top1(model, images, shifted, MEAN, STD, 7, "cpu") == 0.0


@pytest.fixture(scope="module")
def reference_run() -> dict:
    return run()


def test_training_learns_separable_colours(reference_run):
    assert reference_run["best_top1"] > 90.0


def test_result_bookkeeping(reference_run):
    curve = reference_run["curve"]
    assert [point["epoch"] for point in curve] == evaluation_epochs(6, 3)
    assert reference_run["epochs"] == 6
    assert reference_run["last_top1"] == curve[-1]["top1"]
    assert reference_run["best_top1"] == max(point["top1"] for point in curve) >= reference_run["last_top1"]
    best_point = next(point for point in curve if point["top1"] == reference_run["best_top1"])
    assert reference_run["best_epoch"] == best_point["epoch"]


def test_training_is_deterministic_and_leaves_global_rng_alone(reference_run):
    state = torch.get_rng_state()
    assert run() == reference_run
    assert torch.equal(torch.get_rng_state(), state)


def test_seed_changes_the_run(reference_run):
    one_epoch = dict(epochs=1, num_evals=1, milestones=[1])
    assert run(seed=1, **one_epoch) != run(seed=0, **one_epoch)


def test_adamw_every_batch_cutmix_runs():
    result = run(optimizer="adamw", lr=0.003, weight_decay=0.01, cutmix_prob=1.0, epochs=2, num_evals=2,
                 milestones=[1])
    assert len(result["curve"]) == 2
    assert 0.0 <= result["last_top1"] <= result["best_top1"] <= 100.0


def test_progress_bar_reports_epochs(capsys):
    run(epochs=1, num_evals=1, milestones=[1], progress=True)
    assert "train convnet" in capsys.readouterr().err


def test_float_images_are_rejected():
    images, labels = coloured_images(per_class=1, seed=0)
    with pytest.raises(ValueError, match="images dtype torch.float32 is invalid; valid: torch.uint8"):
        predict(ColourOracle(), images.float(), MEAN, STD, batch_size=4, device="cpu")
