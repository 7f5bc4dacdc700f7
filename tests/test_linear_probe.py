"""Tests for the linear_probe protocol and network (LGM's evaluator, ims3_lgm_sfm.md §2.4): only the
head learns, the frozen encoder stays bit-identical and in eval mode, the learning rate follows LGM's
linear batch rule, the cosine schedule reaches 0, and the reported number is the final epoch's."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from evaluation.protocols import linear_probe, training
from evaluation.protocols.networks import create_network
from evaluation.protocols.protocols import lr_factor, protocol_lr, resolve_protocol
from evaluation.protocols.training import parameter_groups, train_and_evaluate
from tests.test_training import MEAN, NUM_CLASSES, STD, coloured_images

ENCODER_SIZE = 12   # not the images' 16 px: the probe resizes


class TinyEncoder(nn.Module):
    """A frozen stand-in with BatchNorm (whose running statistics must not move) and the encoder
    interface: ``feature_dim``, ``input_size``, ``forward(x) -> (B, feature_dim)``."""

    feature_dim = 24
    input_size = ENCODER_SIZE

    def __init__(self):
        super().__init__()
        torch.manual_seed(123)
        self.body = nn.Sequential(nn.Conv2d(3, self.feature_dim, 3, padding=1), nn.BatchNorm2d(self.feature_dim),
                                  nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.modes: list[bool] = []
        self.sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.modes.append(self.training)
        self.sizes.append(x.shape[-1])
        return self.body(x)


@pytest.fixture
def encoder(monkeypatch) -> TinyEncoder:
    """Every probe built in the test gets this one encoder instance (frozen by the probe)."""
    instance = TinyEncoder()
    instance.eval()
    monkeypatch.setattr(linear_probe, "load_encoder", lambda name, *, weights, teacher: instance)
    return instance


def probe_protocol(**overrides) -> dict:
    return {**resolve_protocol("linear_probe", None), "mean": MEAN, "std": STD, **overrides}


def train_probe(epochs: int = 8, **overrides) -> tuple[dict, nn.Module]:
    images, labels = coloured_images(per_class=4, seed=1)
    test = coloured_images(per_class=10, seed=2)
    return train_and_evaluate(images, labels, test, protocol=probe_protocol(**overrides), network="linear_probe",
                              network_kwargs={"encoder": "tiny"}, num_classes=NUM_CLASSES, epochs=epochs, seed=0,
                              device="cpu")


def test_reference_protocol_is_lgm_evaluator():
    proto = resolve_protocol("linear_probe", None)
    assert (proto["optimizer"], proto["lr"], proto["lr_reference_batch"], proto["weight_decay"]) == ("adam", 0.001, 256, 0.0)
    assert (proto["schedule"], proto["epochs"], proto["batch_size"], proto["num_evals"]) == ("cosine", 1000, 100, 1)
    assert proto["rrc_scale"] == [0.08, 1.0] and proto["flip"]
    assert proto["cutmix_prob"] == 0 and proto["color_jitter"] == 0 and proto["lighting"] == 0


def test_head_is_lgm_init_and_the_only_trainable_part(encoder):
    model = create_network("linear_probe", NUM_CLASSES, 16, encoder="tiny")
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["classifier.weight", "classifier.bias"]
    assert model.classifier.weight.std().item() == pytest.approx(0.01, rel=0.3)
    assert torch.equal(model.classifier.bias, torch.zeros(NUM_CLASSES))
    groups = parameter_groups(model, 0.0, no_decay_bias_norm=False)
    assert [tuple(p.shape) for p in groups[0]["params"]] == [(NUM_CLASSES, TinyEncoder.feature_dim), (NUM_CLASSES,)]


def test_encoder_stays_frozen_and_in_eval_mode_while_the_head_learns(encoder):
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    result, model = train_probe()
    after = encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)   # weights and BatchNorm statistics
    assert encoder.modes and not any(encoder.modes)
    assert set(encoder.sizes) == {ENCODER_SIZE}                      # 16 px images resized to the encoder's side
    model.train()
    assert model.training and not model.encoder.training


def test_probe_learns_a_separable_toy(encoder):
    images, labels = coloured_images(per_class=4, seed=1)
    result, model = train_probe(epochs=30, lr=0.1)
    untrained = create_network("linear_probe", NUM_CLASSES, 16, encoder="tiny")
    inputs = training.normalize(training.to_unit_float(images, "cpu"), MEAN, STD)
    with torch.no_grad():
        loss_before = nn.functional.cross_entropy(untrained.eval()(inputs), labels).item()
        loss_after = nn.functional.cross_entropy(model(inputs), labels).item()
    assert loss_after < 0.5 * loss_before
    assert result["best_top1"] >= 80.0


def test_score_is_the_final_epoch_only(encoder):
    result, _ = train_probe(epochs=5)
    assert [point["epoch"] for point in result["curve"]] == [5]
    assert result["best_top1"] == result["last_top1"] and result["selection"] == "final"


@pytest.mark.parametrize("num_images, expected", [(10, 0.001 * 10 / 256), (100, 0.001 * 100 / 256),
                                                  (1000, 0.001 * 100 / 256)])
def test_lr_follows_lgm_linear_rule_on_the_effective_batch(num_images, expected):
    assert protocol_lr(resolve_protocol("linear_probe", None), "linear_probe", num_images) == pytest.approx(expected)


def test_lr_without_reference_batch_is_as_given():
    assert protocol_lr(resolve_protocol("hard_label", None), "convnet", 10) == 0.01


def test_training_uses_the_scaled_lr(encoder, monkeypatch):
    seen = []
    make = training.make_optimizer
    monkeypatch.setattr(training, "make_optimizer", lambda name, groups, lr, momentum: seen.append((name, lr))
                        or make(name, groups, lr, momentum))
    train_probe(epochs=1)
    assert seen == [("adam", pytest.approx(0.001 * 40 / 256))]   # 40 images < batch 100


def test_cosine_schedule_decays_to_zero():
    factor = lr_factor("cosine", 10, 0.2)
    assert factor(0) == 1.0 and factor(5) == pytest.approx(0.5) and factor(10) == pytest.approx(0.0, abs=1e-12)
    values = [factor(e) for e in range(11)]
    assert values == sorted(values, reverse=True)


@pytest.mark.parametrize("image_size", [8, 16, 64])
def test_any_image_size_is_resized_to_the_encoder_and_classifier_reads_features(encoder, image_size):
    model = create_network("linear_probe", NUM_CLASSES, image_size, encoder="tiny").eval()
    images = torch.randn(2, 3, image_size, image_size)
    logits, features = model(images), model.features(images)
    assert logits.shape == (2, NUM_CLASSES) and features.shape == (2, TinyEncoder.feature_dim)
    torch.testing.assert_close(model.classifier(features), logits)
    assert encoder.sizes == [ENCODER_SIZE, ENCODER_SIZE]


def test_unknown_encoder_fails_in_one_line():
    with pytest.raises(ValueError) as error:
        create_network("linear_probe", NUM_CLASSES, 16, encoder="resnet_dino")
    message = str(error.value)
    assert "\n" not in message and "unknown encoder 'resnet_dino'" in message and "dinov2_vitb" in message


def test_tables_describe_the_scaled_lr_and_the_final_epoch_number():
    from evaluation.report.build import describe_protocol
    text = describe_protocol("linear_probe", resolve_protocol("linear_probe", None), "final")
    assert text.startswith("adam lr 0.001 x min(batch, N) / 256, cosine schedule, batch 100, 1000 epochs")
    assert text.endswith("reported number: the final model tested once (best = last)")


@pytest.mark.parametrize("network, message", [
    ({"arch": "linear_probe", "encoder": "resnet_dino", "protocols": ["linear_probe"]},
     r"evaluation\.networks\.bad\.encoder: unknown encoder 'resnet_dino'; valid: .*teacher$"),
    ({"arch": "linear_probe", "encoder": "dinov2_vitb", "protocols": ["linear_probe"]},
     r"encoder 'dinov2_vitb' weights missing: encoders\.dinov2_vitb is not set"),
    ({"arch": "linear_probe", "encoder": "teacher", "protocols": ["linear_prob"]},
     r"evaluation\.networks\.bad\.protocols: unknown protocol 'linear_prob'; valid: classifier_inheritance"),
    ({"arch": "convnet", "protocols": ["classifier_inheritance"]},
     r"evaluation\.networks\.bad: protocol classifier_inheritance \(loss feature_mse\) needs arch inherited_classifier"),
])
def test_bad_probe_networks_fail_config_validation_in_one_line(network, message):
    from tests.test_config import default_config
    from evaluation.config.validate import validate_config
    config = default_config()
    config["evaluation"]["protocols"].append("classifier_inheritance")
    config["evaluation"]["networks"]["bad"] = network
    with pytest.raises(ValueError, match=message) as error:
        validate_config(config)
    assert "\n" not in str(error.value)


def test_teacher_probe_reads_the_teacher_folder_an_evaluate_job_is_given(digits_teacher_dir):
    """The digits stand-in as the evaluate job builds it (network settings carry the --teacher folder as a
    string): the real loader, no substitute; the probe's features are the teacher's penultimate ones."""
    from evaluation.protocols.train import teacher_network

    probe = create_network("linear_probe", NUM_CLASSES, 16, encoder="teacher", teacher=str(digits_teacher_dir))
    teacher = teacher_network(digits_teacher_dir)
    images = torch.rand(4, 3, 16, 16)
    normalised = (images - torch.tensor(linear_probe_mean()).view(1, 3, 1, 1)) / torch.tensor(
        linear_probe_std()).view(1, 3, 1, 1)
    pixels_for_teacher = (images - torch.tensor(teacher.mean).view(1, 3, 1, 1)) / torch.tensor(teacher.std).view(1, 3, 1, 1)
    torch.testing.assert_close(probe.features(normalised), teacher.network.features(pixels_for_teacher))
    assert probe.classifier.in_features == probe.encoder.feature_dim


def linear_probe_mean():
    return resolve_protocol("linear_probe", None)["mean"]


def linear_probe_std():
    return resolve_protocol("linear_probe", None)["std"]
