"""Tests for tests/smoke_kit.py: the fake 1000-class ImageNet with every subset inside it, and the
mini DiT-XL/2 saved in the hub layout and as an official checkpoint (one network, both loadable)."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from evaluation.config.validate import load_schema
from evaluation.data.datasets import SPLITS, dataset_info, prepare, read_index
from methods.diffusion.backbone import load_backbone, open_backbone
from tests.fake_imagenet import SHORT_SIDE, LONG_SIDE_MAX, imagenet_1k_wnids, shape_image, subset_names
from tests.smoke_kit import (IMAGE_SIZE, LATENT_SIZE, MARKER, NUM_CLASSES, NUM_HEADS, SmokeKit, build_smoke_kit)
from tests.workflow_run import load_script

REPO = Path(__file__).resolve().parent.parent
TRAIN, VAL = 4, 2   # build_smoke_kit's defaults
WOOF = "imagenet_woof"


@pytest.fixture(scope="module")
def kit_and_cost(tmp_path_factory) -> tuple[SmokeKit, float]:
    root = tmp_path_factory.mktemp("smoke_kit")
    started = time.perf_counter()
    kit = build_smoke_kit(root)
    return kit, time.perf_counter() - started


@pytest.fixture(scope="module")
def kit(kit_and_cost) -> SmokeKit:
    return kit_and_cost[0]


def disk_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def test_build_is_fast_small_and_cached(kit_and_cost):
    kit, seconds = kit_and_cost
    root = kit.imagenet_root.parent
    size = disk_bytes(root)
    print(f"\nsmoke kit: built in {seconds:.1f} s, {size / 2**20:.1f} MiB in {sum(1 for _ in root.rglob('*'))} entries")
    assert seconds < 60 and size < 64 * 2**20
    marker, some_image = root / MARKER, next((kit.imagenet_root / "train").rglob("*.JPEG"))
    stamps = marker.stat().st_mtime_ns, some_image.stat().st_mtime_ns, kit.official_pt.stat().st_mtime_ns
    started = time.perf_counter()
    assert build_smoke_kit(root) == kit   # the marker guards a rebuild
    assert time.perf_counter() - started < 1.0
    assert (marker.stat().st_mtime_ns, some_image.stat().st_mtime_ns, kit.official_pt.stat().st_mtime_ns) == stamps


# ----------------------------------------------------------------------------- the ImageNet tree

def test_tree_holds_1k_with_every_subset_at_its_class_id(kit):
    wnids = imagenet_1k_wnids()
    for folder in ("train", "val"):
        assert sorted(p.name for p in (kit.imagenet_root / folder).iterdir()) == wnids
    assert len(wnids) == NUM_CLASSES and all(len(w) == 9 and w.startswith("n") for w in wnids)
    names = subset_names()
    assert {"imagenet_woof", "imagenet_nette", "imagenet_idc10", "imagenet_idc100", "imagenet_a",
            "imagenet_e"} <= set(names)
    for name in names:
        info = dataset_info(name)
        for wnid, class_id in zip(info.wnids, info.backbone_labels):
            assert wnids[class_id] == wnid, (name, wnid)   # sorted 1K order = the true ImageNet id
            assert len(list((kit.imagenet_root / "train" / wnid).glob("*.JPEG"))) == TRAIN
            assert len(list((kit.imagenet_root / "val" / wnid).glob("*.JPEG"))) == VAL


def test_images_are_varied_jpegs(kit):
    sizes = []
    for wnid in dataset_info(WOOF).wnids + dataset_info("imagenet_nette").wnids:
        for path in sorted(kit.imagenet_root.glob(f"*/{wnid}/*.JPEG")):
            with Image.open(path) as img:
                assert img.format == "JPEG" and img.mode == "RGB"
                img.load()
                sizes.append(img.size)
    assert len(sizes) == 20 * (TRAIN + VAL)
    assert all(SHORT_SIDE[0] <= min(s) and max(s) <= LONG_SIDE_MAX and s[0] != s[1] for s in sizes)
    assert sum(w > h for w, h in sizes) >= len(sizes) // 3 and sum(w < h for w, h in sizes) >= len(sizes) // 3
    assert len(set(sizes)) > len(sizes) // 2


def test_images_are_deterministic_and_class_dependent():
    assert np.array_equal(np.asarray(shape_image(193, 0, 0)), np.asarray(shape_image(193, 0, 0)))
    # the same image index of different classes: different shape/colour, so different mean colours
    means = torch.tensor(np.stack([np.asarray(shape_image(p, 0, 0), dtype=np.float32).mean((0, 1)) for p in range(8)]))
    assert torch.cdist(means, means).add(torch.eye(8) * 1e3).min() > 5
    # two images of one class differ (noise, jitter, size)
    assert shape_image(193, 0, 0).size != shape_image(193, 0, 1).size


def data_config(root: Path) -> dict:
    """The data block as the DAG passes it: schema defaults, woof.yaml's data block, a small val split."""
    schema = load_schema()["properties"]["data"]["properties"]
    data = {key: spec["default"] for key, spec in schema.items() if "default" in spec}
    data.update(yaml.safe_load((REPO / "config" / "paper" / "woof.yaml").read_text()).get("data", {}))
    return {**data, "imagenet_root": str(root), "imagenet_val_per_class": 1}


@pytest.mark.parametrize("name", [WOOF, "imagenet_1k"])
def test_prepare_follows_the_class_order(kit, tmp_path, name):
    counts = prepare(name, tmp_path, data_config(kit.imagenet_root))
    info = dataset_info(name)
    wnids = info.wnids or tuple(imagenet_1k_wnids())
    assert counts == {"train": (TRAIN - 1) * len(wnids), "val": len(wnids), "test": VAL * len(wnids)}
    for split in SPLITS:
        paths, labels = read_index(tmp_path, split)
        assert [wnids[label] for label in labels.tolist()] == [Path(p).parent.name for p in paths]
        assert labels.bincount(minlength=len(wnids)).min() >= 1
    if name == "imagenet_1k":   # woof's labels inside 1K are its ImageNet class ids
        paths, labels = read_index(tmp_path, "train")
        label_of = {Path(p).parent.name: int(y) for p, y in zip(paths, labels)}
        woof = dataset_info(WOOF)
        assert [label_of[w] for w in woof.wnids] == list(woof.backbone_labels)


# ----------------------------------------------------------------------------- the mini DiT-XL/2

def transformer_output(backbone, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 4, LATENT_SIZE, LATENT_SIZE, generator=gen)
    with torch.no_grad():
        return backbone.transformer(x, timestep=torch.tensor([999, 500, 3]),
                                    class_labels=torch.tensor([193, 0, NUM_CLASSES])).sample


def test_hub_layout_is_dit_xl_2_shaped(kit):
    index = json.loads((kit.backbone_dir / "model_index.json").read_text())
    assert index["_class_name"] == "DiTPipeline"
    assert index["transformer"][1] == "Transformer2DModel" and index["scheduler"][1] == "DDIMScheduler"
    for backbone in (load_backbone(str(kit.backbone_dir)), open_backbone(kit.backbone_dir)):
        cfg = backbone.transformer.config
        assert (backbone.num_classes, backbone.null_label, backbone.latent_shape) == (1000, 1000, (4, 32, 32))
        assert backbone.learns_sigma and cfg.patch_size == 2 and backbone.numerics == "official"
        table = backbone.transformer.transformer_blocks[0].norm1.emb.class_embedder.embedding_table
        assert table.weight.shape[0] == 1001   # 1000 classes + the null class
        assert backbone.scheduler.config.num_train_timesteps == 1000 and backbone.scheduler.config.beta_end == 0.02
        image = backbone.decode(torch.randn(2, 4, LATENT_SIZE, LATENT_SIZE))
        assert image.shape == (2, 3, IMAGE_SIZE, IMAGE_SIZE) and image.dtype == torch.uint8
        assert image.float().std() > 5
        latent = backbone.encode(torch.randint(0, 256, (1, 3, IMAGE_SIZE, IMAGE_SIZE), dtype=torch.uint8))
        assert latent.shape == (1, 4, LATENT_SIZE, LATENT_SIZE)


def test_official_checkpoint_is_the_same_network(kit, tmp_path):
    link = load_script("load_backbone")

    hub = load_backbone(str(kit.backbone_dir))
    official = load_backbone(str(kit.official_pt), vae=str(kit.vae_dir), num_heads=kit.num_heads)
    assert official.num_classes == 1000 and official.latent_shape == (4, 32, 32) and official.learns_sigma
    torch.testing.assert_close(transformer_output(official), transformer_output(hub), rtol=1e-5, atol=1e-5)
    latent = torch.randn(1, 4, LATENT_SIZE, LATENT_SIZE, generator=torch.Generator().manual_seed(1))
    assert torch.equal(official.decode(latent), hub.decode(latent))
    # through the load_backbone rule's manifest, as a profile with backbone.source: <the .pt> runs it
    link.main(["--source", str(kit.official_pt), "--vae", str(kit.vae_dir), "--num-heads", str(NUM_HEADS),
               "--out", str(tmp_path / "linked")])
    torch.testing.assert_close(transformer_output(open_backbone(tmp_path / "linked")), transformer_output(hub),
                               rtol=1e-5, atol=1e-5)
    assert torch.load(kit.official_pt, weights_only=True)["y_embedder.embedding_table.weight"].shape == (1001, 32)


def test_outputs_depend_on_inputs_and_samples_stay_bounded(kit):
    from methods.diffusion.randomness import seeded
    from methods.diffusion.sampler import Sampler

    backbone = load_backbone(str(kit.backbone_dir))
    x = torch.randn(2, 4, LATENT_SIZE, LATENT_SIZE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        def eps(x, t, y):
            return backbone.transformer(x, timestep=torch.tensor([t] * len(x)), class_labels=torch.tensor(y)).sample
        base = eps(x, 500, [1, 2])
        assert (eps(x.flip(0), 500, [1, 2]) - base).abs().mean() > 0.1
        assert (eps(x, 500, [3, 4]) - base).abs().mean() > 1e-3
        assert (eps(x, 20, [1, 2]) - base).abs().mean() > 1e-3
    latents = Sampler(backbone, steps=10, cfg_scale=4.0, cfg_channels=3).sample(torch.tensor([193, 0]), seeded([0, 1]))
    assert torch.isfinite(latents).all() and latents.std() < 10   # a random DiT's samples reach hundreds


def test_kit_files_are_where_the_dataclass_says(kit):
    assert kit.official_pt.is_file() and (kit.vae_dir / "config.json").is_file()
    for sub in ("transformer", "vae", "scheduler"):
        assert (kit.backbone_dir / sub).is_dir()
    assert not os.path.exists(kit.backbone_dir / "backbone.json")   # a hub snapshot records no numerics
