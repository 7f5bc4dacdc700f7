"""Shared fixtures: offline Hugging Face, a tiny untrained backbone saved to disk, prepared digits,
and the test profile run end to end."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # hub lookups fail at once instead of retrying for ~45 s

import pytest
import torch

from evaluation.config.validate import validate_config
from evaluation.data.datasets import prepare_digits
from methods.diffusion.backbone import Backbone, dit_scheduler, open_backbone
from methods.diffusion.latents import encode_split
from methods.diffusion.train_tiny import build_dit, build_vae
from methods.registry import LOADED_MODULES, METHODS, load_method_modules
from tests.workflow_run import TEST_PROFILE, snakemake

# A method file outside methods/, loaded only through the plugin loader (config method_modules)
TOY_METHOD_FILE = Path(__file__).resolve().with_name("toy_method.py")


@contextmanager
def plugin_registry(*paths: Path) -> Iterator[None]:
    """The method registry with the plugin files ``paths`` loaded (``method_modules``), put back as it
    was on exit, in place: outside the tests that ask for a plugin, the session's registry holds the
    built-in methods only, whatever the order the tests run in."""
    methods, loaded = dict(METHODS), dict(LOADED_MODULES)
    try:
        load_method_modules([str(path) for path in paths])
        yield
    finally:
        METHODS.clear()
        METHODS.update(methods)
        LOADED_MODULES.clear()
        LOADED_MODULES.update(loaded)

DEFAULT_SMOKE_TESTS = {"test_smoke_woof", "test_every_paper_profile_has_its_smoke_test"}


def pytest_collection_modifyitems(config, items):
    """Without a -m expression, the smoke tests run Woof only (each profile takes minutes);
    `pytest -m smoke` selects all of them (.ci/run)."""
    if config.option.markexpr:
        return
    skipped = [item for item in items if item.get_closest_marker("smoke") and item.name not in DEFAULT_SMOKE_TESTS]
    if skipped:
        config.hook.pytest_deselected(items=skipped)
        items[:] = [item for item in items if item not in skipped]


# one batch holds one sample of each of the 10 digit classes: the round batching greedy matching uses,
# so that every diffusion method's batches equal dit's and "reduces to dit" can be bit-exact
SAMPLER = {"steps": 10, "cfg_scale": 4.0, "cfg_channels": None, "batch_size": 10}

TINY = dict(vae_channels=[8, 16], latent_channels=4, dit_layers=2, dit_heads=2, dit_head_dim=8,
            dit_patch_size=2)


@pytest.fixture(scope="session")
def tiny_backbone_dir(tmp_path_factory):
    """An untrained 16 px backbone (VAE /2 -> 4x8x8 latents, 2-block DiT, 10 classes) on disk."""
    torch.manual_seed(0)
    vae = build_vae(TINY, 16)
    dit = build_dit(TINY, 8, 10)
    # a random DiT's final layer is zero-initialised; perturb it so outputs depend on the input
    with torch.no_grad():
        for p in dit.parameters():
            p.add_(0.02 * torch.randn_like(p))
    path = tmp_path_factory.mktemp("backbone") / "tiny"
    Backbone(dit, vae, dit_scheduler()).save(path)
    return path


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "digits"
    prepare_digits(path, image_size=16, test_fraction=0.2, split_seed=0)
    return path


@pytest.fixture(scope="session")
def latents_path(tmp_path_factory, digits_dir, tiny_backbone_dir):
    """The real-latents artifact of the digits under the tiny backbone."""
    path = tmp_path_factory.mktemp("latents") / "tiny.pt"
    torch.save(encode_split(open_backbone(tiny_backbone_dir), digits_dir, None), path)
    return path


@pytest.fixture(scope="session")
def digits_teacher_dir(tmp_path_factory):
    """An untrained 16 px ConvNet-2 saved in ``train_teacher``'s format (the encoder methods' stand-in)."""
    from evaluation.protocols.networks import create_network

    torch.manual_seed(0)
    network = {"arch": "convnet", "depth": 2, "width": 8}
    model = create_network("convnet", 10, 16, depth=2, width=8)
    path = tmp_path_factory.mktemp("teacher")
    torch.save({"state_dict": model.state_dict(), "network": network, "num_classes": 10, "image_size": 16,
                "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}, path / "model.pt")
    return path


def method_params(method: str, **overrides) -> dict:
    """A method's parameters with the schema's defaults filled in, as the DAG passes them."""
    config = {"profile": "t", "datasets": ["digits"], "ipcs": [1],
              "methods": {"m": {"method": method, "params": overrides}}}
    return validate_config(config)["methods"]["m"]["params"]


def typed_params(method: str, **overrides) -> object:
    """:func:`method_params` as the method's parameter dataclass, as a distillation job reads them."""
    from methods.registry import get_method
    return get_method(method).parse_params(method_params(method, **overrides))


@pytest.fixture(scope="session")
def digits_context(digits_dir, tiny_backbone_dir, latents_path):
    """``make(method, ipc=2, **params)``: a DistillContext on the digits with the tiny backbone."""
    from evaluation.data.datasets import dataset_info
    from methods.registry import DistillContext

    def make(method: str, ipc: int = 2, **params) -> DistillContext:
        return DistillContext(dataset_info("digits"), digits_dir, ipc, 0, typed_params(method, **params), SAMPLER,
                              {}, tiny_backbone_dir, latents_path)
    return make


@pytest.fixture(scope="session")
def test_profile_run(tmp_path_factory):
    """``(results, workdir)`` of the test profile run end to end in a fresh work directory, once per
    session: tests/test_workflow.py inspects it, tests/test_resume.py compares an interrupted run with it."""
    workdir = tmp_path_factory.mktemp("workflow")
    proc = snakemake(workdir, "--cores", "2", "--configfile", str(TEST_PROFILE))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir / "results" / "test", workdir
