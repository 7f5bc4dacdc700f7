"""Contract tests walking the method registry: every registered method, present or future, built in
or loaded from a plugin file (the toy of tests/toy_method.py joins the registry here through the
config's ``method_modules`` loader), must produce IPC images per class in class order, at the
dataset's image size, deterministically under its seed, write a valid synthetic-set artifact with a
provenance manifest, distil class chunks that merge into the unchunked set, and declare its step
windows and content-keyed parameters on fields of its parameter dataclass. The toy is registered for
this module's tests only (``plugin_registry``), so the rest of the session sees the built-ins alone."""
from __future__ import annotations

import json
import typing
from dataclasses import fields

import pytest
import torch
from PIL import Image

from evaluation.core.errors import InputError
from evaluation.data.datasets import load_split
from evaluation.data.synsets import read_synset
from methods.distill import distill
from methods.encoder.encoders import TEACHER
from methods.encoder.statistics import write_class_statistics
from methods.merge_chunks import merge_chunks
from methods.registry import get_method, list_methods
from tests.conftest import TOY_METHOD_FILE, method_params, plugin_registry

with plugin_registry(TOY_METHOD_FILE):
    CONTRACT_METHODS = list_methods()   # the built-ins and the toy plugin, parametrising the tests below

IPC = 2
SAMPLER = {"steps": 4, "cfg_scale": 4.0, "cfg_channels": None, "batch_size": 7}
DATA = {"digits_image_size": 16, "imagenet_image_size": 256}
MANIFEST_KEYS = {"config", "seed", "code_version", "packages", "device", "wall_time_s"}


@pytest.fixture(autouse=True)
def toy_plugin():
    """Every test here runs with the toy plugin registered (and only the tests here)."""
    with plugin_registry(TOY_METHOD_FILE):
        yield


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


# A method with a frozen encoder runs on the digits through the teacher stand-in at the digits' size, briefly.
DIGITS_ENCODER_PARAMS = {"encoder": "teacher", "synthetic_resolution": 16, "crop_resolution": 16, "iterations": 4,
                         "pyramid_extent_iterations": 1, "augs_per_batch": 2}


def digits_params(method: str, required: dict) -> dict:
    """The params the digits contract gives ``method``: its required ones, and the stand-in encoder's sizes."""
    return {**(DIGITS_ENCODER_PARAMS if get_method(method).encoder_param else {}), **required.get(method, {})}


def run(method, seed, out, digits_dir, tiny_backbone_dir, latents_path, required, sampler=SAMPLER, classes=None):
    """Distil with the method's schema defaults (as the DAG would after validation), given the artifacts it
    declares: backbone, latents, the teacher (encoder 'teacher'), the class statistics of its encoder."""
    params = method_params(method, **digits_params(method, required))
    spec = {"method": method, "params": params, "dataset": "digits", "sampler": sampler, "data": DATA}
    spec_method = get_method(method)
    statistics = None
    if spec_method.needs_class_statistics:
        statistics = out.with_name(f"{out.name}-statistics.pt")
        write_class_statistics("digits", digits_dir, spec_method.encoder(params), params["synthetic_resolution"],
                               params["crop_resolution"], statistics, "cpu", teacher_dir=required["teacher"])
    distill(spec, digits_dir, IPC, seed, out, tiny_backbone_dir if spec_method.needs_backbone else None,
            latents_path if spec_method.needs_latents else None, classes=classes,
            teacher_dir=required["teacher"] if spec_method.encoder(params) == TEACHER else None,
            statistics_path=statistics)
    return read_synset(out, 10, classes)


@pytest.mark.parametrize("method", CONTRACT_METHODS)
def test_method_contract(method, tmp_path, digits_dir, tiny_backbone_dir, latents_path, external_set,
                         digits_teacher_dir):
    required = {"external": {"path": str(external_set)}, "teacher": digits_teacher_dir}  # params without defaults
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
    with pytest.raises(ValueError,
                       match="unknown method 'nope'; valid: d4m, dit, dmgd, external, lgm, mgd3, minimax, random, sfm, toy"):
        get_method("nope")


@pytest.mark.parametrize("method", CONTRACT_METHODS)
def test_workflow_roles_are_fields_of_the_params(method):
    """Step windows (rescaled with the sampler's steps) are int or [lo, hi] fields, content-keyed
    parameters (a folder digested into the job's spec) str fields, of the method's own dataclass."""
    spec = get_method(method)
    hints = typing.get_type_hints(spec.params)
    names = [f.name for f in fields(spec.params)]
    assert set(spec.step_windows) | set(spec.keyed_by_content) <= set(names)
    assert list(spec.step_windows) == [name for name in names if name in spec.step_windows]   # declaration order
    assert all(hints[name] in (int, tuple[int, int]) for name in spec.step_windows)
    assert all(hints[name] is str for name in spec.keyed_by_content)


def test_field_metadata_declares_the_step_windows_and_content_keys():
    """``param(..., step_window=True)`` / ``param(..., keyed_by_content=True)`` on a field is what
    puts it in the method's ``step_windows`` / ``keyed_by_content``, in field order."""
    assert get_method("dmgd").step_windows == ("semantic_window", "guidance_window")
    assert get_method("mgd3").step_windows == ("t_stop",)
    assert get_method("toy").step_windows == ("mark_step",)
    assert get_method("external").keyed_by_content == ("path",)
    assert all(get_method(name).keyed_by_content == () for name in list_methods() if name != "external")
    assert all(get_method(name).step_windows == () for name in ("random", "dit", "d4m", "minimax", "external", "lgm",
                                                                 "sfm"))


def test_random_first_k_takes_the_first_files_of_each_class(tmp_path, digits_dir):
    spec = {"method": "random", "params": {"selection": "first_k"}, "dataset": "digits", "data": {}}
    distill(spec, digits_dir, IPC, 0, tmp_path / "s")
    images, _ = read_synset(tmp_path / "s", 10)
    train, labels = load_split(digits_dir, "train")
    first = torch.cat([train[labels == c][:IPC] for c in range(10)])
    assert torch.equal(images, first)


# Chunks: batch size 5 divides both chunks, so every sampler and decoder batch holds the same samples
# as in the unchunked run and the sets are bit-identical; with batch size 3 the batches differ
# (full: 0-2, 3-5, ...; chunk 5:10: 5-7, 8-9), which the suite promises only to float tolerance: at
# most one uint8 level per pixel and per-class records (DMGD's final OT loss, float32 Sinkhorn) to
# rtol 1e-5. Methods without a backbone (random, external) do not batch and stay bit-identical.
CHUNKS = [(0, 5), (5, 10)]


def chunk_tolerance(method: str, batch_size: int) -> int:
    """Largest uint8 difference allowed between the merged and the unchunked set."""
    aligned = all((b - a) % batch_size == 0 for a, b in CHUNKS)
    return 0 if aligned or not get_method(method).needs_backbone else 1


@pytest.mark.parametrize("batch_size", [5, 3])
@pytest.mark.parametrize("method", CONTRACT_METHODS)
def test_chunks_merge_into_the_unchunked_set(method, batch_size, tmp_path, digits_dir, tiny_backbone_dir,
                                             latents_path, external_set, digits_teacher_dir):
    args = (digits_dir, tiny_backbone_dir, latents_path,
            {"external": {"path": str(external_set)}, "teacher": digits_teacher_dir}, {**SAMPLER, "batch_size": batch_size})
    if get_method(method).joint_classes:   # all classes in one job: a chunk is refused (the workflow makes one)
        with pytest.raises(InputError, match=f"method '{method}' optimises all classes jointly and cannot distil the "
                                             "chunk 0:5"):
            run(method, 0, tmp_path / "chunk0", *args, classes=range(0, 5))
        return
    images, labels = run(method, 0, tmp_path / "full", *args)
    for a, b in CHUNKS:
        _, chunk_labels = run(method, 0, tmp_path / f"chunk{a}", *args, classes=range(a, b))
        assert chunk_labels.tolist() == [c for c in range(a, b) for _ in range(IPC)]
        assert sorted(p.name for p in (tmp_path / f"chunk{a}").iterdir() if p.is_dir()) == \
            [f"{c:05d}" for c in range(a, b)]
    merge_chunks([tmp_path / "chunk5", tmp_path / "chunk0"], "digits", tmp_path / "merged")
    merged, merged_labels = read_synset(tmp_path / "merged", 10)
    assert torch.equal(merged_labels, labels)
    assert (tmp_path / "merged" / "labels.csv").read_bytes() == (tmp_path / "full" / "labels.csv").read_bytes()
    tolerance = chunk_tolerance(method, batch_size)
    assert (merged.int() - images.int()).abs().max() <= tolerance
    full = json.loads((tmp_path / "full" / "manifest.json").read_text())
    record = json.loads((tmp_path / "merged" / "manifest.json").read_text())
    assert {k: record[k] for k in ("config", "seed", "ipc", "classes", "num_images")} == \
        {k: full[k] for k in ("config", "seed", "ipc", "classes", "num_images")}
    assert [c["classes"] for c in record["chunks"]] == [list(c) for c in CHUNKS]
    assert record["records"].keys() == full["records"].keys()
    for key, value in full["records"].items():
        if tolerance == 0:
            assert record["records"][key] == value
        else:
            assert torch.allclose(torch.tensor(record["records"][key]), torch.tensor(value), rtol=1e-5, atol=1e-6)
    if tolerance == 0:
        assert all((tmp_path / "merged" / p).read_bytes() == (tmp_path / "full" / p).read_bytes()
                   for p in ["00000/0000.png", "00004/0001.png", "00005/0000.png", "00009/0001.png"])
