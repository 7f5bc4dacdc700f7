"""Train an evaluation network on a (distilled) training set and measure test top-1, as IDC's
``train.py`` hard-label loop: per-batch RandomResizedCrop -> flip -> normalise -> CutMix, SGD or
AdamW, MultiStepLR stepped per epoch, test accuracy at evenly spaced epochs (best and last reported).

The whole training set lives on the device as one float tensor; all data randomness comes from one
``torch.Generator`` and model initialisation runs under a forked, seeded global RNG, so a run is a
function of its arguments and leaves the caller's RNG state untouched.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from evaluation.augment import cutmix, normalize, random_horizontal_flip, random_resized_crop
from evaluation.networks import create_network
from evaluation.seeding import derive_seed

OPTIMIZERS = ("sgd", "adamw")
MODEL_INIT_STREAM = 0   # derive_seed(seed, stream): independent streams for init and data
DATA_STREAM = 1
PIXEL_MAX = 255.0


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


def evaluation_epochs(epochs: int, num_evals: int) -> list[int]:
    """``num_evals`` evenly spaced 1-based epochs ``epochs * i // num_evals``, ending at ``epochs``."""
    if not 1 <= num_evals <= epochs:
        raise ValueError(f"num_evals {num_evals!r} is invalid; valid: 1 <= num_evals <= epochs ({epochs})")
    return [epochs * i // num_evals for i in range(1, num_evals + 1)]


def make_optimizer(name: str, parameters, lr: float, momentum: float,
                   weight_decay: float) -> torch.optim.Optimizer:
    """SGD with momentum (IDC) or AdamW; AdamW keeps its default betas and ignores ``momentum``."""
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}")


def augmented_loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *,
                   rrc_scale: tuple[float, float], cutmix_alpha: float, cutmix_prob: float,
                   mean: Sequence[float], std: Sequence[float], generator: torch.Generator) -> torch.Tensor:
    """Loss of one batch: RRC (input size) -> flip -> normalise -> CutMix when ``cutmix_alpha > 0`` and a
    uniform draw is below ``cutmix_prob`` (IDC's ``beta > 0 and r < mix_p``), then
    ``lam * CE(a) + (1 - lam) * CE(b)``."""
    images = random_resized_crop(images, tuple(images.shape[-2:]), scale=rrc_scale, generator=generator)
    images = normalize(random_horizontal_flip(images, generator=generator), mean, std)
    draw = torch.rand((), generator=generator, device=generator.device).item()
    if cutmix_alpha > 0 and draw < cutmix_prob:
        images, labels_a, labels_b, lam = cutmix(images, labels, cutmix_alpha, generator=generator)
        outputs = model(images)
        return lam * F.cross_entropy(outputs, labels_a) + (1 - lam) * F.cross_entropy(outputs, labels_b)
    return F.cross_entropy(model(images), labels)


def train_and_evaluate(train_images: torch.Tensor, train_labels: torch.Tensor, test_images: torch.Tensor,
                       test_labels: torch.Tensor, *, network: str, network_kwargs: dict, num_classes: int,
                       epochs: int, batch_size: int, lr: float, momentum: float, weight_decay: float,
                       optimizer: str, milestones: list[int], gamma: float, rrc_scale: tuple[float, float],
                       cutmix_alpha: float, cutmix_prob: float, num_evals: int, mean: Sequence[float],
                       std: Sequence[float], seed: int, device: str, progress: bool) -> tuple[dict, nn.Module]:
    """Train ``network`` from scratch on uint8 ``train_images`` and test it at ``num_evals`` evenly
    spaced epochs (always including the last).

    Returns ``({"best_top1", "last_top1", "best_epoch", "curve": [{"epoch", "top1"}], "epochs"}, model)``,
    top-1 in percent; ``best_epoch`` is the earliest evaluated epoch reaching ``best_top1``; the model
    is the one at the last epoch, in eval mode.
    """
    height, width = train_images.shape[-2:]
    if height != width:
        raise ValueError(f"train image size {height}x{width} is invalid; valid: square images")
    eval_at = set(evaluation_epochs(epochs, num_evals))
    # Seeding only the CPU default generator inside the fork leaves every global RNG as it was.
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(derive_seed(seed, MODEL_INIT_STREAM))
        model = create_network(network, num_classes, height, **network_kwargs)
    model.to(device)
    parameter_optimizer = make_optimizer(optimizer, model.parameters(), lr, momentum, weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(parameter_optimizer, milestones=milestones, gamma=gamma)
    generator = torch.Generator().manual_seed(derive_seed(seed, DATA_STREAM))
    data = to_unit_float(train_images, device)
    targets = train_labels.to(device)
    curve = []
    bar = tqdm(range(1, epochs + 1), desc=f"train {network}", disable=not progress)
    for epoch in bar:
        model.train()
        order = torch.randperm(len(data), generator=generator).to(device)
        for start in range(0, len(data), batch_size):
            batch = order[start:start + batch_size]
            loss = augmented_loss(model, data[batch], targets[batch], rrc_scale=rrc_scale,
                                  cutmix_alpha=cutmix_alpha, cutmix_prob=cutmix_prob, mean=mean, std=std,
                                  generator=generator)
            parameter_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            parameter_optimizer.step()
        scheduler.step()
        if epoch in eval_at:
            accuracy = top1(model, test_images, test_labels, mean, std, batch_size, device)
            curve.append({"epoch": epoch, "top1": accuracy})
            bar.set_postfix(top1=f"{accuracy:.2f}")
    best = max(curve, key=lambda point: point["top1"])
    result = {"best_top1": best["top1"], "last_top1": curve[-1]["top1"], "best_epoch": best["epoch"],
              "curve": curve, "epochs": epochs}
    return result, model.eval()
