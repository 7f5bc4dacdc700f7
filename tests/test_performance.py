"""The opt-in ``performance`` options (bf16 autocast, torch.compile) on CPU: off they change nothing;
on they move the sampler's latents and the training loss within the stated tolerances, and the
benchmark command writes every row (a smoke run at tiny sizes, no timing asserted)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from evaluation.config.validate import validate_config
from evaluation.protocols.networks import create_network
from evaluation.protocols.training import batch_loss
from methods.diffusion.backbone import open_backbone
from methods.diffusion.randomness import seeded
from methods.diffusion.sampler import Sampler

ROOT = Path(__file__).resolve().parent.parent
SEEDS = [11, 12, 13, 14]
LABELS = torch.tensor([0, 3, 5, 9])
STEPS = 10
# bf16 keeps 8 mantissa bits (relative rounding 2^-9 = 0.2%); over 10 sampler steps of an untrained
# DiT the latents stay within 3% (relative L2), measured 0.4-0.9%
AUTOCAST_SAMPLER_TOLERANCE = 0.03
AUTOCAST_LOSS_TOLERANCE = 0.02   # one ConvNet-3 forward in bf16: measured 0.1-0.5%
COMPILE_TOLERANCE = 1e-4         # inductor reorders float32 sums only


def relative_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def sample(backbone_dir, **options) -> torch.Tensor:
    sampler = Sampler(open_backbone(backbone_dir), STEPS, 4.0, None, **options)
    return sampler.sample(LABELS, seeded(SEEDS))


def test_options_off_are_bit_identical_to_the_default(tiny_backbone_dir):
    assert torch.equal(sample(tiny_backbone_dir), sample(tiny_backbone_dir, autocast_bf16=False, compile=False))


def test_bf16_autocast_sampling_stays_within_tolerance(tiny_backbone_dir):
    plain, fast = sample(tiny_backbone_dir), sample(tiny_backbone_dir, autocast_bf16=True)
    assert fast.dtype == torch.float32
    assert not torch.equal(plain, fast)   # the option does act
    assert relative_l2(fast, plain) < AUTOCAST_SAMPLER_TOLERANCE


def training_batch(protocol_overrides: dict):
    protocol = validate_config({"profile": "t", "datasets": ["digits"], "ipcs": [1],
                                "methods": {"r": {"method": "random"}}})["protocols"]["hard_label"]
    protocol = {**protocol, "cutmix_prob": 0.0, **protocol_overrides}
    torch.manual_seed(0)
    model = create_network("convnet", 10, 16, depth=3, width=32)
    images = torch.rand(16, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(16) % 10
    return model, images, labels, protocol


def loss_of(model, images, labels, protocol) -> torch.Tensor:
    return batch_loss(model, images, labels, protocol, teacher=None, generator=torch.Generator().manual_seed(2)).detach()


def test_bf16_autocast_training_loss_stays_within_tolerance():
    model, images, labels, protocol = training_batch({})
    plain = loss_of(model, images, labels, protocol)
    fast = loss_of(model, images, labels, {**protocol, "autocast_bf16": True})
    assert fast.dtype == torch.float32
    assert abs(fast.item() - plain.item()) / plain.item() < AUTOCAST_LOSS_TOLERANCE


def test_compiled_training_forward_matches_eager():
    # a small network; the first compile on a machine takes about a minute on 2 CPU cores (inductor
    # builds its C++ kernels), later runs hit inductor's cache (15 s)
    model, images, labels, protocol = training_batch({})
    plain = loss_of(model, images, labels, protocol)
    compiled = loss_of(torch.compile(model), images, labels, protocol)
    assert abs(compiled.item() - plain.item()) / plain.item() < COMPILE_TOLERANCE


def test_compiled_sampler_matches_eager(tiny_backbone_dir):
    plain, fast = sample(tiny_backbone_dir), sample(tiny_backbone_dir, compile=True)
    assert relative_l2(fast, plain) < COMPILE_TOLERANCE


def test_benchmark_command_writes_every_row(tmp_path):
    # every figure of benchmarks/run.py at tiny sizes, the GPU check's figures too (on the CPU); about
    # 1.5 min on 2 idle cores with a cold inductor cache (figure a compiles the smallest ConvNet)
    out = tmp_path / "benchmarks.md"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--skip-e2e", "--device", "cpu",
                    "--gpu-figures", "--out", str(out)], check=True, cwd=tmp_path, capture_output=True, timeout=600)
    text = out.read_text()
    for figure in ("`dmgd` / `dit`", "`mgd3` / `dit`", "`d4m` / `dit`", "`dit` batched", "`dmgd` batched",
                   "Sinkhorn / POT", "k-means / scikit-learn", "Evaluation training",
                   "Model-batched evaluation: 2 stacked models / the same 2 one after another",
                   # the GPU check's figures, run on the CPU
                   "Device code paths on CPU", "tiny DiT forward, achieved TFLOP/s",
                   "Evaluation, model-batched (2 stacked) / one model at a time",
                   "Evaluation, the suite's loop one model at a time / per-image DataLoader",
                   "`dit` with `performance.autocast_bf16`",
                   "Evaluation with `autocast_bf16` / float32 eager, one model",
                   "Evaluation with `autocast_bf16` / float32 eager, 2 stacked",
                   "Evaluation with `compile` / float32 eager, one model",
                   "Evaluation with `compile` / float32 eager, 2 stacked"):
        assert figure in text, f"benchmarks.md lacks the row {figure!r}"
    for network in ("convnet-3 at 16 px", "resnet_ap-10 at 16 px", "resnet-18 at 16 px"):
        assert network in text
    assert "largest top-1 difference 0.00 points" in text   # stacked = one after another
    assert "--skip-e2e" in text and "No CUDA device" in text and "Failed" not in text and "In progress" not in text


def test_budget_skips_the_figures_that_would_not_fit_and_keeps_going_after_a_failure():
    import time

    from benchmarks.rows import Row
    from benchmarks.run import Step, run_steps

    def figure(name, seconds=0.0):
        def run():
            time.sleep(seconds)
            return [Row(name, "", "", "", "")]
        return run

    def failing():
        raise RuntimeError("out of memory\nmore detail")
    reports = []
    steps = [Step("first", 0.1, figure("first", 0.2)),   # twice its estimate: the pace is 2
             Step("too long", 2.0, figure("too long")),  # 2 x 2 s would end past the 3 s budget
             Step("broken", 0.1, failing), Step("last", 0.1, figure("last"))]
    rows, skipped, failed = run_steps(steps, 3.0, time.perf_counter(), lambda *state: reports.append(state))
    assert [row.figure for row in rows] == ["first", "last"]
    assert skipped == ["too long"] and failed == ["broken (RuntimeError: out of memory)"]
    assert len(reports) == 3   # after every step that ran
    assert [row.figure for row in run_steps(steps[:2], None, time.perf_counter(), lambda *state: None)[0]] == [
        "first", "too long"]   # no budget: everything runs


@pytest.mark.parametrize("on", [False, True])
def test_performance_block_is_validated(on):
    config = validate_config({"profile": "t", "datasets": ["digits"], "ipcs": [1], "methods": {"d": {"method": "dit"}},
                              "performance": {"autocast_bf16": on}})
    assert config["performance"] == {"autocast_bf16": on, "compile": False}
    with pytest.raises(ValueError, match="performance"):
        validate_config({"profile": "t", "datasets": ["digits"], "ipcs": [1], "methods": {"d": {"method": "dit"}},
                         "performance": {"fast": True}})
