"""Class ids on an ImageNet subset: every diffusion method, and Minimax's fine-tuning, condition the DiT
on the subset's backbone class ids (ImageWoof: 193, 182, …), never on the dataset labels 0 … 9.

A fake ImageWoof tree (tests/fake_imagenet.py) is prepared and encoded by a miniature DiT with a
1000-class label table; the labels the DiT receives are recorded by a forward pre-hook with kwargs on
every DiT built while the test runs (registered through torch's public global module-registration
hook, so no suite function is wrapped or patched).
"""
from __future__ import annotations

import contextlib

import pytest
import torch
from diffusers import DiTTransformer2DModel

from evaluation.data.datasets import dataset_info, prepare_imagenet
from methods.diffusion.backbone import Backbone, dit_scheduler, open_backbone
from methods.diffusion.latents import encode_split
from methods.diffusion.train_tiny import build_dit, build_vae
from methods.minimax_finetune import finetune
from methods.registry import DistillContext, get_method, list_methods
from tests.conftest import TINY, typed_params
from tests.fake_imagenet import make_fake_imagenet

WOOF = "imagenet_woof"
NULL = 1000
IMAGE_SIZE = 16   # VAE /2 -> 4x8x8 latents
SAMPLER = {"steps": 3, "cfg_scale": 4.0, "cfg_channels": None, "batch_size": 10}
DIFFUSION_METHODS = {"dit", "dmgd", "mgd3", "d4m", "minimax"}


@contextlib.contextmanager
def recorded_class_labels():
    """Every ``class_labels`` any DiT built inside the block receives (a set of ids)."""
    seen: set[int] = set()

    def record(module, args, kwargs):
        labels = kwargs.get("class_labels", args[2] if len(args) > 2 else None)
        seen.update(labels.flatten().tolist())

    def on_registration(module, name, submodule):
        if isinstance(module, DiTTransformer2DModel) and not getattr(module, "_records_labels", False):
            module.register_forward_pre_hook(record, with_kwargs=True)
            module._records_labels = True

    handle = torch.nn.modules.module.register_module_module_registration_hook(on_registration)
    try:
        yield seen
    finally:
        handle.remove()


@pytest.fixture(scope="module")
def woof(tmp_path_factory):
    """(data dir, 1000-class backbone dir, latents path) of a fake ImageWoof."""
    tmp = tmp_path_factory.mktemp("woof")
    root = make_fake_imagenet(tmp / "imagenet", [WOOF], train_per_class=3, val_per_class=1)
    data_dir = tmp / "data"
    prepare_imagenet(data_dir, root, dataset_info(WOOF), val_per_class=0, split_seed=0)
    torch.manual_seed(0)
    dit = build_dit(TINY, IMAGE_SIZE // 2, 1000)
    with torch.no_grad():   # a random DiT's final layer is zero: perturb it so outputs depend on the input
        for p in dit.parameters():
            p.add_(0.02 * torch.randn_like(p))
    backbone_dir = tmp / "backbone"
    Backbone(dit, build_vae(TINY, IMAGE_SIZE), dit_scheduler()).save(backbone_dir)
    latents = tmp / "latents.pt"
    torch.save(encode_split(open_backbone(backbone_dir), data_dir, IMAGE_SIZE), latents)
    return data_dir, backbone_dir, latents


def label_table(backbone: Backbone) -> torch.Tensor:
    # numerics official: one shared table (every block's table is this parameter)
    return backbone.transformer.transformer_blocks[0].norm1.emb.class_embedder.embedding_table.weight.detach().clone()


def changed_rows(before: torch.Tensor, after: torch.Tensor) -> set[int]:
    return set(torch.nonzero((before != after).any(dim=1)).flatten().tolist())


@pytest.mark.parametrize("label_dropout", [0.0, 0.1])
def test_minimax_fine_tuning_moves_exactly_the_subsets_label_rows(woof, label_dropout):
    _, backbone_dir, latents = woof
    ids = set(dataset_info(WOOF).backbone_labels)
    before = label_table(open_backbone(backbone_dir))
    # 30 latents, batch 10: each epoch sees every latent once (no drop_last remainder); 3 epochs
    params = typed_params("minimax", steps=9, batch_size=10, ema_decay=0.0, label_dropout=label_dropout)
    with recorded_class_labels() as seen:
        tuned = finetune(open_backbone(backbone_dir), torch.load(latents), params, "cpu",
                         backbone_labels=dataset_info(WOOF).backbone_labels)
    expected = ids | ({NULL} if label_dropout else set())
    assert seen == expected                       # the network saw the Woof ids (and, with dropout, null)
    assert changed_rows(before, label_table(tuned)) == expected


def test_every_diffusion_method_conditions_on_backbone_ids(woof, tmp_path, resnet18_torch_home, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(resnet18_torch_home))   # S³'s ImageNet ResNet-18
    data_dir, backbone_dir, latents = woof
    info = dataset_info(WOOF)
    ids = set(info.backbone_labels)
    tuned_dir = tmp_path / "minimax"
    finetune(open_backbone(backbone_dir), torch.load(latents), typed_params("minimax", steps=2, batch_size=10),
             "cpu", backbone_labels=info.backbone_labels).save(tuned_dir)
    methods = [m for m in list_methods() if get_method(m).needs_backbone]
    assert DIFFUSION_METHODS <= set(methods)
    for method in methods:
        spec = get_method(method)
        ctx = DistillContext(info, data_dir, 1, 0, typed_params(method), SAMPLER,
                             {"imagenet_image_size": IMAGE_SIZE}, tuned_dir if spec.finetune else backbone_dir,
                             latents if spec.needs_latents else None)
        with recorded_class_labels() as seen:
            result = spec.distill(ctx)
        assert result.labels.tolist() == list(range(info.num_classes)), method
        assert ids <= seen <= ids | {NULL}, f"{method} conditioned on {sorted(seen - ids - {NULL})}"
