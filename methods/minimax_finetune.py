"""Minimax fine-tuning of the backbone (Gu et al., CVPR 2024; vimar-gu/MinimaxDiffusion ``train_dit.py``).

What the reference does, and how the suite does it (``reference/golden/README.md``, ``minimax_step.pt``,
pins one loss evaluation and its gradients: ``tests/test_golden_minimax.py``):

* **Conditioning.** The reference's ``ImageFolder`` returns each image's dataset label ``ry`` and its
  DiT class id ``y``; the network is conditioned on ``y`` (ImageWoof: 193, 182, …), the memories and
  terms are grouped by ``ry``. So here: the network sees ``backbone_labels[ry]`` (the dataset's ids in
  the backbone's label table, ``dataset_info(name).backbone_labels``), the memories are keyed by the
  dataset label.
* **Label dropout.** ``model.train()`` turns on DiT's ``LabelEmbedder.token_drop``: u = rand(B), rows with
  u < 0.1 see the null class (row ``num_classes``). Param ``label_dropout`` (0.1), the uniforms drawn
  through the randomness seam (``TrainingRandomness.dropout_uniform``) after t and the noise, as the
  official order.
* **Trainable parameters** (``mark_difffit_trainable``): names containing bias, norm, gamma or y_embed.
  In DiT the LayerNorms have no affine parameters (``norm`` matches nothing there) and ``pos_embed``
  is frozen; so: every bias (adaLN modulation, attention, MLP, patch embedding, t-MLP, final layer),
  the whole label table (null row included) and the γ. diffusers calls the adaLN modulation linear
  ``norm1.linear``, whose weight a name filter would wrongly pick, so :func:`trainable_named_parameters`
  selects biases by name and label tables / affine norm weights by module type; the selection maps
  one-to-one onto the reference's names (``tests/test_golden_minimax.py``).
* **Shared parameters.** The official DiT has one label table and one t-MLP; with ``numerics:
  official`` the backbone ties diffusers' per-block copies into one parameter (``official_dit``), so
  the optimiser, the EMA and the checkpoints see it once and its gradient is the official one. With
  ``numerics: diffusers`` the copies stay independent parameters and are fine-tuned separately (that
  named variant's documented difference).
* **γ** (``models.py``, blocks with index < 14 of DiT-XL/2, param ``gamma_blocks``): per block
  ``gamma1`` (H, attention branch), ``gamma2`` (H, MLP branch), ``attn.gamma1`` (3H, the fused qkv
  output [q; k; v] before the split) and ``attn.gamma2`` (H, the attention output projection), all
  initialised to 1 (:class:`Gammas`, reference names). They act through forward hooks (slices of one 3H
  parameter on to_q/to_k/to_v) and are folded exactly into the weights at the end (:func:`fold`), so the
  saved backbone is an ordinary diffusers DiT that ``minimax`` samples like ``dit``.
* **Loss** (``train_dit.py`` under ``--condense``): DiT's hybrid diffusion loss (``losses.py``, official
  arithmetic) plus, over the distinct dataset labels c of the batch (num = their count) whose pseudo
  memory is non-empty, with P = the rows of x̂0 (not detached) of class c:
  pos = Σ_c (1 − min over the whole |P|×|real_c| cosine matrix)·λ_pos/num (raise the least similar
  pair) and neg = Σ_c (max over the whole |P|×|pseudo_c| matrix)·λ_neg/num (:func:`minimax_terms`).
* **Memories.** Empty at the start; after each step, for every class c of the batch, the rows of the
  clean latents x[ry = c] are appended to c's real memory and the rows of x̂0[ry = c] (detached) to its
  pseudo memory, the oldest dropped beyond ``memory_size`` (64). Raw vectors are stored; the cosine is
  computed at use (:class:`Memories`). A class therefore first gets terms at its second batch.
* **Optimiser and EMA.** AdamW (lr 1e-3, wd 0) over the trainable parameters, EMA of the weights
  (0.9999); the EMA weights, γ folded, are saved (the reference's ``sample.py`` loads the EMA).
* **Data.** The reference shuffles the dataset every epoch (``DistributedSampler``, drop_last) and
  encodes each image with ``latent_dist.sample()``; here batches walk a seeded per-epoch permutation of
  the real latents (drop_last) and each latent is a seeded posterior sample (mean + std·ε).
* **Checkpoints.** The steps checkpoint to ``<out>.ckpt`` at the checkpoint cadence and an interrupted
  run resumes from it, ending bit-identical (evaluation/core/checkpoint.py).

Deliberate remaining differences from the reference: the latents are of the un-flipped image (the
reference flips images at random before encoding; the suite encodes each image once); the random
values come from the suite's seeded streams (the reference's global RNG, per DDP rank); one process
instead of DDP (the reference's global batch of 8 is one batch here); the EMA is updated only on
trainable parameters (the reference lerps every parameter, a no-op on frozen ones).

Run by rule ``finetune_backbone`` (:func:`finetune_backbone`): ``python workflow/scripts/finetune_backbone.py
--module methods.minimax_finetune --spec JSON --backbone DIR --latents FILE --dataset NAME --out DIR``
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from tqdm import tqdm

from evaluation.core.artifacts import atomic_path, manifest, write_manifest
from evaluation.core.checkpoint import Checkpoint, job_identity, restore_rng, rng_state
from evaluation.core.errors import InputError
from evaluation.core.seeding import MethodStream, generator
from evaluation.data.datasets import dataset_info

from .diffusion.backbone import Backbone, disable_label_dropout, open_backbone
from .diffusion.latents import load_latents
from .diffusion.losses import DiffusionLoss, LossTerms
from .diffusion.randomness import SeededTraining, TrainingRandomness
from .minimax_params import MinimaxParams

NORMS = (torch.nn.LayerNorm, torch.nn.GroupNorm)

# A loss term added to every step by a method that extends the fine-tuning (IMS3's inversion matching,
# methods/ims3.py): (the step's loss function, its loss evaluation, the clean latents x, the class ids
# the network is conditioned on before label dropout, the step's randomness, drawn after the loss's own
# draws) -> a scalar with gradient. Minimax has none.
ExtraTerm = Callable[[DiffusionLoss, LossTerms, torch.Tensor, torch.Tensor, TrainingRandomness], torch.Tensor]


# ----------------------------------------------------------------------------- γ

class _AttentionGammas(torch.nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.gamma1 = torch.nn.Parameter(torch.ones(3 * hidden))   # [q; k; v] scales of the fused qkv output
        self.gamma2 = torch.nn.Parameter(torch.ones(hidden))       # attention output projection


class _BlockGammas(torch.nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.gamma1 = torch.nn.Parameter(torch.ones(hidden))       # attention branch
        self.gamma2 = torch.nn.Parameter(torch.ones(hidden))       # MLP branch
        self.attn = _AttentionGammas(hidden)


class Gammas(torch.nn.Module):
    """The reference's γ of the blocks with index < ``gamma_blocks``, with its parameter names
    (``blocks.b.gamma1``, ``blocks.b.gamma2``, ``blocks.b.attn.gamma1``, ``blocks.b.attn.gamma2``).

    :meth:`attach` makes a diffusers DiT compute the reference's ``DiTBlock`` with them (forward hooks:
    each of to_q/to_k/to_v scaled by its third of the one 3H ``attn.gamma1``, to_out.0 by
    ``attn.gamma2``, the attention branch by ``gamma1``, the feed-forward branch by ``gamma2``).
    """

    def __init__(self, transformer: torch.nn.Module, gamma_blocks: int):
        super().__init__()
        hidden = transformer.transformer_blocks[0].attn1.to_q.out_features
        count = min(gamma_blocks, len(transformer.transformer_blocks))
        self.blocks = torch.nn.ModuleList([_BlockGammas(hidden) for _ in range(count)])
        self.handles: list = []

    def attach(self, transformer: torch.nn.Module) -> Gammas:
        for block, g in zip(transformer.transformer_blocks, self.blocks):
            hidden = g.gamma1.numel()
            for i, proj in enumerate((block.attn1.to_q, block.attn1.to_k, block.attn1.to_v)):
                rows = slice(i * hidden, (i + 1) * hidden)
                self._hook(proj, lambda g=g, rows=rows: g.attn.gamma1[rows])
            self._hook(block.attn1.to_out[0], lambda g=g: g.attn.gamma2)
            self._hook(block.attn1, lambda g=g: g.gamma1)
            self._hook(block.ff, lambda g=g: g.gamma2)
        return self

    def _hook(self, module: torch.nn.Module, scale) -> None:
        """``scale()`` is read at every forward: its gradient reaches the γ parameter (a slice of attn.gamma1)."""
        self.handles.append(module.register_forward_hook(lambda m, inputs, output: output * scale()))

    def remove(self) -> None:
        """Detach the hooks (the scales are folded into a model's weights by :func:`fold`)."""
        for handle in self.handles:
            handle.remove()
        self.handles = []


def _scale_rows(layer: torch.nn.Linear, scale: torch.Tensor) -> None:
    layer.weight.mul_(scale[:, None])
    if layer.bias is not None:
        layer.bias.mul_(scale)


def fold(transformer: torch.nn.Module, gammas: Gammas) -> None:
    """γ·(W x + b) = (diag(γ) W) x + γ b: fold every γ into the linear layer whose output it scales
    (to_q/to_k/to_v by their thirds of attn.gamma1, to_out.0 by attn.gamma2·gamma1, ff.net.2 by gamma2);
    the transformer must carry no γ hooks."""
    with torch.no_grad():
        for block, g in zip(transformer.transformer_blocks, gammas.blocks):
            hidden = g.gamma1.numel()
            for i, proj in enumerate((block.attn1.to_q, block.attn1.to_k, block.attn1.to_v)):
                _scale_rows(proj, g.attn.gamma1[i * hidden:(i + 1) * hidden])
            _scale_rows(block.attn1.to_out[0], g.attn.gamma2 * g.gamma1)
            _scale_rows(block.ff.net[2], g.gamma2)


# ----------------------------------------------------------------------------- trainable parameters

def trainable_named_parameters(transformer: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """DiffFit's parameters of a diffusers DiT (module docstring): every bias, every label table, every
    affine norm weight; each tied parameter once (under its first name)."""
    # imported here: the method registry imports this module in every job, and diffusers loads
    # torch._dynamo (~2 s), which only jobs that build a backbone need
    from diffusers.models.embeddings import LabelEmbedding

    by_type = set()
    for module in transformer.modules():
        if isinstance(module, LabelEmbedding):
            by_type.add(id(module.embedding_table.weight))
        if isinstance(module, NORMS) and module.weight is not None:
            by_type.add(id(module.weight))
    return {name: p for name, p in transformer.named_parameters() if name.endswith("bias") or id(p) in by_type}


def training_mode(transformer: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """Put a DiT in train mode for fine-tuning: everything frozen but DiffFit's parameters (returned by
    name), diffusers' own label dropout off (the loss applies ``label_dropout`` through the seam)."""
    disable_label_dropout(transformer)
    transformer.train().requires_grad_(False)
    named = trainable_named_parameters(transformer)
    for p in named.values():
        p.requires_grad_(True)
    return named


# ----------------------------------------------------------------------------- minimax terms

class Memories:
    """Per-class FIFO memories (dataset labels) of raw flattened vectors: the clean latents (``real``)
    and the detached predictions x̂0 (``generated``, the reference's ``pseudo_memory``), oldest first."""

    def __init__(self, num_classes: int, size: int):
        self.size = size
        self.real = [torch.empty(0) for _ in range(num_classes)]
        self.generated = [torch.empty(0) for _ in range(num_classes)]

    @staticmethod
    def _append(store: list[torch.Tensor], c: int, rows: torch.Tensor, size: int) -> None:
        store[c] = torch.cat([store[c].to(rows).reshape(-1, rows.shape[1]), rows])[-size:]

    def push(self, labels: torch.Tensor, real: torch.Tensor, generated: torch.Tensor) -> None:
        """After a step: every class of the batch appends its rows of both, dropping the oldest."""
        for c in labels.unique().tolist():
            rows = labels == c
            self._append(self.real, c, real[rows].detach().flatten(1), self.size)
            self._append(self.generated, c, generated[rows].detach().flatten(1), self.size)


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise cosine similarity of the rows, as the reference's ``cosine_similarity`` (no eps)."""
    return (a @ b.T) / (a.norm(dim=-1)[:, None] * b.norm(dim=-1)[None, :])


def minimax_terms(x0: torch.Tensor, labels: torch.Tensor, memories: Memories, lambda_pos: float,
                  lambda_neg: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's weighted representativeness and diversity terms (module docstring):
    pos = Σ_c (1 − min cos(x̂0_c, real_c))·λ_pos/num, neg = Σ_c max cos(x̂0_c, pseudo_c)·λ_neg/num,
    over the batch's classes with a non-empty pseudo memory, num = distinct classes in the batch."""
    classes = labels.unique().tolist()
    pos, neg = x0.new_zeros(()), x0.new_zeros(())
    flat = x0.flatten(1)
    for c in classes:
        if not len(memories.generated[c]):
            continue
        rows = flat[labels == c]
        pos = pos + (1 - cosine_similarity(rows, memories.real[c]).min()) * lambda_pos / len(classes)
        neg = neg + cosine_similarity(rows, memories.generated[c]).max() * lambda_neg / len(classes)
    return pos, neg


# ----------------------------------------------------------------------------- fine-tuning

def batch_indices(step: int, count: int, batch_size: int, seed: int) -> torch.Tensor:
    """Rows of batch ``step``: each epoch walks a seeded permutation of the ``count`` latents in batches,
    the last incomplete batch dropped (the reference's shuffled ``DistributedSampler`` with drop_last)."""
    per_epoch = count // batch_size
    epoch, position = divmod(step, per_epoch)
    order = torch.randperm(count, generator=generator(seed, MethodStream.MINIMAX_EPOCH, epoch))
    return order[position * batch_size:(position + 1) * batch_size]


def _check(backbone: Backbone, labels: torch.Tensor, backbone_labels: torch.Tensor, batch_size: int) -> None:
    if len(labels) and int(labels.max()) >= len(backbone_labels):
        raise InputError(f"the latents hold dataset label {int(labels.max())} but the dataset has "
                         f"{len(backbone_labels)} classes; encode the latents of this dataset again")
    if int(backbone_labels.max()) >= backbone.num_classes or int(backbone_labels.min()) < 0:
        raise InputError(f"the dataset's backbone class ids reach {int(backbone_labels.max())} but the backbone's "
                         f"label table has {backbone.num_classes} classes; fine-tune a backbone trained on "
                         f"these classes (ImageNet subsets: a 1000-class DiT)")
    if len(labels) < batch_size:
        raise InputError(f"minimax batch_size {batch_size} exceeds the {len(labels)} real latents of the dataset; "
                         f"lower the minimax batch_size")


def finetune(backbone: Backbone, latents: dict, params: MinimaxParams, device: str, checkpoint: Checkpoint | None = None,
             *, backbone_labels: Sequence[int], extra_term: ExtraTerm | None = None) -> Backbone:
    """Fine-tune in place on the latents artifact (dataset labels) conditioning the network on
    ``backbone_labels[label]``; returns the backbone holding the folded EMA. With ``checkpoint`` the steps
    resume from its saved state and save their own when due. ``extra_term``: one more loss term per step
    (:data:`ExtraTerm`), added to the diffusion loss and the Minimax terms."""
    mean, std, labels = latents["mean"].to(device), latents["std"].to(device), latents["labels"].to(device)
    ids = torch.as_tensor(list(backbone_labels), dtype=torch.long, device=device)
    _check(backbone, labels, ids, params.batch_size)
    dit = backbone.transformer
    named = training_mode(dit)
    gammas = Gammas(dit, params.gamma_blocks).to(device)
    ema_model = copy.deepcopy(dit).eval().requires_grad_(False)   # before the γ hooks, which must not be copied
    ema_gammas = copy.deepcopy(gammas).requires_grad_(False)
    gammas.attach(dit)
    ema_named = dict(ema_model.named_parameters())
    pairs = [(ema_named[n], p) for n, p in named.items()] + list(zip(ema_gammas.parameters(), gammas.parameters()))
    optimizer = torch.optim.AdamW(list(named.values()) + list(gammas.parameters()), lr=params.lr,
                                  weight_decay=params.weight_decay)
    loss_fn = DiffusionLoss(backbone)
    gen = generator(params.seed, MethodStream.MINIMAX_BATCH)
    randomness = SeededTraining(gen)
    memories = Memories(len(ids), params.memory_size)
    done = 0
    state = checkpoint.load() if checkpoint is not None else None
    if state is not None:
        with torch.no_grad():
            for n, p in named.items():
                p.copy_(state["dit"][n])
                ema_named[n].copy_(state["ema"][n])
        gammas.load_state_dict(state["gammas"])
        ema_gammas.load_state_dict(state["ema_gammas"])
        optimizer.load_state_dict(state["optimizer"])
        memories.real, memories.generated = ([m.to(device) for m in store] for store in state["memories"])
        restore_rng(state["rng"], gen)
        done = state["done"]
    for step in tqdm(range(done, params.steps), initial=done, total=params.steps, desc="minimax",
                     mininterval=5):
        idx = batch_indices(step, len(mean), params.batch_size, params.seed).to(device)
        x = mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=gen).to(device)
        ry = labels[idx]
        terms = loss_fn.terms(x, ids[ry], randomness, params.label_dropout)
        pos, neg = minimax_terms(terms.x0_pred, ry, memories, params.lambda_pos, params.lambda_neg)
        loss = terms.loss + pos + neg
        if extra_term is not None:
            loss = loss + extra_term(loss_fn, terms, x, ids[ry], randomness)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        memories.push(ry, x, terms.x0_pred)
        with torch.no_grad():
            for p_ema, p in pairs:
                p_ema.lerp_(p, 1.0 - params.ema_decay)
        if checkpoint is not None and checkpoint.due():
            checkpoint.save({"done": step + 1, "gammas": gammas.state_dict(), "ema_gammas": ema_gammas.state_dict(),
                             "dit": {n: p.detach() for n, p in named.items()},
                             "ema": {n: ema_named[n].detach() for n in named},
                             "optimizer": optimizer.state_dict(), "memories": (memories.real, memories.generated),
                             "rng": rng_state(gen)}, at=f"step {step + 1}")
    gammas.remove()
    dit.eval().requires_grad_(False)
    fold(ema_model, ema_gammas)
    backbone.transformer = ema_model.eval().requires_grad_(False)
    return backbone


def finetune_backbone(spec: dict, backbone_dir: Path, latents_path: Path, dataset: str, out: Path,
                      device: str) -> None:
    """The ``finetune_backbone`` rule's job for minimax: fine-tune the backbone on the real latents of
    ``dataset`` and write it under ``out``, checkpointing as it goes."""
    run_finetune_job("minimax_finetune", spec, MinimaxParams(**spec), backbone_dir, latents_path, dataset, out, device)


def run_finetune_job(job: str, spec: dict, params: MinimaxParams, backbone_dir: Path, latents_path: Path, dataset: str,
                     out: Path, device: str, extra_term: ExtraTerm | None = None) -> None:
    """A ``finetune_backbone`` job named ``job`` (its checkpoint identity): :func:`finetune` with ``params``
    (parsed from the variant's ``spec``) and ``extra_term``, the EMA backbone written under ``out``."""
    started = time.time()
    backbone_labels = list(dataset_info(dataset).backbone_labels)
    torch.manual_seed(params.seed)
    checkpoint = Checkpoint.beside(out, job_identity(job, spec, [backbone_dir, latents_path],
                                                     device=device, backbone_labels=backbone_labels))
    backbone = finetune(open_backbone(backbone_dir, device), load_latents(latents_path), params, device, checkpoint,
                        backbone_labels=backbone_labels, extra_term=extra_term)
    with atomic_path(out) as tmp:
        backbone.save(tmp)
        write_manifest(tmp, manifest(spec, seed=params.seed, device=device, started=started,
                                     dataset=dataset, backbone_labels=backbone_labels))
    checkpoint.remove()
