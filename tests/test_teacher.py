"""Tests for the teacher network: torchvision's pretrained ResNet-18 restricted to a subset's classes
(RDED's soft-label teacher), read from torchvision's cache or ``teacher.weights``, its offline errors,
and the soft-label teacher wrapper."""
from __future__ import annotations

import json

import pytest
import torch
import torchvision

from evaluation.data.datasets import dataset_info
from evaluation.protocols.protocols import resolve_protocol
from evaluation.protocols.train import (
    load_teacher,
    pretrained_teacher,
    soft_label_teacher,
    torchvision_weights_file,
)
from tests.standin_weights import write_resnet_standin

NETWORK = {"arch": "resnet", "depth": 18, "norm": "batch"}
SPEC = {"dataset": "imagenet_woof", "teacher": {"source": "torchvision", "network": NETWORK},
        "protocol_params": resolve_protocol("soft_label", None)}


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


def test_pretrained_teacher_is_torchvision_resnet18_on_the_subset_rows(torch_home, tmp_path):
    torch.manual_seed(0)
    reference = torchvision.models.resnet18().eval()   # random weights stand in for ImageNet's
    path, _ = torchvision_weights_file(NETWORK)
    assert path == torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    pretrained_teacher(SPEC, tmp_path / "data", tmp_path / "teacher", "cpu")
    teacher, record = load_teacher(tmp_path / "teacher")
    assert record["num_classes"] == 10 and record["image_size"] == 224
    images = torch.randn(2, 3, 224, 224)
    rows = list(dataset_info("imagenet_woof").backbone_labels)
    with torch.no_grad():
        assert torch.allclose(teacher(images), reference(images)[:, rows], atol=1e-5)


def test_missing_weights_fail_in_one_line_naming_file_and_url(torch_home, tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        pretrained_teacher(SPEC, tmp_path / "data", tmp_path / "teacher", "cpu")
    message = str(err.value)
    assert "\n" not in message and "resnet18-f37072fd.pth" in message and "https://" in message
    assert str(torch_home) in message
    assert not (tmp_path / "teacher").exists()


def test_teacher_weights_option_reads_a_state_dict_anywhere_and_records_it(torch_home, tmp_path):
    path = write_resnet_standin(tmp_path / "elsewhere" / "my-resnet18.pth")   # torchvision's cache is empty
    spec = {**SPEC, "teacher": {**SPEC["teacher"], "weights": str(path)}}
    assert pretrained_teacher(spec, tmp_path / "data", tmp_path / "teacher", "cpu") == {"weights": str(path)}
    teacher, record = load_teacher(tmp_path / "teacher")
    reference = torchvision.models.resnet18().eval()
    reference.load_state_dict(torch.load(path))
    images = torch.randn(2, 3, 224, 224)
    rows = list(dataset_info("imagenet_woof").backbone_labels)
    with torch.no_grad():
        logits = teacher(images)
        assert logits.shape == (2, 10) and torch.allclose(logits, reference(images)[:, rows], rtol=1e-4, atol=1e-3)
    manifest = json.loads((tmp_path / "teacher" / "manifest.json").read_text())
    assert manifest["weights"] == str(path) and manifest["config"]["teacher"]["weights"] == str(path)


def test_a_missing_configured_teacher_file_is_one_line_naming_path_and_key(torch_home, tmp_path):
    path = tmp_path / "nowhere" / "resnet.pth"
    spec = {**SPEC, "teacher": {**SPEC["teacher"], "weights": str(path)}}
    with pytest.raises(FileNotFoundError) as err:
        pretrained_teacher(spec, tmp_path / "data", tmp_path / "teacher", "cpu")
    message = str(err.value)
    assert "\n" not in message and str(path) in message and "teacher.weights" in message
    assert "resnet18-f37072fd.pth" in message and not (tmp_path / "teacher").exists()


def test_soft_label_teacher_resizes_batches_to_its_resolution(tmp_path):
    from evaluation.protocols.networks import create_network

    model = create_network("convnet", 10, 16, depth=2, width=8)
    protocol = resolve_protocol("soft_label", None)
    (tmp_path / "t").mkdir()
    torch.save({"state_dict": model.state_dict(), "network": {"arch": "convnet", "depth": 2, "width": 8},
                "num_classes": 10, "image_size": 16, "mean": protocol["mean"], "std": protocol["std"]},
               tmp_path / "t" / "model.pt")
    logits = soft_label_teacher(tmp_path / "t", protocol, "cpu")
    assert logits(torch.randn(3, 3, 32, 32)).shape == (3, 10)
    with pytest.raises(ValueError, match="use one normalisation for both"):
        soft_label_teacher(tmp_path / "t", {**protocol, "mean": [0.5, 0.5, 0.5]}, "cpu")
