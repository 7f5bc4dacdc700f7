"""Tests for SFM's classifier inheritance (ims3_lgm_sfm.md §3.3): the golden head is trained once on
the full real train split and saved with its encoder; per set only the projector learns, label-free,
and with one encoder for evaluation and distillation it learns an identity-like map."""
from __future__ import annotations

import pytest
import torch

from evaluation.protocols import inheritance, linear_probe
from evaluation.protocols.networks import create_network
from evaluation.protocols.protocols import resolve_protocol
from evaluation.protocols.train import train_golden_head
from evaluation.protocols.training import normalize, to_unit_float, train_and_evaluate
from tests.test_linear_probe import TinyEncoder
from tests.test_training import MEAN, NUM_CLASSES, STD, coloured_images

GOLDEN = {"epochs": 2, "batch_size": 128, "seed": 0}


@pytest.fixture
def encoder(monkeypatch) -> TinyEncoder:
    instance = TinyEncoder()
    instance.eval()
    fake = lambda name, *, weights, teacher: instance   # noqa: E731
    monkeypatch.setattr(linear_probe, "load_encoder", fake)
    return instance


def golden_spec(encoder_name: str = "tiny") -> dict:
    ci = resolve_protocol("classifier_inheritance", None)
    return {"dataset": "digits", "encoder": encoder_name, "golden_head": GOLDEN,
            "probe_params": resolve_protocol("linear_probe", None), "protocol_params": ci}


@pytest.fixture
def golden_dir(encoder, digits_dir, tmp_path):
    out = tmp_path / "golden"
    train_golden_head(golden_spec(), digits_dir, out, "cpu")
    return out


def test_golden_head_is_the_probe_head_saved_with_its_encoder(golden_dir, encoder):
    record = torch.load(golden_dir / inheritance.GOLDEN_FILE)
    assert (record["encoder"], record["feature_dim"], record["num_classes"]) == ("tiny", TinyEncoder.feature_dim, 10)
    head = inheritance.load_golden_head(golden_dir, "tiny", 10)
    assert not any(p.requires_grad for p in head.parameters())
    assert not torch.equal(head.weight, torch.zeros_like(head.weight))


def test_golden_head_of_another_encoder_is_refused(golden_dir):
    with pytest.raises(ValueError, match="is for encoder 'tiny' and 10 classes, not 'dinov2_vitb'"):
        inheritance.load_golden_head(golden_dir, "dinov2_vitb", 10)


def test_only_the_projector_trains_and_learns_an_identity_like_map(golden_dir, encoder):
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    images, labels = coloured_images(per_class=4, seed=1)
    test = coloured_images(per_class=10, seed=2)
    proto = {**resolve_protocol("classifier_inheritance", None), "mean": MEAN, "std": STD, "rrc_scale": None,
             "lr": 0.5}
    result, model = train_and_evaluate(images, labels, test, protocol=proto, network="inherited_classifier",
                                       network_kwargs={"encoder": "tiny", "golden": str(golden_dir)},
                                       num_classes=NUM_CLASSES, epochs=300, seed=0, device="cpu")
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["projector.weight", "projector.bias"]
    assert all(torch.equal(before[k], v) for k, v in encoder.state_dict().items())
    assert torch.equal(model.classifier.weight, inheritance.load_golden_head(golden_dir, "tiny", 10).weight)
    inputs = normalize(to_unit_float(test[0], "cpu"), MEAN, STD)
    with torch.no_grad():
        projected, target = model.features(inputs), model.distilled_features(inputs)
    assert (projected - target).norm() / target.norm() < 0.1
    assert result["curve"][-1]["epoch"] == 300 and result["selection"] == "final"


def test_untrained_projector_is_far_from_identity(golden_dir, encoder):
    model = create_network("inherited_classifier", NUM_CLASSES, 16, encoder="tiny", golden=str(golden_dir)).eval()
    inputs = normalize(to_unit_float(coloured_images(per_class=2, seed=2)[0], "cpu"), MEAN, STD)
    with torch.no_grad():
        projected, target = model.features(inputs), model.distilled_features(inputs)
    assert (projected - target).norm() / target.norm() > 0.5
