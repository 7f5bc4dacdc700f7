"""Model-batched evaluation: the repeats of one (set, protocol, network) trained together as one
stacked model, each exactly as :func:`evaluation.protocols.training.train_and_evaluate` trains it alone.

A single evaluation network on ~100-1,000 images leaves most of a GPU idle and pays a process start
per repeat. Here the R models' parameters and buffers are stacked (``torch.func.stack_module_state``)
and one forward of the network is mapped over them (``torch.vmap`` of ``functional_call``; on a CPU,
where mapped convolutions run slower than plain ones, the stack's forward calls each model's slices
in turn instead: :func:`stacked_forward`), each model on its own batch: model r keeps its own initial weights (``MODEL_INIT`` stream of its seed), its own
data generator (batch order, augmentation, CutMix draw and pairing, from the ``DATA`` stream of its
seed, drawn in the order the single loop draws them), its own loss, and its own evaluation curve. The
stacked optimiser is the single one applied to every model at once: SGD (momentum, weight decay),
Adam and AdamW are elementwise, so model r's update depends only on model r's gradient, and the
protocols' learning rate and schedule are the same for every repeat of a set. Only the mapped kernels
(a convolution over R models) sum in another order, so results equal the one-at-a-time runs to float
tolerance, and bit for bit with the ``loop`` forward (``tests/test_stacked_training.py``). Frozen parameters (a linear probe's encoder) are
shared, not stacked.

A network the map cannot reproduce (random layers such as dropout, which would draw from another
stream) or a loss that calls another method than ``forward`` (SFM's ``feature_mse``) is trained one
repeat after another in the same process (:func:`stackable` says which); so is every network under
``stack: false``.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state
from tqdm import tqdm

from evaluation.core.checkpoint import Checkpoint, restore_rng, rng_state
from evaluation.core.seeding import TrainingStream, derive_seed
from evaluation.protocols.protocols import evaluation_epochs, lr_factor, protocol_lr, selection_convention
from evaluation.protocols.training import (
    Teacher,
    augment_batch,
    check_protocol,
    check_square,
    initial_model,
    make_optimizer,
    output_loss,
    selected_results,
    teacher_targets,
    to_unit_float,
    train_and_evaluate,
)
from evaluation.protocols.augment import normalize

RANDOM_LAYERS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


def stackable(model: nn.Module, protocol: dict) -> bool:
    """Whether the stacked loop reproduces ``model`` under ``protocol``: a loss on the network's
    ``forward`` (hard or soft labels) and no layer that draws random numbers while training."""
    random_layers = any(isinstance(m, RANDOM_LAYERS) and m.p > 0 for m in model.modules())
    return protocol["loss"] in ("hard", "soft") and not random_layers


def shared_frozen_parameters(models: Sequence[nn.Module]) -> bool:
    """Whether every model holds the same frozen parameters (a probe's encoder from one file), which
    the stack then keeps once."""
    frozen = [[p for p in model.parameters() if not p.requires_grad] for model in models]
    return all(len(own) == len(frozen[0]) and all(torch.equal(a, b) for a, b in zip(own, frozen[0]))
               for own in frozen[1:])


FORWARDS = ("vmap", "loop")


def stacked_forward(name: str, device: str | torch.device) -> str:
    """The stack's forward: ``vmap`` (one mapped kernel over the R models: a GPU's way to fill itself
    with small models) or ``loop`` (each model's own kernels in turn, bit-identical to it alone:
    on a CPU, mapped convolutions become grouped ones that run slower than R plain ones, measured
    in ``benchmarks/stacked_eval.py``); ``auto`` is ``vmap`` on CUDA and ``loop`` elsewhere."""
    if name == "auto":
        return "vmap" if torch.device(device).type == "cuda" else "loop"
    if name not in FORWARDS:
        raise ValueError(f"stacked forward {name!r} is unknown; valid: auto, {', '.join(FORWARDS)}")
    return name


class StackedModels:
    """R copies of one architecture as stacked tensors: trainable parameters ``params`` [R, ...]
    (leaves the optimiser updates), shared frozen parameters ``frozen`` and stacked ``buffers``
    (normalisation statistics, updated in place by the forward), run by ``forward_kind``
    (:func:`stacked_forward`)."""

    def __init__(self, models: Sequence[nn.Module], forward_kind: str = "vmap"):
        self.forward_kind = forward_kind
        trainable = {name for name, p in models[0].named_parameters() if p.requires_grad}
        params, self.buffers = stack_module_state(list(models))
        self.params = {name: p for name, p in params.items() if name in trainable}
        self.frozen = {name: p.detach() for name, p in models[0].named_parameters() if name not in trainable}
        self.ndim = {name: p.ndim for name, p in models[0].named_parameters() if name in trainable}
        self.count = len(models)
        self.base = copy.deepcopy(models[0]).to("meta")   # the architecture; its tensors come from the stacks

    def train(self, mode: bool = True) -> None:
        self.base.train(mode)

    def forward(self, inputs: torch.Tensor, params: dict | None = None, buffers: dict | None = None,
                shared_inputs: bool = False) -> torch.Tensor:
        """Logits [R, B, classes] of every model on its own batch ``inputs`` [R, B, ...] (or on one
        batch [B, ...] for all with ``shared_inputs``), with ``params``/``buffers`` (default: the
        trained ones; the EMA's for an averaged model)."""
        params = self.params if params is None else params
        buffers = self.buffers if buffers is None else buffers

        def one(p, b, x):
            return functional_call(self.base, (p, self.frozen, b), (x,))
        if self.forward_kind == "vmap":
            return torch.vmap(one, in_dims=(0, 0, None if shared_inputs else 0))(params, buffers, inputs)
        # model r's slices are views of the stacks: gradients (one unbind per stack, so the backward
        # stacks R gradients once) and in-place statistics reach them
        sliced = [dict(zip(params, views)) for views in zip(*(p.unbind(0) for p in params.values()))]
        return torch.stack([one(sliced[r], {k: v[r] for k, v in buffers.items()},
                                inputs if shared_inputs else inputs[r]) for r in range(self.count)])

    def parameter_groups(self, weight_decay: float, no_decay_bias_norm: bool) -> list[dict]:
        """:func:`evaluation.protocols.training.parameter_groups` on the stacks: the bias/normalisation
        split by the dimensions of one model's parameter."""
        if not no_decay_bias_norm:
            return [{"params": list(self.params.values()), "weight_decay": weight_decay}]
        decay = [p for name, p in self.params.items() if self.ndim[name] > 1]
        no_decay = [p for name, p in self.params.items() if self.ndim[name] <= 1]
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]

    def state(self) -> dict[str, torch.Tensor]:
        """Every stacked tensor by name (what the EMA averages: parameters and buffers)."""
        return {**self.params, **self.buffers}


class StackedEMA:
    """``AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)`` of every
    model at once: the first update copies, later ones ``ema + (1 - decay) (current - ema)`` (a lerp
    for float tensors, ``ema * decay + current * (1 - decay)`` for integer ones), elementwise, so each
    model's average is its own."""

    def __init__(self, models: StackedModels, decay: float):
        self.decay, self.updates = decay, 0
        self.tensors = {name: t.detach().clone() for name, t in models.state().items()}

    @torch.no_grad()
    def update(self, models: StackedModels) -> None:
        for name, current in models.state().items():
            average = self.tensors[name]
            if self.updates == 0:
                average.copy_(current)
            elif average.is_floating_point():
                average.lerp_(current, 1 - self.decay)
            else:
                average.copy_(average * self.decay + current * (1 - self.decay))
        self.updates += 1

    def split(self, models: StackedModels) -> tuple[dict, dict]:
        return ({name: self.tensors[name] for name in models.params},
                {name: self.tensors[name] for name in models.buffers})

    def state_dict(self) -> dict:
        return {"tensors": self.tensors, "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.updates = state["updates"]
        for name, tensor in state["tensors"].items():
            self.tensors[name].copy_(tensor)


def stacked_top1(models: StackedModels, params: dict, buffers: dict, images: torch.Tensor, labels: torch.Tensor,
                 mean: Sequence[float], std: Sequence[float], batch_size: int, device) -> list[float]:
    """Test top-1 in percent of every model (:func:`evaluation.protocols.training.top1`, eval mode)."""
    models.train(False)
    correct = torch.zeros(models.count, dtype=torch.long)
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = normalize(to_unit_float(images[start:start + batch_size], device), mean, std)
            predicted = models.forward(batch, params, buffers, shared_inputs=True).argmax(-1).cpu()   # [R, B]
            correct += (predicted == labels[start:start + batch_size].cpu()).sum(-1)
    models.train(True)
    return [100.0 * int(count) / len(labels) for count in correct]   # as top1's Python arithmetic


def train_and_evaluate_repeats(train_images: torch.Tensor, train_labels: torch.Tensor,
                               test: tuple[torch.Tensor, torch.Tensor], *, protocol: dict, network: str,
                               network_kwargs: dict, num_classes: int, epochs: int, seeds: Sequence[int],
                               device: str, val: tuple[torch.Tensor, torch.Tensor] | None = None,
                               teacher: Teacher | None = None, progress: bool = False,
                               checkpoint: Checkpoint | None = None, stack: bool = True,
                               forward: str = "auto") -> tuple[list[dict], int]:
    """One result of :func:`~evaluation.protocols.training.train_and_evaluate` per evaluation seed in
    ``seeds``, the models trained together when ``stack`` and :func:`stackable` allow, else one after
    another (module docstring), and the number of models trained in one stack (1: one at a time);
    ``forward`` is the stack's (:func:`stacked_forward`). With ``checkpoint`` the job resumes from its
    saved state."""
    forward = stacked_forward(forward, device)
    check_protocol(protocol, teacher)
    check_square(train_images)
    size = train_images.shape[-1]
    first = initial_model(network, num_classes, size, network_kwargs, seeds[0]).to(device)
    models = [first] + [initial_model(network, num_classes, size, network_kwargs, seed).to(device)
                        for seed in seeds[1:]] if stack and stackable(first, protocol) else []
    if not (models and shared_frozen_parameters(models)):
        del first, models
        return _one_after_another(train_images, train_labels, test, protocol=protocol, network=network,
                                  network_kwargs=network_kwargs, num_classes=num_classes, epochs=epochs,
                                  seeds=seeds, device=device, val=val, teacher=teacher, progress=progress,
                                  checkpoint=checkpoint), 1
    return train_stacked(models, train_images, train_labels, test, protocol=protocol, network=network,
                         epochs=epochs, seeds=seeds, device=device, val=val, teacher=teacher, progress=progress,
                         checkpoint=checkpoint, forward=forward)[0], len(seeds)


def train_stacked(models: list[nn.Module], train_images: torch.Tensor, train_labels: torch.Tensor,
                  test: tuple[torch.Tensor, torch.Tensor], *, protocol: dict, network: str, epochs: int,
                  seeds: Sequence[int], device: str, val: tuple[torch.Tensor, torch.Tensor] | None = None,
                  teacher: Teacher | None = None, progress: bool = False,
                  checkpoint: Checkpoint | None = None, forward: str = "vmap") -> tuple[list[dict], dict[str, torch.Tensor]]:
    """The stacked loop over the initial ``models`` (one per seed of ``seeds``; the list is emptied):
    the results and the evaluated models' tensors by name, stacked [R, ...] (the EMA's under
    ``ema_decay``)."""
    start = int(protocol["eval_from"] * epochs)
    eval_at = set(evaluation_epochs(epochs, min(protocol["num_evals"], epochs - start), protocol["eval_from"]))
    stacked = StackedModels(models, forward)
    models.clear()
    lr = protocol_lr(protocol, network, len(train_images))
    optimizer = make_optimizer(protocol["optimizer"],
                               stacked.parameter_groups(protocol["weight_decay"], protocol["no_decay_bias_norm"]),
                               lr, protocol["momentum"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(protocol["schedule"], epochs, protocol["gamma"]))
    ema = StackedEMA(stacked, protocol["ema_decay"]) if protocol["ema_decay"] else None
    run = torch.compile(stacked.forward) if protocol.get("compile", False) else stacked.forward
    generators = [torch.Generator().manual_seed(derive_seed(seed, TrainingStream.DATA)) for seed in seeds]
    data = to_unit_float(train_images, device)
    targets = train_labels.to(device)
    batch_size, mean, std = protocol["batch_size"], protocol["mean"], protocol["std"]
    curves, done = [[] for _ in seeds], 0
    state = checkpoint.load() if checkpoint is not None else None
    if state is not None:
        for name, tensor in state["params"].items():
            stacked.params[name].data.copy_(tensor)
        for name, tensor in state["buffers"].items():
            stacked.buffers[name].copy_(tensor)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        curves, done = state["curves"], state["epoch"]
        restore_rng(state["rng"], *generators)
    bar = tqdm(range(done + 1, epochs + 1), desc=f"train {len(seeds)} x {network} (stacked)", disable=not progress,
               initial=done, total=epochs)
    autocast = protocol.get("autocast_bf16", False)
    for epoch in bar:
        stacked.train(True)
        orders = [torch.randperm(len(data), generator=g).to(device) for g in generators]
        for first in range(0, len(data), batch_size):
            batches = [augment_batch(data[order[first:first + batch_size]], targets[order[first:first + batch_size]],
                                     protocol, generator=g) for order, g in zip(orders, generators)]
            inputs = torch.stack([batch[0] for batch in batches])
            with torch.autocast(inputs.device.type, dtype=torch.bfloat16, enabled=autocast):
                outputs = run(inputs).float()
                # the teacher's logits on every model's batch in one forward, [R, B, classes]
                logits = teacher_targets(teacher, inputs.flatten(0, 1), protocol)
                soft = logits.unflatten(0, inputs.shape[:2]) if logits is not None else [None] * len(batches)
            loss = sum(output_loss(outputs[r], labels_a, labels_b, lam, soft[r], protocol)
                       for r, (_, labels_a, labels_b, lam) in enumerate(batches))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if ema is not None:
                ema.update(stacked)
        scheduler.step()
        if epoch in eval_at:
            params, buffers = ema.split(stacked) if ema is not None else (stacked.params, stacked.buffers)
            accuracy = stacked_top1(stacked, params, buffers, *test, mean, std, batch_size, device)
            val_accuracy = (stacked_top1(stacked, params, buffers, *val, mean, std, batch_size, device)
                            if val is not None else [None] * len(seeds))
            for curve, top1, val_top1 in zip(curves, accuracy, val_accuracy):
                curve.append({"epoch": epoch, "top1": top1, "val_top1": val_top1})
            bar.set_postfix(top1="/".join(f"{a:.1f}" for a in accuracy))
        if checkpoint is not None and checkpoint.due():
            checkpoint.save({"epoch": epoch, "params": {k: v.detach() for k, v in stacked.params.items()},
                             "buffers": stacked.buffers, "optimizer": optimizer.state_dict(),
                             "scheduler": scheduler.state_dict(), "ema": ema.state_dict() if ema is not None else None,
                             "curves": curves, "rng": rng_state(*generators)}, at=f"epoch {epoch}")
    return [{**selected_results(curve), "selection": selection_convention(protocol), "curve": curve, "epochs": epochs}
            for curve in curves], (ema.tensors if ema is not None else stacked.state())


def _one_after_another(train_images, train_labels, test, *, seeds, checkpoint, **settings) -> list[dict]:
    """The repeats trained one at a time in this process; a repeat's finished result is kept in the
    job's checkpoint so that a resumed job starts at the first unfinished one."""
    saved = (checkpoint.load() if checkpoint is not None else None) or {}
    results, running = list(saved.get("results", [])), saved.get("running")
    for seed in seeds[len(results):]:
        own = None
        if checkpoint is not None:   # the running repeat checkpoints inside the shared file
            own = RepeatCheckpoint(checkpoint, results, running)
            running = None   # a saved running state belongs to the first unfinished repeat only
        result, _ = train_and_evaluate(train_images, train_labels, test, seed=seed, checkpoint=own, **settings)
        results.append(result)
        if checkpoint is not None:
            checkpoint.save({"results": results}, at=f"repeat {len(results) - 1} done")
    return results


class RepeatCheckpoint:
    """The checkpoint of the running repeat inside a job's checkpoint: ``{"results": finished
    repeats' results, "running": the running repeat's state}``; ``running`` is the state the job's
    checkpoint held for this repeat when the job started (read once, by the job)."""

    def __init__(self, job: Checkpoint, results: list[dict], running: dict | None = None):
        self.job, self.results, self.running = job, results, running

    def load(self) -> dict | None:
        return self.running

    def due(self) -> bool:
        return self.job.due()

    def save(self, state: dict, at: str) -> None:
        self.job.save({"results": self.results, "running": state}, at=f"repeat {len(self.results)}, {at}")
