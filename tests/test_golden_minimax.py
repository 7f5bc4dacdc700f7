"""Minimax fine-tuning against the official MinimaxDiffusion code (golden ``minimax_step.pt``).

One loss evaluation of ``train_dit.py`` on the golden tiny DiT: the recorded t, noise and dropout
uniforms go through the suite's randomness seam (``tests/golden.py::RecordedTraining``), the memories
are the recorded ones; the suite's network, trainable selection, γ, diffusion loss, x̂0, minimax terms
and gradients must be the official ones (README ``minimax_step.pt``; tolerances measured on CPU,
float32, one thread: see each assertion).
"""
from __future__ import annotations

import pytest
import torch

from methods.diffusion.backbone import Backbone, dit_scheduler
from methods.diffusion.losses import DiffusionLoss
from methods.diffusion.official_dit import convert_state_dict
from methods.minimax_finetune import (
    Gammas,
    Memories,
    fold,
    minimax_terms,
    training_mode,
)
from tests import golden

CASES = ("no_dropout", "dropout")
GAMMA_BLOCKS = 14   # the reference's rule (index < 14): every block of the depth-2 tiny DiT
# max over parameters of max|ours − official| / max|official|; measured (CPU, float32, 1 and 2 threads):
# diffusion 3.3e-7, minimax 8.5e-7, total 3.4e-7, in both cases
GRAD_RTOL = 5e-6


@pytest.fixture(scope="module")
def step() -> dict:
    return golden.load("minimax_step.pt")


def official_names(transformer: torch.nn.Module) -> dict[str, str]:
    """diffusers parameter name → official parameter name, read off the converter's mapping
    (``official_dit.convert_state_dict``): a converted tensor is the official tensor or a chunk of it."""
    state = golden.load("tiny_dit.pt")["state_dict"]
    storage = {t.untyped_storage().data_ptr(): name for name, t in state.items()}
    converted = convert_state_dict(state, len(transformer.transformer_blocks))
    return {name: storage[t.untyped_storage().data_ptr()] for name, t in converted.items()}


def tuned_tiny_dit():
    """The golden tiny DiT as the fine-tuning sees it: official numerics, train mode, DiffFit's
    parameters trainable, the reference's γ attached."""
    transformer = golden.official_tiny_dit("official")
    named = training_mode(transformer)
    gammas = Gammas(transformer, GAMMA_BLOCKS).attach(transformer)
    return transformer, named, gammas


def test_trainable_parameters_map_one_to_one_onto_the_reference(step):
    transformer, named, gammas = tuned_tiny_dit()
    mapping = official_names(transformer)
    images = {}
    for name in named:
        images.setdefault(mapping[name], []).append(name)
    for name, _ in gammas.named_parameters():
        images.setdefault(name, []).append(name)
    assert sorted(images) == sorted(step["trainable_names"])   # 24 official names, each hit
    assert sorted(n for n, _ in gammas.named_parameters()) == sorted(step["gamma_names"])
    for official, ours in images.items():   # one suite parameter per official one, except qkv's three chunks
        assert len(ours) == (3 if official.endswith("attn.qkv.bias") else 1), (official, ours)
    # the shared official table and t-MLP are one tied parameter each, not one per block
    assert len({id(p) for p in named.values()}) == len(named)
    assert sum(n.endswith("embedding_table.weight") for n in named) == 1
    frozen = {n for n, p in transformer.named_parameters() if not p.requires_grad}
    assert frozen and all(not n.endswith("bias") for n in frozen)


def evaluate(step: dict, case: str):
    """The suite's loss evaluation on the recorded inputs; returns what the golden case records."""
    record = step["cases"][case]
    transformer, named, gammas = tuned_tiny_dit()
    backbone = Backbone(transformer, None, dit_scheduler(), "official")
    memories = Memories(2, step["memory_size_used"])
    for c in range(2):
        memories.real[c] = step["real_memory"][c].flatten(1)
        memories.generated[c] = step["pseudo_memory"][c].flatten(1)
    randomness = golden.RecordedTraining(step["t"], step["noise"], record["dropout_uniform"])
    terms = DiffusionLoss(backbone).terms(step["x"], step["y"], randomness, record["dropout_prob"])
    pos, neg = minimax_terms(terms.x0_pred, step["ry"], memories, step["lambda_pos"], step["lambda_neg"])
    params = dict(named) | {n: p for n, p in gammas.named_parameters()}
    objectives = {"diffusion": terms.loss, "minimax": pos + neg, "total": terms.loss + pos + neg}
    grads = {}
    for kind, objective in objectives.items():
        values = torch.autograd.grad(objective, list(params.values()), retain_graph=True, allow_unused=True)
        grads[kind] = {n: (g if g is not None else torch.zeros_like(p))
                       for (n, p), g in zip(params.items(), values)}
    return terms, pos, neg, grads, randomness, transformer


def as_official(grads: dict[str, torch.Tensor], mapping: dict[str, str], name: str, rows) -> torch.Tensor:
    """The suite's gradient of the official parameter ``name``."""
    if name.startswith("blocks.") and ".gamma" in name:
        return grads[name]
    ours = [n for n in grads if mapping.get(n) == name]
    if name.endswith("attn.qkv.bias"):
        order = {"to_q": 0, "to_k": 1, "to_v": 2}
        ours.sort(key=lambda n: order[n.split(".")[-2]])
        return torch.cat([grads[n] for n in ours])
    (single,) = ours
    return grads[single][rows] if name == "y_embedder.embedding_table.weight" else grads[single]


@pytest.mark.parametrize("case", CASES)
def test_one_step_matches_the_reference(step, case):
    record = step["cases"][case]
    terms, pos, neg, grads, randomness, transformer = evaluate(step, case)
    expected_calls = ["timesteps", "noise"] + (["dropout_uniform"] if record["dropout_uniform"] is not None else [])
    assert randomness.calls == expected_calls
    assert torch.equal(terms.labels, record["model_labels"])   # DiT ids (193, 182) after dropout (1000)
    torch.testing.assert_close(terms.mse, record["mse"], rtol=1e-6, atol=1e-6)               # measured 1.2e-7
    torch.testing.assert_close(terms.vb, record["vb"], rtol=1e-6, atol=1e-7)                 # measured 4.7e-9
    torch.testing.assert_close(terms.loss, record["diffusion_loss"], rtol=1e-6, atol=1e-7)   # measured 0
    # measured 7.6e-6 = one float32 ulp at |x̂0| = 88 (t = 808: √(1/ᾱ − 1) ≈ 6 amplifies ε̂'s rounding)
    torch.testing.assert_close(terms.x0_pred, record["x0_pred"], rtol=1e-7, atol=1e-5)
    torch.testing.assert_close(pos, record["pos"], rtol=1e-6, atol=0)                         # measured 0
    torch.testing.assert_close(neg, record["neg"], rtol=1e-6, atol=0)                         # measured 0
    mapping = official_names(transformer)
    rows = step["y_embedder_grad_rows"]
    for kind in ("diffusion", "minimax", "total"):
        table = grads[kind][next(n for n in grads[kind] if mapping.get(n) == "y_embedder.embedding_table.weight")]
        others = torch.ones(len(table), dtype=torch.bool)
        others[rows] = False
        assert not table[others].any()   # only the rows of the batch's ids (and the null row) move
        assert bool(table[1000].any()) == bool(record["dropout_mask"].any())
        for name, expected in record["grads"][kind].items():
            ours = as_official(grads[kind], mapping, name, rows)
            scale = expected.abs().max()
            error = (ours - expected).abs().max() / scale
            assert error <= GRAD_RTOL, f"{case} {kind} {name}: relative error {error:.2e}"



def test_gamma_folds_into_an_ordinary_dit():
    """Random γ: the hooked model equals the folded model without hooks (≤ 1e-6)."""
    transformer, _, gammas = tuned_tiny_dit()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in gammas.parameters():
            p.copy_(1 + 0.3 * torch.randn(p.shape, generator=gen))
    tiny = golden.load("tiny_dit.pt")
    x, y, t = tiny["x"], tiny["y"], torch.full((6,), 500)
    transformer.eval()
    with torch.no_grad():
        hooked = transformer(x, timestep=t, class_labels=y).sample
        gammas.remove()
        plain = transformer(x, timestep=t, class_labels=y).sample
        fold(transformer, gammas)
        folded = transformer(x, timestep=t, class_labels=y).sample
    assert (hooked - plain).abs().max() > 1e-2   # γ matter
    torch.testing.assert_close(folded, hooked, rtol=0, atol=1e-6)   # measured 3.6e-7 (outputs up to 1.35)
