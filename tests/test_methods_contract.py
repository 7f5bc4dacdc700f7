"""Contract tests walking the method registry: every registered method, present or future, must
produce IPC images per class in class order, at the dataset's image size, deterministically under
its seed, and write a valid synthetic-set artifact with a provenance manifest."""
from __future__ import annotations

import json

import pytest
import torch

from PIL import Image

from evaluation.datasets import load_split
from evaluation.synsets import read_synset
from methods.distill import distill
from methods.registry import get_method, list_methods
from tests.conftest import method_params

IPC = 2
SAMPLER = {"steps": 4, "cfg_scale": 4.0, "cfg_channels": None, "batch_size": 7}
DATA = {"digits_image_size": 16, "imagenet_image_size": 256}
MANIFEST_KEYS = {"config", "seed", "code_version", "packages", "device", "wall_time_s"}


@pytest.fixture(scope="module")
def external_set(tmp_path_factory, digits_dir):
    """An ImageFolder set made 'elsewhere': 3 real test images per class, folders named 0 … 9."""
    root = tmp_path_factory.mktemp("external")
    images, labels = load_split(digits_dir, "test")
    for c in range(10):
        (root / str(c)).mkdir()
        for i, image in enumerate(images[labels == c][:3]):
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(root / str(c) / f"img{i}.png")
    return root


def run(method, seed, out, digits_dir, tiny_backbone_dir, latents_path, required):
    """Distil with the method's schema defaults (as the DAG would after validation)."""
    spec = {"method": method, "params": method_params(method, **required.get(method, {})), "dataset": "digits",
            "sampler": SAMPLER, "data": DATA}
    spec_method = get_method(method)
    distill(spec, digits_dir, IPC, seed, out, tiny_backbone_dir if spec_method.needs_backbone else None,
            latents_path if spec_method.needs_latents else None)
    return read_synset(out, 10)


@pytest.mark.parametrize("method", list_methods())
def test_method_contract(method, tmp_path, digits_dir, tiny_backbone_dir, latents_path, external_set):
    required = {"external": {"path": str(external_set)}}  # parameters without defaults
    args = (digits_dir, tiny_backbone_dir, latents_path, required)
    images, labels = run(method, 0, tmp_path / "a", *args)
    assert images.dtype == torch.uint8 and images.shape == (10 * IPC, 3, 16, 16)
    assert labels.tolist() == [c for c in range(10) for _ in range(IPC)]
    record = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert MANIFEST_KEYS <= set(record) and record["seed"] == 0 and record["config"]["method"] == method
    again, _ = run(method, 0, tmp_path / "b", *args)
    assert torch.equal(images, again)
    assert all((tmp_path / "a" / p).read_bytes() == (tmp_path / "b" / p).read_bytes()
               for p in ["00000/0000.png", "00009/0001.png", "labels.csv"])
    other, _ = run(method, 1, tmp_path / "c", *args)
    assert torch.equal(images, other) != get_method(method).uses_seed


def test_unknown_method_lists_the_registry():
    with pytest.raises(ValueError, match="unknown method 'nope'; valid: d4m, dit, dmgd, external, mgd3, minimax, random"):
        get_method("nope")


def test_random_first_k_takes_the_first_files_of_each_class(tmp_path, digits_dir):
    spec = {"method": "random", "params": {"selection": "first_k"}, "dataset": "digits", "data": {}}
    distill(spec, digits_dir, IPC, 0, tmp_path / "s")
    images, _ = read_synset(tmp_path / "s", 10)
    train, labels = load_split(digits_dir, "train")
    first = torch.cat([train[labels == c][:IPC] for c in range(10)])
    assert torch.equal(images, first)
