"""IMS3's registered methods (methods/ims3.py): the IM fine-tuning job is Minimax's plus the IM term (λ 0 without
label dropout is Minimax bit for bit, λ > 0 moves DiffFit's parameters only, the entry point reads the
fine-tuning's fields of an ims3 spec); S³ generates G·IPC samples per class keyed like every generating method
(subgroup g = samples g·IPC … (g+1)·IPC − 1), keeps the selected subgroup and records it; the extractors fail
fast offline and ``features: teacher`` makes the distill job take the teacher.

The kernels are tests/test_ims3_im.py (IM term) and tests/test_ims3_s3.py (selection); registry contract and
chunk invariance are tests/test_methods_contract.py.
"""
from __future__ import annotations

import json

import pytest
import torch

from evaluation.core.errors import InputError, MissingWeightsError
from evaluation.data.datasets import dataset_info
from methods.diffusion.backbone import open_backbone
from methods.distill import distill
from methods.ims3 import finetune_backbone, inversion_term
from methods.minimax_finetune import finetune, trainable_named_parameters
from methods.registry import DistillContext, get_method
from tests.conftest import SAMPLER, method_params, typed_params

DIGITS = range(10)
SMALL_SAMPLER = {**SAMPLER, "steps": 4}


def tuned(tiny_backbone_dir, latents_path, method, extra=True, **params):
    settings = typed_params(method, **{"steps": 3, "batch_size": 8, "ema_decay": 0.0, **params})
    return finetune(open_backbone(tiny_backbone_dir), torch.load(latents_path), settings, "cpu",
                    backbone_labels=DIGITS, extra_term=inversion_term(settings) if extra else None)


def test_im_term_off_is_minimax_bit_for_bit(tiny_backbone_dir, latents_path):
    ims3 = tuned(tiny_backbone_dir, latents_path, "ims3-imonly", lambda_match=0.0, label_dropout=0.0).transformer
    minimax = tuned(tiny_backbone_dir, latents_path, "minimax", extra=False, label_dropout=0.0).transformer
    assert all(torch.equal(a, b) for a, b in zip(ims3.state_dict().values(), minimax.state_dict().values()))


def test_im_term_moves_only_difffit_parameters(tiny_backbone_dir, latents_path):
    before = open_backbone(tiny_backbone_dir).transformer
    minimax = dict(tuned(tiny_backbone_dir, latents_path, "minimax", extra=False,
                         gamma_blocks=0).transformer.named_parameters())
    ims3 = dict(tuned(tiny_backbone_dir, latents_path, "ims3-imonly", lambda_match=1.0,
                      gamma_blocks=0).transformer.named_parameters())
    changed = {name for name in ims3 if not torch.equal(ims3[name], minimax[name])}
    assert changed and changed <= set(trainable_named_parameters(before))


def test_entry_point_reads_the_finetuning_fields_of_an_ims3_spec(tmp_path, tiny_backbone_dir, latents_path):
    spec = method_params("ims3", steps=1, batch_size=4, groups=2, features="teacher")
    finetune_backbone(spec, tiny_backbone_dir, latents_path, "digits", tmp_path / "out", "cpu")
    record = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert record["backbone_labels"] == list(DIGITS) and record["config"]["groups"] == 2
    assert open_backbone(tmp_path / "out").num_classes == 10
    assert get_method("ims3").finetune == get_method("ims3-imonly").finetune == "methods.ims3"
    assert get_method("ims3-s3only").finetune is None


@pytest.fixture
def torch_home(resnet18_torch_home, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(resnet18_torch_home))


def s3(digits_dir, backbone, classes=None, ipc=2, weights=None, **params):
    ctx = DistillContext(dataset_info("digits"), digits_dir, ipc, 0, typed_params("ims3-s3only", **params),
                         SMALL_SAMPLER, {}, backbone, classes=classes, encoder_weights=weights)
    return get_method("ims3-s3only").distill(ctx)


def test_s3_keeps_a_generated_subgroup_and_records_it(torch_home, digits_dir, tiny_backbone_dir):
    """Subgroup g of class c is the dit samples g·IPC … (g+1)·IPC − 1 of a run with G·IPC images per class."""
    synset = s3(digits_dir, tiny_backbone_dir, groups=3, real_per_class=5)
    ctx = DistillContext(dataset_info("digits"), digits_dir, 6, 0, typed_params("dit"), SMALL_SAMPLER, {},
                         tiny_backbone_dir)
    pool = get_method("dit").distill(ctx).images.view(10, 3, 2, 3, 16, 16)
    chosen = synset.records["s3_subgroup"]
    assert len(chosen) == 10 and all(0 <= g < 3 for g in chosen)
    assert torch.equal(synset.images, torch.cat([pool[c, g] for c, g in enumerate(chosen)]))
    assert synset.labels.tolist() == [c for c in range(10) for _ in range(2)]


def test_one_group_is_the_dit_set(torch_home, digits_dir, tiny_backbone_dir):
    synset = s3(digits_dir, tiny_backbone_dir, groups=1, real_per_class=3)
    ctx = DistillContext(dataset_info("digits"), digits_dir, 2, 0, typed_params("dit"), SMALL_SAMPLER, {},
                         tiny_backbone_dir)
    assert torch.equal(synset.images, get_method("dit").distill(ctx).images)
    assert synset.records["s3_subgroup"] == [0] * 10


def test_missing_resnet18_weights_fail_fast_naming_the_file(tmp_path, monkeypatch, digits_dir, tiny_backbone_dir):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(MissingWeightsError, match=r"resnet18-f37072fd\.pth.*offline") as err:
        s3(digits_dir, tiny_backbone_dir, groups=2, real_per_class=2)
    assert "\n" not in str(err.value)
    with pytest.raises(MissingWeightsError, match="encoders.resnet18 is /nowhere.pth, which is not a file"):
        s3(digits_dir, tiny_backbone_dir, groups=2, real_per_class=2, weights="/nowhere.pth")


def test_teacher_features_need_the_teacher(tmp_path, digits_dir, tiny_backbone_dir):
    assert get_method("ims3").encoder(method_params("ims3", features="teacher")) == "teacher"
    assert get_method("ims3").encoder(method_params("ims3")) == "resnet18"
    assert get_method("ims3-imonly").encoder(method_params("ims3-imonly")) is None
    spec = {"method": "ims3-s3only", "params": method_params("ims3-s3only", features="teacher"),
            "dataset": "digits", "sampler": SMALL_SAMPLER, "data": {}}
    with pytest.raises(InputError, match="pass --teacher DIR"):
        distill(spec, digits_dir, 1, 0, tmp_path / "out", tiny_backbone_dir)


def test_teacher_features_select_with_the_teacher_folder(tmp_path, digits_dir, tiny_backbone_dir):
    """``features: teacher`` reads the teacher loaded from --teacher DIR (train_teacher's format) and needs no
    ImageNet weights; the selection is recorded per class."""
    from evaluation.protocols.networks import create_network
    from evaluation.protocols.train import teacher_network

    torch.manual_seed(0)
    network = {"arch": "convnet", "depth": 2, "width": 16}
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    torch.save({"state_dict": create_network("convnet", 10, 16, depth=2, width=16).state_dict(), "network": network,
                "num_classes": 10, "image_size": 16, "mean": [0.5] * 3, "std": [0.25] * 3}, teacher / "model.pt")
    spec = {"method": "ims3-s3only", "params": method_params("ims3-s3only", features="teacher", groups=3,
                                                             real_per_class=4),
            "dataset": "digits", "sampler": SMALL_SAMPLER, "data": {}}
    distill(spec, digits_dir, 1, 0, tmp_path / "out", tiny_backbone_dir,
            teacher=teacher_network(teacher))   # what workflow/scripts/distill.py passes
    record = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert len(record["records"]["s3_subgroup"]) == 10 and set(record["records"]["s3_subgroup"]) <= {0, 1, 2}


@pytest.mark.parametrize("module", ["methods.minimax_finetune", "methods.ims3", "methods.minimax"])
def test_fine_tuning_entry_modules_import_first(module):
    """The finetune_backbone job imports its module before anything else (no circular import via the registry)."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
