"""Minimax fine-tuning of the backbone (Gu et al., CVPR 2024; vimar-gu/MinimaxDiffusion ``train_dit.py``).

DiffFit-style parameter-efficient fine-tuning on one dataset's real latents:

* trainable: every bias, every label-embedding table, every affine normalisation weight, and the
  added per-block scale parameters γ (one per channel on the attention and MLP outputs of the first
  half of the blocks, as the reference adds ``gamma`` to 14 of DiT-XL's 28 blocks). The reference
  selects by name ({bias, norm, gamma, y_embed}); in diffusers' DiT the adaLN modulation linear is
  called ``norm1.linear``, so the suite selects by module type to keep that weight frozen, as in
  the original DiT where it is ``adaLN_modulation``.
* loss: DiT's diffusion loss plus the minimax terms on the predicted x̂0, per class:
  λ_pos·(1 − max_m cos(x̂0, real_m)) (representativeness against a memory of real latents) and
  λ_neg·max_m cos(x̂0, gen_m) (diversity against a memory of earlier predictions), memories of
  ``memory_size`` per class, the class terms averaged over the classes of the batch.
* AdamW (lr 1e-3, wd 0), EMA of the weights; the EMA weights, with γ folded into the output
  projections, are saved as an ordinary diffusers DiT, so ``minimax`` samples from it like ``dit``.
* the steps checkpoint to ``<out>.ckpt`` at the checkpoint cadence and an interrupted run resumes
  from it, ending bit-identical (evaluation/checkpoint.py).

Usage: ``python -m methods.minimax_finetune --spec JSON --backbone DIR --latents FILE --out DIR``
"""
from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import LabelEmbedding
from tqdm import tqdm

from evaluation.artifacts import (
    atomic_path,
    manifest,
    resolve_device,
    write_json_atomic,
)
from evaluation.checkpoint import Checkpoint, job_identity, restore_rng, rng_state
from evaluation.cli import entry_point
from evaluation.seeding import generator

from .diffusion.backbone import Backbone, open_backbone
from .diffusion.losses import DiffusionLoss

NORMS = (torch.nn.LayerNorm, torch.nn.GroupNorm)


def gamma_sites(transformer: torch.nn.Module) -> list[tuple[torch.nn.Module, torch.nn.Linear]]:
    """(branch, its output projection) of the attention and MLP of the first half of the blocks."""
    blocks = transformer.transformer_blocks[: len(transformer.transformer_blocks) // 2]
    return [(block.attn1, block.attn1.to_out[0]) for block in blocks] + \
           [(block.ff, block.ff.net[2]) for block in blocks]


class Gammas(torch.nn.Module):
    """DiffFit's per-channel scales γ on the branch outputs of :func:`gamma_sites`."""

    def __init__(self, transformer: torch.nn.Module):
        super().__init__()
        sites = gamma_sites(transformer)
        self.scales = torch.nn.ParameterList([torch.nn.Parameter(torch.ones(out.out_features))
                                              for _, out in sites])
        self.handles = [branch.register_forward_hook(lambda m, i, o, s=s: o * s)
                        for (branch, _), s in zip(sites, self.scales)]

    def remove(self) -> None:
        """Detach the hooks (the scales are folded into a model's weights by :func:`fold`)."""
        for handle in self.handles:
            handle.remove()


def fold(transformer: torch.nn.Module, scales: list[torch.Tensor]) -> None:
    """γ·(W x + b) = (diag(γ) W) x + γ b: fold the scales into the output projections."""
    with torch.no_grad():
        for (_, layer), scale in zip(gamma_sites(transformer), scales):
            layer.weight.mul_(scale[:, None])
            if layer.bias is not None:
                layer.bias.mul_(scale)


def trainable_parameters(transformer: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Biases, label tables and affine norm weights (module docstring); everything else frozen."""
    chosen = {id(p): p for name, p in transformer.named_parameters() if name.endswith("bias")}
    for module in transformer.modules():
        if isinstance(module, LabelEmbedding):
            chosen[id(module.embedding_table.weight)] = module.embedding_table.weight
        if isinstance(module, NORMS) and module.weight is not None:
            chosen[id(module.weight)] = module.weight
    return list(chosen.values())


class Memories:
    """Per-class FIFO memories of real latents and of predicted x̂0 (flattened, unit-normalised)."""

    def __init__(self, num_classes: int, size: int):
        self.size = size
        self.real = [torch.empty(0) for _ in range(num_classes)]
        self.generated = [torch.empty(0) for _ in range(num_classes)]

    def push(self, store: list[torch.Tensor], labels: torch.Tensor, vectors: torch.Tensor) -> None:
        for c in labels.unique().tolist():
            new = F.normalize(vectors[labels == c].detach().flatten(1), dim=1)
            store[c] = torch.cat([store[c].to(new), new])[-self.size:]


def minimax_terms(x0: torch.Tensor, labels: torch.Tensor, memories: Memories) -> tuple[torch.Tensor, torch.Tensor]:
    """Representativeness 1 − max cos to real memory and diversity max cos to generated memory,
    each averaged within a class, then over the classes of the batch."""
    rep, div = [], []
    flat = F.normalize(x0.flatten(1), dim=1)
    for c in labels.unique().tolist():
        rows = flat[labels == c]
        rep.append((1.0 - (rows @ memories.real[c].T).max(dim=1).values).mean())
        if len(memories.generated[c]):
            div.append((rows @ memories.generated[c].T).max(dim=1).values.mean())
    zero = x0.new_zeros(())
    return torch.stack(rep).mean(), (torch.stack(div).mean() if div else zero)


def finetune(backbone: Backbone, latents: dict, params: dict, device: str,
             checkpoint: Checkpoint | None = None) -> Backbone:
    """Fine-tune in place on the latents artifact; returns the backbone holding the folded EMA. With
    ``checkpoint`` the steps resume from its saved state and save their own when due."""
    dit = backbone.transformer.train()
    dit.requires_grad_(False)
    ema_model = copy.deepcopy(dit).eval()  # before the γ hooks, which must not be copied
    gammas = Gammas(dit).to(device)
    ema_scales = [s.detach().clone() for s in gammas.scales]
    trainable = trainable_parameters(dit) + list(gammas.parameters())
    for p in trainable:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(trainable, lr=params["lr"], weight_decay=params["weight_decay"])
    loss_fn = DiffusionLoss(backbone)
    gen = generator(params["seed"], 5)
    mean, std, labels = latents["mean"].to(device), latents["std"].to(device), latents["labels"].to(device)
    memories = Memories(backbone.num_classes, params["memory_size"])
    for c in range(int(labels.max()) + 1):
        members = torch.nonzero(labels == c).flatten()
        pick = members[torch.randperm(len(members), generator=gen)[: params["memory_size"]].to(device)]
        memories.push(memories.real, labels[pick], mean[pick])
    # only the trained parameters change (the EMA of a frozen one stays equal to it), so only they are saved
    tuned = {name for name, p in dit.named_parameters() if p.requires_grad}
    done = 0
    state = checkpoint.load() if checkpoint is not None else None
    if state is not None:
        dit.load_state_dict(state["dit"], strict=False)
        gammas.load_state_dict(state["gammas"])
        ema_model.load_state_dict(state["ema"], strict=False)
        for s_ema, saved in zip(ema_scales, state["ema_scales"], strict=True):
            s_ema.copy_(saved)
        optimizer.load_state_dict(state["optimizer"])
        memories.real, memories.generated = ([m.to(device) for m in store] for store in state["memories"])
        restore_rng(state["rng"], gen)
        done = state["done"]
    for step in tqdm(range(done, params["steps"]), initial=done, total=params["steps"], desc="minimax",
                     mininterval=5):
        idx = torch.randint(0, len(mean), (params["batch_size"],), generator=gen).to(device)
        z = mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=gen).to(device)
        y = labels[idx]
        diffusion, x0 = loss_fn.with_prediction(z, y, gen)
        rep, div = minimax_terms(x0, y, memories)
        loss = diffusion + params["lambda_pos"] * rep + params["lambda_neg"] * div
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        memories.push(memories.real, y, z)
        memories.push(memories.generated, y, x0)
        with torch.no_grad():
            for p_ema, p in zip(ema_model.parameters(), dit.parameters()):
                p_ema.lerp_(p, 1.0 - params["ema_decay"])
            for s_ema, s in zip(ema_scales, gammas.scales):
                s_ema.lerp_(s, 1.0 - params["ema_decay"])
        if checkpoint is not None and checkpoint.due():
            checkpoint.save({"done": step + 1, "gammas": gammas.state_dict(), "ema_scales": ema_scales,
                             "dit": {k: v for k, v in dit.state_dict().items() if k in tuned},
                             "ema": {k: v for k, v in ema_model.state_dict().items() if k in tuned},
                             "optimizer": optimizer.state_dict(), "memories": (memories.real, memories.generated),
                             "rng": rng_state(gen)}, at=f"step {step + 1}")
    gammas.remove()
    fold(ema_model, ema_scales)
    backbone.transformer = ema_model.eval().requires_grad_(False)
    return backbone


@entry_point
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, help="JSON: the minimax variant's params")
    parser.add_argument("--backbone", required=True, type=Path)
    parser.add_argument("--latents", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started, params, device = time.time(), json.loads(args.spec), resolve_device(args.device)
    torch.manual_seed(params["seed"])
    checkpoint = Checkpoint.beside(args.out, job_identity("minimax_finetune", params, [args.backbone, args.latents],
                                                          device=device))
    backbone = finetune(open_backbone(args.backbone, device), torch.load(args.latents), params, device, checkpoint)
    with atomic_path(args.out) as tmp:
        backbone.save(tmp)
        write_json_atomic(tmp / "manifest.json", manifest(params, seed=params["seed"], device=device,
                                                          started=started))
    checkpoint.remove()


if __name__ == "__main__":
    main()
