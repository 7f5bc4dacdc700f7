"""Model-batched evaluation (evaluation/protocols/stacked_training.py): R repeats trained as one stacked
model give, per repeat, what training each alone gives: same curves, weights to float tolerance,
under every protocol feature the stack must keep per model (CutMix draws, soft labels, EMA,
batch-norm statistics, AdamW's no-decay split, frozen encoders), and resume bit-identically."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from evaluation.core.checkpoint import Checkpoint
from evaluation.protocols.protocols import resolve_protocol
from evaluation.protocols.stacked_training import (
    shared_frozen_parameters,
    stackable,
    stacked_forward,
    train_and_evaluate_repeats,
    train_stacked,
)
from evaluation.protocols.training import initial_model, train_and_evaluate

NUM_CLASSES, SIZE, SEEDS = 4, 8, [11, 12, 13]


def images(per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images whose class is a colour, plus noise."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(NUM_CLASSES).repeat_interleave(per_class)
    colours = torch.tensor([[40, 40, 40], [215, 40, 40], [40, 215, 40], [40, 40, 215]], dtype=torch.float)
    noise = torch.randn(len(labels), 3, SIZE, SIZE, generator=gen) * 30
    return (colours[labels][:, :, None, None] + noise).clamp(0, 255).to(torch.uint8), labels


def protocol(base: str, **overrides) -> dict:
    return {**resolve_protocol(base, None), "num_evals": 2, **overrides}


def one_at_a_time(train, test, settings, seeds=SEEDS):
    return [train_and_evaluate(*train, test, seed=seed, device="cpu", **settings) for seed in seeds]


def stacked(train, test, settings, seeds=SEEDS, checkpoint=None, forward="vmap"):
    models = [initial_model(settings["network"], settings["num_classes"], SIZE, settings["network_kwargs"], seed)
              for seed in seeds]
    rest = {k: v for k, v in settings.items() if k not in ("network_kwargs", "num_classes")}
    return train_stacked(models, *train, test, seeds=seeds, device="cpu", checkpoint=checkpoint, forward=forward,
                         **rest)


def teacher():
    torch.manual_seed(5)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * SIZE * SIZE, NUM_CLASSES)).eval()
    return lambda x: net(x)


CASES = {
    # IDC's hard-label pipeline: RRC, flip, jitter, lighting, CutMix on every batch, SGD, multistep
    "hard_label convnet instance norm": (protocol("hard_label"), "convnet", {"depth": 2, "width": 8}, None),
    # CutMix drawn per batch with probability 1/2: models mix different batches
    "cutmix half the batches": (protocol("hard_label", cutmix_prob=0.5), "convnet", {"depth": 2, "width": 8}, None),
    # RDED's soft labels (AdamW with the no-decay split, quarter cosine, shuffled patches), batch norm
    "soft_label batch norm": (protocol("soft_label", num_evals=2, eval_from=0.0), "convnet",
                              {"depth": 2, "width": 8, "norm": "batch"}, teacher()),
    # GLaD: DSA and the EMA of the weights is the evaluated model
    "glad ema dsa": (protocol("glad"), "convnet", {"depth": 2, "width": 8}, None),
    # the EMA averages batch-norm statistics too (use_buffers), integer num_batches_tracked included
    "glad ema batch norm": (protocol("glad"), "convnet", {"depth": 2, "width": 8, "norm": "batch"}, None),
}


@pytest.mark.parametrize("forward", ["vmap", "loop"])
@pytest.mark.parametrize("case", list(CASES))
def test_stacked_repeats_equal_one_at_a_time(case, forward):
    """vmap's mapped kernels sum in another order (float tolerance); the loop forward runs each
    model's own kernels and is bit-identical."""
    settings_protocol, network, kwargs, soft_teacher = CASES[case]
    train, test = images(6, 0), images(5, 1)
    settings = dict(protocol=settings_protocol, network=network, network_kwargs=kwargs, num_classes=NUM_CLASSES,
                    epochs=4, teacher=soft_teacher)
    alone = one_at_a_time(train, test, settings)
    together, stack = stacked(train, test, settings, forward=forward)
    tolerance = {"rtol": 1e-4, "atol": 1e-5} if forward == "vmap" else {"rtol": 0, "atol": 0}
    for r, ((result, model), mine) in enumerate(zip(alone, together)):
        assert [p["top1"] for p in mine["curve"]] == [p["top1"] for p in result["curve"]]
        assert {k: v for k, v in mine.items() if k != "curve"} == {k: v for k, v in result.items() if k != "curve"}
        for name, tensor in model.state_dict().items():   # the evaluated model: the EMA's under glad
            torch.testing.assert_close(stack[name][r], tensor, **tolerance, msg=f"{case}: repeat {r} {name}")


def test_results_are_each_repeats_own():
    """A repeat's result does not depend on which other repeats share its stack."""
    settings = dict(protocol=protocol("hard_label"), network="convnet", network_kwargs={"depth": 2, "width": 8},
                    num_classes=NUM_CLASSES, epochs=3)
    train, test = images(6, 0), images(5, 1)
    full, _ = stacked(train, test, settings)
    pair, _ = stacked(train, test, settings, seeds=SEEDS[1:])
    assert full[1:] == pair
    assert full[0]["curve"] != full[1]["curve"] or full[0] != full[1]


def test_stacked_forward_is_vmap_on_cuda_and_loop_on_cpu():
    assert stacked_forward("auto", "cuda:0") == "vmap" and stacked_forward("auto", "cpu") == "loop"
    assert stacked_forward("loop", "cuda") == "loop"
    with pytest.raises(ValueError, match="stacked forward 'grouped' is unknown; valid: auto, vmap, loop"):
        stacked_forward("grouped", "cpu")


def test_stacked_job_resumes_bit_identically(tmp_path):
    """Killed after an epoch's checkpoint, the stacked job resumes to the uninterrupted results."""
    settings = dict(protocol=protocol("hard_label"), network="convnet", network_kwargs={"depth": 2, "width": 8},
                    num_classes=NUM_CLASSES, epochs=4)
    train, test = images(6, 0), images(5, 1)
    whole, whole_stack = stacked(train, test, settings)

    class StopAfter(Checkpoint):
        def save(self, state, at):
            super().save(state, at)
            if state["epoch"] == 2:
                raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        stacked(train, test, settings, checkpoint=StopAfter(tmp_path / "job.ckpt", "id", interval_s=0))
    resumed, resumed_stack = stacked(train, test, settings, checkpoint=Checkpoint(tmp_path / "job.ckpt", "id", 0))
    assert resumed == whole
    for name, tensor in whole_stack.items():
        assert torch.equal(resumed_stack[name], tensor), name


def test_dispatch_trains_unstackable_networks_one_after_another(tmp_path):
    """Dropout (random draws from the global stream) is trained repeat by repeat, as alone; so is
    every network under stack=False; both resume from the job's one checkpoint."""
    dropout = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(3, 2))
    assert not stackable(dropout, protocol("hard_label"))
    assert not stackable(nn.Linear(3, 2), protocol("hard_label", loss="feature_mse"))
    settings = dict(protocol=protocol("hard_label"), network="convnet", network_kwargs={"depth": 2, "width": 8},
                    num_classes=NUM_CLASSES, epochs=2)
    train, test = images(4, 0), images(3, 1)
    alone = [result for result, _ in one_at_a_time(train, test, settings, SEEDS[:2])]
    assert train_and_evaluate_repeats(*train, test, seeds=SEEDS[:2], device="cpu", stack=False,
                                      **settings) == (alone, 1)
    checkpoint = Checkpoint(tmp_path / "seq.ckpt", "id", interval_s=0)
    assert train_and_evaluate_repeats(*train, test, seeds=SEEDS[:2], device="cpu", stack=False,
                                      checkpoint=checkpoint, **settings) == (alone, 1)
    # every repeat done: read back from the checkpoint
    assert train_and_evaluate_repeats(*train, test, seeds=SEEDS[:2], device="cpu", checkpoint=checkpoint,
                                      stack=False, **settings) == (alone, 1)
    stacked_results, together = train_and_evaluate_repeats(*train, test, seeds=SEEDS[:2], device="cpu", **settings)
    assert together == 2 and [r["curve"] for r in stacked_results] == [r["curve"] for r in alone]


def test_frozen_parameters_are_shared_only_when_equal():
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    for model in (a, b):
        model.weight.requires_grad_(False)
    assert not shared_frozen_parameters([a, b])
    b.weight.data.copy_(a.weight.data)
    assert shared_frozen_parameters([a, b])


def test_linear_probe_repeats_share_the_frozen_encoder_and_equal_one_at_a_time(monkeypatch):
    """LGM's probe: only the heads are stacked; the frozen encoder (batch norm in eval mode) is kept
    once and stays bit-identical; every repeat's curve and head equal its run alone."""
    from evaluation.protocols import linear_probe
    from tests.test_linear_probe import MEAN, STD, TinyEncoder

    monkeypatch.setattr(linear_probe, "load_encoder", lambda name, *, weights, teacher: TinyEncoder().eval())
    settings = dict(protocol={**resolve_protocol("linear_probe", None), "mean": MEAN, "std": STD},
                    network="linear_probe", network_kwargs={"encoder": "tiny"}, num_classes=NUM_CLASSES, epochs=3)
    train, test = images(6, 0), images(5, 1)
    alone = one_at_a_time(train, test, settings)
    together, stack = stacked(train, test, settings)
    assert set(stack) == {"classifier.weight", "classifier.bias", "encoder.body.1.running_mean",
                          "encoder.body.1.running_var", "encoder.body.1.num_batches_tracked"}
    reference = TinyEncoder().eval()
    torch.testing.assert_close(stack["encoder.body.1.running_mean"][0], reference.body[1].running_mean, rtol=0, atol=0)
    for r, ((result, model), mine) in enumerate(zip(alone, together)):
        assert mine == result
        torch.testing.assert_close(stack["classifier.weight"][r], model.classifier.weight, rtol=1e-4, atol=1e-6)
