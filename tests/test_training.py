"""Tests for evaluation.protocols.protocols and evaluation.protocols.training: schedule rules, evaluation helpers, and a
short end-to-end run on a separable synthetic set (learning, determinism, result bookkeeping)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from evaluation.protocols.protocols import (
    evaluation_epochs,
    hard_label_epochs,
    lr_factor,
    milestones,
    protocol_epochs,
    reference_protocols,
    resolve_protocol,
    selection_convention,
)
from evaluation.protocols.training import (
    make_optimizer,
    parameter_groups,
    predict,
    selected_results,
    soft_label_loss,
    top1,
    train_and_evaluate,
)

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


def protocol(name: str = "hard_label", **overrides) -> dict:
    """A reference protocol at the test's normalisation, with ``overrides``."""
    return {**resolve_protocol(name, None), "mean": MEAN, "std": STD, **overrides}


# colour is the class: colour jitter would destroy it, so the learning tests switch it off
HARD = {"batch_size": 40, "lr": 0.05, "num_evals": 3, "cutmix_prob": 0.5, "color_jitter": 0.0, "lighting": 0.0}


def run(seed: int = 0, epochs: int = 6, proto: dict | None = None, val: bool = True, teacher=None) -> dict:
    train_images, train_labels = coloured_images(per_class=12, seed=1)
    test = coloured_images(per_class=10, seed=2)
    val_split = coloured_images(per_class=3, seed=3) if val else None
    return train_and_evaluate(train_images, train_labels, test, val=val_split,
                              protocol=proto or protocol(**HARD), network="convnet",
                              network_kwargs={"depth": 2, "width": 16}, num_classes=NUM_CLASSES, epochs=epochs,
                              seed=seed, device="cpu", teacher=teacher)[0]


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


@pytest.mark.parametrize("epochs, num_evals, eval_from, expected", [
    (10, 1, 0.0, [10]), (10, 3, 0.0, [3, 6, 10]), (10, 10, 0.0, list(range(1, 11))),
    (1000, 4, 0.0, [250, 500, 750, 1000]), (300, 6, 0.8, [250, 260, 270, 280, 290, 300]), (60, 3, 0.8, [52, 56, 60])])
def test_evaluation_epochs_evenly_spaced_ending_at_last(epochs, num_evals, eval_from, expected):
    assert evaluation_epochs(epochs, num_evals, eval_from) == expected


@pytest.mark.parametrize("num_evals", [0, 11])
def test_evaluation_epochs_rejects_out_of_range(num_evals):
    with pytest.raises(ValueError, match=f"num_evals {num_evals} is invalid"):
        evaluation_epochs(10, num_evals)


def test_multistep_schedule_is_idc_milestones():
    factor = lr_factor("multistep", 12, 0.2)
    assert [factor(e) for e in (0, 7, 8, 9, 10, 11)] == pytest.approx([1, 1, 0.2, 0.2, 0.04, 0.04])


def test_quarter_cosine_ends_at_half_the_learning_rate():
    factor = lr_factor("quarter_cosine", 300, 0.2)
    assert factor(0) == 1.0
    assert factor(150) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert factor(299) == pytest.approx(0.5, abs=0.01)


def test_warmup_cosine_rises_over_the_first_half_then_decays_to_zero():
    factor = lr_factor("warmup_cosine", 10, 0.2)
    values = [factor(e) for e in range(10)]
    assert values[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert values[5] == 1.0 and values[9] == pytest.approx(0.5 * (1 + math.cos(math.pi * 4 / 5)))
    assert values[5:] == sorted(values[5:], reverse=True)


def test_unknown_schedule_lists_options():
    with pytest.raises(ValueError, match="unknown schedule 'step'; valid: multistep, quarter_cosine, warmup_cosine, cosine"):
        lr_factor("step", 10, 0.2)


def test_protocol_epochs_rule_and_fixed_counts():
    assert protocol_epochs(protocol(), ipc=10, num_classes=10) == 2000
    assert protocol_epochs(protocol(epoch_scale=0.05), ipc=1, num_classes=10) == 150
    assert protocol_epochs(protocol("soft_label"), ipc=10, num_classes=1000) == 300
    assert protocol_epochs(protocol("glad", epoch_scale=1e-6), ipc=10, num_classes=10) == 1


def test_reference_protocols_carry_the_reference_settings():
    hard, soft, glad = (reference_protocols()[name] for name in ("hard_label", "soft_label", "glad"))
    assert (hard["optimizer"], hard["lr"], hard["weight_decay"], hard["batch_size"]) == ("sgd", 0.01, 5e-4, 64)
    assert (hard["color_jitter"], hard["lighting"], hard["cutmix_prob"]) == (0.4, 0.1, 1.0)
    assert (soft["optimizer"], soft["lr"], soft["weight_decay"], soft["temperature"]) == ("adamw", 1e-3, 0.01, 20.0)
    assert (soft["schedule"], soft["epochs"], soft["eval_from"]) == ("quarter_cosine", 300, 0.8)
    assert (glad["ema_decay"], glad["epochs"], glad["image_size"], glad["lr_by_arch"]) == (0.995, 1000, 128,
                                                                                           {"vgg": 1e-4})
    assert [selection_convention(p) for p in (hard, soft, glad)] == ["best", "best", "final_ema"]


def test_every_reference_protocol_sets_every_key_of_the_one_loop():
    """The loop reads every key without a default: a protocol added to protocols.yaml (or a key added to the loop)
    must be complete in every entry."""
    protocols = reference_protocols()
    keys = set(protocols["hard_label"])
    assert {name: set(p) ^ keys for name, p in protocols.items() if set(p) != keys} == {}


def test_variant_overrides_its_base_and_names_it():
    variant = resolve_protocol("hard_label_adamw", {"base": "hard_label", "optimizer": "adamw", "lr": 1e-3})
    assert variant["base"] == "hard_label" and variant["optimizer"] == "adamw" and variant["lr"] == 1e-3
    assert variant["batch_size"] == reference_protocols()["hard_label"]["batch_size"]


def test_variant_without_a_known_base_is_refused():
    with pytest.raises(ValueError, match="protocol 'mine' has no reference protocol 'mine'; set protocols.mine.base"):
        resolve_protocol("mine", {"lr": 0.1})


def test_unknown_optimizer_lists_options():
    with pytest.raises(ValueError, match=r"unknown optimizer 'lamb'; valid: sgd, adamw, adam"):
        make_optimizer("lamb", [{"params": nn.Linear(2, 2).parameters()}], 0.1, 0.9)


def test_rded_parameter_groups_exempt_biases_and_norms_from_weight_decay():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GroupNorm(4, 4), nn.Flatten(), nn.LazyLinear(2))
    model(torch.zeros(1, 3, 5, 5))
    decay, no_decay = parameter_groups(model, 0.01, no_decay_bias_norm=True)
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert {p.ndim for p in decay["params"]} == {2, 4} and {p.ndim for p in no_decay["params"]} == {1}
    assert len(parameter_groups(model, 0.01, no_decay_bias_norm=False)) == 1


def test_soft_label_loss_is_the_hand_computed_kl():
    student = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    teacher = torch.tensor([[2.0, 0.0, 1.0], [1.0, 1.0, -2.0]])
    temperature = 2.0
    p = torch.softmax(teacher / temperature, dim=1)
    log_q = torch.log_softmax(student / temperature, dim=1)
    expected = (p * (p.log() - log_q)).sum() / len(student)   # KL(p || q), batch mean
    assert soft_label_loss(student, teacher, temperature).item() == pytest.approx(expected.item(), rel=1e-6)
    assert soft_label_loss(teacher, teacher, temperature).item() == pytest.approx(0.0, abs=1e-7)


def test_selected_results_reads_the_curve_three_ways():
    curve = [{"epoch": 1, "top1": 50.0, "val_top1": 70.0}, {"epoch": 2, "top1": 60.0, "val_top1": 65.0},
             {"epoch": 3, "top1": 55.0, "val_top1": 70.0}]
    assert selected_results(curve) == {"best_top1": 60.0, "best_epoch": 2, "last_top1": 55.0,
                                       "val_selected_top1": 50.0, "val_selected_epoch": 1}
    no_val = [{**point, "val_top1": None} for point in curve]
    assert selected_results(no_val)["val_selected_top1"] is None


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
    assert reference_run["epochs"] == 6 and reference_run["selection"] == "best"
    assert reference_run["last_top1"] == curve[-1]["top1"]
    assert reference_run["best_top1"] == max(point["top1"] for point in curve) >= reference_run["last_top1"]
    best_point = next(point for point in curve if point["top1"] == reference_run["best_top1"])
    assert reference_run["best_epoch"] == best_point["epoch"]
    assert all(point["val_top1"] is not None for point in curve)
    chosen = next(point for point in curve if point["epoch"] == reference_run["val_selected_epoch"])
    assert reference_run["val_selected_top1"] == chosen["top1"]


def test_without_a_validation_split_nothing_is_val_selected():
    result = run(epochs=1, val=False)
    assert result["val_selected_top1"] is None and result["curve"][0]["val_top1"] is None


def test_training_is_deterministic_and_leaves_global_rng_alone(reference_run):
    state = torch.get_rng_state()
    assert run() == reference_run
    assert torch.equal(torch.get_rng_state(), state)


def test_seed_changes_the_run():
    assert run(seed=1, epochs=1) != run(seed=0, epochs=1)


def test_hard_label_reference_pipeline_runs_with_adamw():
    result = run(epochs=2, proto=protocol(batch_size=40, num_evals=2, optimizer="adamw", lr=0.003,
                                          weight_decay=0.01))
    assert len(result["curve"]) == 2
    assert 0.0 <= result["last_top1"] <= result["best_top1"] <= 100.0


def test_soft_labels_from_an_oracle_teacher_teach_the_colours():
    oracle = ColourOracle()
    result = run(epochs=6, proto=protocol("soft_label", batch_size=40, num_evals=2, lr=0.01, temperature=1.0),
                 teacher=lambda images: 10 * oracle(images))
    assert result["best_top1"] > 90.0
    assert [point["epoch"] for point in result["curve"]] == evaluation_epochs(6, 2, 0.8)


def test_soft_loss_without_a_teacher_is_refused():
    with pytest.raises(ValueError, match="loss 'soft' needs a teacher network"):
        run(epochs=1, proto=protocol("soft_label"))


def test_glad_protocol_tests_the_final_ema_model_once():
    result = run(epochs=3, proto=protocol("glad", batch_size=40, lr=0.01, image_size=None))
    assert result["selection"] == "final_ema"
    assert [point["epoch"] for point in result["curve"]] == [3]
    assert result["best_top1"] == result["last_top1"] == result["val_selected_top1"] == result["curve"][0]["top1"]


def test_progress_bar_reports_epochs(capsys):
    train_images, train_labels = coloured_images(per_class=1, seed=1)
    train_and_evaluate(train_images, train_labels, (train_images, train_labels), protocol=protocol(**HARD),
                       network="convnet", network_kwargs={"depth": 2, "width": 16}, num_classes=NUM_CLASSES,
                       epochs=1, seed=0, device="cpu", progress=True)
    assert "train convnet" in capsys.readouterr().err


def test_float_images_are_rejected():
    images, _ = coloured_images(per_class=1, seed=0)
    with pytest.raises(ValueError, match="images dtype torch.float32 is invalid; valid: torch.uint8"):
        predict(ColourOracle(), images.float(), MEAN, STD, batch_size=4, device="cpu")
