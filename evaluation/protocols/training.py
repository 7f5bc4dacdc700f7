"""The one training loop of every evaluation protocol (methods_and_protocols.md §3): train a network
from scratch on a (distilled) training set and measure test top-1 at the protocol's evaluation epochs.

Per batch, on the device: ShufflePatches -> RandomResizedCrop -> flip -> ColorJitter (IDC's own,
unclamped) -> Lighting -> normalise -> DSA -> CutMix, each step on or off by the protocol's settings (IDC's hard-label
pipeline, RDED's soft-label pipeline, GLaD's DSA pipeline). The loss is cross-entropy on the hard
labels (``lam * CE(a) + (1 - lam) * CE(b)`` under CutMix) or RDED's KL to the teacher's softmax on
the same mixed crops. The learning rate follows the protocol's schedule, stepped per epoch; with
``ema_decay`` the evaluated model is the exponential moving average of the weights (GLaD).

Each evaluation measures test top-1 and, when a validation split is given (held out from the real
training data), validation top-1: the result reports the papers' number (best test top-1 over the
evaluations), the last one, and the honest one (test top-1 at the evaluation with the best
validation top-1). The whole training set lives on the device as one float tensor; all data
randomness comes from one ``torch.Generator`` and model initialisation runs under a forked, seeded
global RNG, so a run is a function of its arguments and leaves the caller's RNG state untouched.
With a :class:`~evaluation.core.checkpoint.Checkpoint` the loop saves its state at epoch ends (at the
checkpoint's cadence) and resumes from a saved one, ending bit-identical to an uninterrupted run.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from evaluation.protocols.augment import (
    color_jitter,
    cutmix,
    dsa,
    lighting,
    normalize,
    rand_augment,
    random_horizontal_flip,
    random_resized_crop,
    shuffle_patches,
)
from evaluation.core.checkpoint import Checkpoint, restore_rng, rng_state
from evaluation.core.seeding import TrainingStream, derive_seed
from evaluation.protocols.networks import create_network
from evaluation.protocols.protocols import evaluation_epochs, lr_factor, protocol_lr, selection_convention

OPTIMIZERS = ("sgd", "adamw", "adam")
LOSSES = ("hard", "soft", "feature_mse")
PIXEL_MAX = 255.0

Teacher = Callable[[torch.Tensor], torch.Tensor]   # normalised batch -> logits


def to_unit_float(images: torch.Tensor, device: str | torch.device) -> torch.Tensor:
    """uint8 images as float32 in [0, 1] on ``device``."""
    if images.dtype != torch.uint8:
        raise ValueError(f"images dtype {images.dtype} is invalid; valid: torch.uint8")
    return images.to(device).float().div(PIXEL_MAX)


def predict(model: nn.Module, images: torch.Tensor, mean: Sequence[float], std: Sequence[float],
            batch_size: int, device: str | torch.device) -> torch.Tensor:
    """Predicted labels (CPU LongTensor) of uint8 ``images``: normalised, no augmentation, eval mode,
    in batches of ``batch_size``; the model's train/eval mode is restored afterwards."""
    was_training = model.training
    model.eval()
    predictions = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = normalize(to_unit_float(images[start:start + batch_size], device), mean, std)
            predictions.append(model(batch).argmax(dim=1).cpu())
    model.train(was_training)
    return torch.cat(predictions)


def top1(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, mean: Sequence[float],
         std: Sequence[float], batch_size: int, device: str | torch.device) -> float:
    """Top-1 accuracy in percent of ``model`` on uint8 ``images`` with ``labels``."""
    correct = int((predict(model, images, mean, std, batch_size, device) == labels.cpu()).sum())
    return 100.0 * correct / len(labels)


def parameter_groups(model: nn.Module, weight_decay: float, no_decay_bias_norm: bool) -> list[dict]:
    """One group with ``weight_decay``, or (RDED) two: weights, and biases/normalisation parameters
    (every parameter with fewer than two dimensions) without weight decay. Only trainable parameters
    (``requires_grad``) are optimised: a linear probe's frozen encoder is in no group."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not no_decay_bias_norm:
        return [{"params": trainable, "weight_decay": weight_decay}]
    decay = [p for p in trainable if p.ndim > 1]
    no_decay = [p for p in trainable if p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(name: str, groups: list[dict], lr: float, momentum: float) -> torch.optim.Optimizer:
    """SGD with momentum (IDC, GLaD), AdamW (RDED, the official DMGD train.py) or Adam (LGM's linear
    probe, ims3_lgm_sfm.md §2.4) over parameter ``groups`` that carry their weight decay; AdamW and Adam
    keep their default betas and ignore ``momentum``."""
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr)
    raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}")


def soft_label_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                    temperature: float) -> torch.Tensor:
    """RDED's loss: ``KLDivLoss(batchmean)(log_softmax(s / T), softmax(t / T))`` (no T² factor)."""
    return F.kl_div(F.log_softmax(student_logits / temperature, dim=1),
                    F.softmax(teacher_logits / temperature, dim=1), reduction="batchmean")


def augment_batch(images: torch.Tensor, labels: torch.Tensor, protocol: dict, *,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """One training batch of [0, 1] ``images`` through the protocol's augmentation pipeline.

    Returns ``(normalised images, labels_a, labels_b, lam)``; without CutMix ``labels_b`` is
    ``labels_a`` and ``lam`` 1. CutMix runs when ``cutmix_prob > 0`` and a uniform draw is below it
    (IDC's ``beta > 0 and r < mix_p``).
    """
    if protocol["shuffle_factor"] > 1:
        images = shuffle_patches(images, protocol["shuffle_factor"], generator=generator)
    if protocol["rrc_scale"] is not None:
        images = random_resized_crop(images, tuple(images.shape[-2:]), scale=tuple(protocol["rrc_scale"]),
                                     generator=generator)
    if protocol["flip"]:
        images = random_horizontal_flip(images, generator=generator)
    if protocol["randaugment"] is not None:
        images = rand_augment(images, *protocol["randaugment"], generator=generator)
    if protocol["color_jitter"] > 0:
        strength = protocol["color_jitter"]
        images = color_jitter(images, strength, strength, strength, generator=generator, reference="idc")
    if protocol["lighting"] > 0:
        images = lighting(images, protocol["lighting"], generator=generator)
    images = normalize(images, protocol["mean"], protocol["std"])
    if protocol["dsa"]:
        images = dsa(images, strategy=protocol["dsa"], generator=generator)
    if protocol["cutmix_prob"] > 0:
        draw = torch.rand((), generator=generator, device=generator.device).item()
        if draw < protocol["cutmix_prob"]:
            images, labels_a, labels_b, lam = cutmix(images, labels, protocol["cutmix_alpha"],
                                                     generator=generator)
            return images, labels_a, labels_b, lam
    return images, labels, labels, 1.0


def output_loss(outputs: torch.Tensor, labels_a: torch.Tensor, labels_b: torch.Tensor, lam: float,
                targets: torch.Tensor | None, protocol: dict) -> torch.Tensor:
    """Loss of one model's logits on one augmented batch: hard-label cross-entropy (mixed by CutMix's
    ``lam``: ``lam * CE(a) + (1 - lam) * CE(b)``) or the soft-label KL against the teacher's logits
    ``targets`` on the same augmented images."""
    if protocol["loss"] == "soft":
        return soft_label_loss(outputs, targets, protocol["temperature"])
    if lam == 1.0:
        return F.cross_entropy(outputs, labels_a)
    return lam * F.cross_entropy(outputs, labels_a) + (1 - lam) * F.cross_entropy(outputs, labels_b)


def batch_loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, protocol: dict, *,
               teacher: Teacher | None, generator: torch.Generator) -> torch.Tensor:
    """Loss of one augmented batch (:func:`output_loss`), or (``feature_mse``, SFM's classifier
    inheritance) the label-free MSE of the network's ``features`` to its ``distilled_features``."""
    inputs, labels_a, labels_b, lam = augment_batch(images, labels, protocol, generator=generator)
    if protocol["loss"] == "feature_mse":   # SFM's classifier inheritance: no labels (evaluation/protocols/inheritance.py)
        return F.mse_loss(model.features(inputs), model.distilled_features(inputs))
    # config performance.autocast_bf16 (off in every shipped profile): the forwards in bfloat16
    with torch.autocast(inputs.device.type, dtype=torch.bfloat16, enabled=protocol.get("autocast_bf16", False)):
        outputs = model(inputs).float()   # no copy when float32 already
        targets = teacher_targets(teacher, inputs, protocol)
    return output_loss(outputs, labels_a, labels_b, lam, targets, protocol)


def teacher_targets(teacher: Teacher | None, inputs: torch.Tensor, protocol: dict) -> torch.Tensor | None:
    """The teacher's logits on the augmented ``inputs`` under the soft-label loss, else None."""
    if protocol["loss"] != "soft":
        return None
    with torch.no_grad():
        return teacher(inputs).float()


def check_protocol(protocol: dict, teacher: Teacher | None) -> None:
    if protocol["loss"] not in LOSSES:
        raise ValueError(f"unknown loss {protocol['loss']!r}; valid: {', '.join(LOSSES)}")
    if protocol["loss"] == "soft" and (teacher is None or not protocol["temperature"]):
        raise ValueError("loss 'soft' needs a teacher network and a positive temperature; set the "
                         "protocol's temperature and give the evaluation a teacher")


def initial_model(network: str, num_classes: int, image_size: int, network_kwargs: dict, seed: int) -> nn.Module:
    """``network``'s initial weights for evaluation seed ``seed`` (its ``MODEL_INIT`` stream). Seeding
    only the CPU default generator inside a fork leaves every global RNG as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(derive_seed(seed, TrainingStream.MODEL_INIT))
        return create_network(network, num_classes, image_size, **network_kwargs)


def check_square(images: torch.Tensor) -> None:
    height, width = images.shape[-2:]
    if height != width:
        raise ValueError(f"train image size {height}x{width} is invalid; valid: square images")


def selected_results(curve: list[dict]) -> dict:
    """The three readings of an evaluation curve: best test top-1 (the papers' number; earliest epoch
    on ties), last, and test top-1 at the earliest epoch of best validation top-1 (None without a
    validation split)."""
    best = max(curve, key=lambda point: point["top1"])
    result = {"best_top1": best["top1"], "best_epoch": best["epoch"], "last_top1": curve[-1]["top1"],
              "val_selected_top1": None, "val_selected_epoch": None}
    if curve[0]["val_top1"] is not None:
        chosen = max(curve, key=lambda point: point["val_top1"])
        result.update(val_selected_top1=chosen["top1"], val_selected_epoch=chosen["epoch"])
    return result


def train_and_evaluate(train_images: torch.Tensor, train_labels: torch.Tensor,
                       test: tuple[torch.Tensor, torch.Tensor], *, protocol: dict, network: str,
                       network_kwargs: dict, num_classes: int, epochs: int, seed: int, device: str,
                       val: tuple[torch.Tensor, torch.Tensor] | None = None, teacher: Teacher | None = None,
                       progress: bool = False, checkpoint: Checkpoint | None = None) -> tuple[dict, nn.Module]:
    """Train ``network`` from scratch on uint8 ``train_images`` under ``protocol`` (a dict of the
    settings in ``evaluation/protocols/protocols.yaml``) for ``epochs`` and evaluate at the protocol's
    evaluation epochs on ``test`` (and ``val``), both (uint8 images, labels).

    Returns ``({"best_top1", "best_epoch", "last_top1", "val_selected_top1", "val_selected_epoch",
    "selection", "curve": [{"epoch", "top1", "val_top1"}], "epochs"}, model)``, top-1 in percent;
    the model is the evaluated one (the EMA model under ``ema_decay``) in eval mode. With
    ``checkpoint`` the run resumes from its saved state and saves its own when due (module docstring).
    """
    check_protocol(protocol, teacher)
    check_square(train_images)
    height = train_images.shape[-1]
    start = int(protocol["eval_from"] * epochs)
    eval_at = set(evaluation_epochs(epochs, min(protocol["num_evals"], epochs - start), protocol["eval_from"]))
    model = initial_model(network, num_classes, height, network_kwargs, seed).to(device)
    lr = protocol_lr(protocol, network, len(train_images))
    optimizer = make_optimizer(protocol["optimizer"],
                               parameter_groups(model, protocol["weight_decay"], protocol["no_decay_bias_norm"]),
                               lr, protocol["momentum"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_factor(protocol["schedule"], epochs, protocol["gamma"]))
    ema = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(protocol["ema_decay"]), use_buffers=True)
           if protocol["ema_decay"] else None)
    evaluated = ema.module if ema is not None else model
    # config performance.compile: the training forward through torch.compile (same parameters)
    trained = torch.compile(model) if protocol.get("compile", False) else model
    generator = torch.Generator().manual_seed(derive_seed(seed, TrainingStream.DATA))
    data = to_unit_float(train_images, device)
    targets = train_labels.to(device)
    batch_size, mean, std = protocol["batch_size"], protocol["mean"], protocol["std"]
    curve, done = [], 0
    state = checkpoint.load() if checkpoint is not None else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        curve, done = state["curve"], state["epoch"]
        restore_rng(state["rng"], generator)
    bar = tqdm(range(done + 1, epochs + 1), desc=f"train {network}", disable=not progress, initial=done,
               total=epochs)
    for epoch in bar:
        model.train()
        order = torch.randperm(len(data), generator=generator).to(device)
        for first in range(0, len(data), batch_size):
            batch = order[first:first + batch_size]
            loss = batch_loss(trained, data[batch], targets[batch], protocol, teacher=teacher,
                              generator=generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if ema is not None:
                ema.update_parameters(model)
        scheduler.step()
        if epoch in eval_at:
            accuracy = top1(evaluated, *test, mean, std, batch_size, device)
            val_accuracy = top1(evaluated, *val, mean, std, batch_size, device) if val is not None else None
            curve.append({"epoch": epoch, "top1": accuracy, "val_top1": val_accuracy})
            bar.set_postfix(top1=f"{accuracy:.2f}")
        if checkpoint is not None and checkpoint.due():
            checkpoint.save({"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "scheduler": scheduler.state_dict(), "ema": ema.state_dict() if ema is not None else None,
                             "curve": curve, "rng": rng_state(generator)}, at=f"epoch {epoch}")
    result = {**selected_results(curve), "selection": selection_convention(protocol), "curve": curve,
              "epochs": epochs}
    return result, evaluated.eval()
