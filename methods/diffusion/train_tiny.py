"""Train the tiny embedded backbone: an ``AutoencoderKL`` and a class-conditional learned-sigma
``DiTTransformer2DModel`` (the classes of DiT-XL/2 and its VAE, scaled down) on a prepared split.

The VAE is trained first (reconstruction MSE + a small KL), its scaling factor set to 1 / std of the
training latents (the recipe behind SD's 0.18215), then the DiT is trained on posterior samples of
those latents with DiT's hybrid loss, label dropout to the null id for CFG, and an EMA of its
weights that is what gets saved. Saved in the diffusers layout, so ``load_backbone`` reads it like
any local DiT. Both phases checkpoint to ``<out>.ckpt`` at the checkpoint cadence and an interrupted
run resumes from it, ending bit-identical (evaluation/core/checkpoint.py).

Usage: ``python workflow/scripts/train_backbone.py --spec JSON --data DIR --out DIR --loss-log CSV``
"""
from __future__ import annotations

import copy
import csv
import time
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DiTTransformer2DModel
from tqdm import tqdm

from evaluation.core.artifacts import atomic_path, manifest, write_manifest
from evaluation.core.checkpoint import Checkpoint, job_identity, restore_rng, rng_state
from evaluation.core.seeding import BackboneTrainingStream, generator
from evaluation.data.datasets import load_split

from .backbone import Backbone, disable_label_dropout, dit_scheduler
from .losses import DiffusionLoss
from .official_dit import apply_numerics
from .randomness import SeededTraining

LOG_EVERY = 25


def build_vae(cfg: dict, image_size: int) -> AutoencoderKL:
    channels = tuple(cfg["vae_channels"])
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=cfg["latent_channels"],
        down_block_types=("DownEncoderBlock2D",) * len(channels),
        up_block_types=("UpDecoderBlock2D",) * len(channels),
        block_out_channels=channels, layers_per_block=1, norm_num_groups=min(8, min(channels)),
        sample_size=image_size, mid_block_add_attention=False)


def build_dit(cfg: dict, latent_size: int, num_classes: int, numerics: str = "official") -> DiTTransformer2DModel:
    """A freshly initialised DiT with ``numerics`` applied (official: one shared label table and t-MLP)."""
    dit = DiTTransformer2DModel(
        num_attention_heads=cfg["dit_heads"], attention_head_dim=cfg["dit_head_dim"],
        in_channels=cfg["latent_channels"], out_channels=2 * cfg["latent_channels"],
        num_layers=cfg["dit_layers"], sample_size=latent_size, patch_size=cfg["dit_patch_size"],
        num_embeds_ada_norm=num_classes)
    disable_label_dropout(dit)
    return apply_numerics(dit, numerics, fresh=True)


class LossLog:
    """Running mean of the loss, written every LOG_EVERY steps to a CSV and the progress bar. Its
    ``state()`` (rows so far, running sum) goes into checkpoints, so a resumed run writes the same CSV."""

    def __init__(self, path: Path, state: dict | None = None):
        self.fh = open(path, "w", newline="")
        self.writer = csv.writer(self.fh)
        self.writer.writerow(["phase", "step", "loss"])
        self.rows = [] if state is None else state["rows"]
        self.writer.writerows(self.rows)
        self.total, self.count = (0.0, 0) if state is None else (state["total"], state["count"])

    def add(self, phase: str, step: int, loss: float, bar: tqdm) -> None:
        self.total, self.count = self.total + loss, self.count + 1
        if self.count == LOG_EVERY:
            mean = self.total / self.count
            self.rows.append([phase, step, f"{mean:.6f}"])
            self.writer.writerow(self.rows[-1])
            self.fh.flush()
            bar.set_postfix(loss=f"{mean:.4f}")
            self.total, self.count = 0.0, 0

    def state(self) -> dict:
        return {"rows": list(self.rows), "total": self.total, "count": self.count}

    def close(self) -> None:
        self.fh.close()


def train_vae(vae: AutoencoderKL, images: torch.Tensor, cfg: dict, log: LossLog, device: str,
              checkpoint: Checkpoint, state: dict | None) -> None:
    """VAE training loop, from ``state`` (a checkpoint of this phase) when given."""
    opt = torch.optim.Adam(vae.parameters(), lr=cfg["vae_lr"])
    gen = generator(cfg["seed"], BackboneTrainingStream.VAE)
    done = 0
    if state is not None:
        vae.load_state_dict(state["vae"])
        opt.load_state_dict(state["optimizer"])
        restore_rng(state["rng"], gen)
        done = state["done"]
    x_all = images.float().div(127.5).sub(1.0)
    bar = tqdm(range(done, cfg["vae_steps"]), initial=done, total=cfg["vae_steps"], desc="vae", mininterval=5)
    for step in bar:
        idx = torch.randint(0, len(x_all), (cfg["vae_batch_size"],), generator=gen)
        x = x_all[idx].to(device)
        dist = vae.encode(x).latent_dist
        z = dist.mean + dist.std * torch.randn(dist.mean.shape, generator=gen).to(device)
        loss = ((vae.decode(z).sample - x) ** 2).mean() + cfg["vae_kl_weight"] * dist.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        log.add("vae", step, loss.item(), bar)
        if checkpoint.due():
            checkpoint.save({"phase": "vae", "done": step + 1, "vae": vae.state_dict(), "optimizer": opt.state_dict(),
                             "log": log.state(), "rng": rng_state(gen)}, at=f"vae step {step + 1}")


@torch.no_grad()
def latent_posteriors(vae: AutoencoderKL, images: torch.Tensor, device: str, batch: int = 256):
    means, stds = [], []
    for i in range(0, len(images), batch):
        dist = vae.encode(images[i:i + batch].to(device).float() / 127.5 - 1.0).latent_dist
        means.append(dist.mean)
        stds.append(dist.std)
    return torch.cat(means), torch.cat(stds)


def train_dit(backbone: Backbone, mean: torch.Tensor, std: torch.Tensor, labels: torch.Tensor,
              cfg: dict, log: LossLog, checkpoint: Checkpoint, state: dict | None) -> None:
    """DiT training loop, from ``state`` (a checkpoint of this phase) when given; leaves the EMA
    weights in ``backbone.transformer``."""
    device = mean.device
    dit = backbone.transformer.train().requires_grad_(True)
    ema = copy.deepcopy(dit).requires_grad_(False)
    opt = torch.optim.AdamW(dit.parameters(), lr=cfg["dit_lr"], weight_decay=0.0)
    loss_fn = DiffusionLoss(backbone)
    gen = generator(cfg["seed"], BackboneTrainingStream.DIT)
    done = 0
    if state is not None:
        dit.load_state_dict(state["dit"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        restore_rng(state["rng"], gen)
        done = state["done"]
    scale = backbone.vae.config.scaling_factor
    bar = tqdm(range(done, cfg["dit_steps"]), initial=done, total=cfg["dit_steps"], desc="dit", mininterval=5)
    for step in bar:
        idx = torch.randint(0, len(mean), (cfg["dit_batch_size"],), generator=gen).to(device)
        z = (mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=gen).to(device)) * scale
        drop = torch.rand(len(idx), generator=gen).to(device) < cfg["class_dropout"]
        y = torch.where(drop, backbone.null_label, labels[idx])
        loss = loss_fn(z, y, SeededTraining(gen))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), dit.parameters()):
                p_ema.lerp_(p, 1.0 - cfg["ema_decay"])
        log.add("dit", step, loss.item(), bar)
        if checkpoint.due():
            checkpoint.save({"phase": "dit", "done": step + 1, "vae": backbone.vae.state_dict(),
                             "dit": dit.state_dict(), "ema": ema.state_dict(), "optimizer": opt.state_dict(),
                             "log": log.state(), "rng": rng_state(gen)}, at=f"dit step {step + 1}")
    backbone.transformer = ema.eval()


def train_tiny_backbone(data_dir: Path, cfg: dict, num_classes: int, out_dir: Path,
                        loss_log: Path, device: str = "cpu", numerics: str = "official") -> Backbone:
    """Train VAE then DiT on the train split of ``data_dir`` and save the backbone to ``out_dir``,
    resuming from the checkpoint beside ``out_dir`` when it holds this job's state."""
    started = time.time()
    checkpoint = Checkpoint.beside(out_dir, job_identity("train_tiny", {"train": cfg, "num_classes": num_classes,
                                                                       "numerics": numerics},
                                                         [data_dir], device=device))
    state = checkpoint.load()
    torch.manual_seed(cfg["seed"])  # parameter initialisation of the diffusers modules
    images, labels = load_split(data_dir, "train")
    log = LossLog(loss_log, state["log"] if state is not None else None)
    vae = build_vae(cfg, images.shape[-1]).to(device)
    if state is not None and state["phase"] == "dit":
        vae.load_state_dict(state["vae"])
    else:
        train_vae(vae, images, cfg, log, device, checkpoint, state)
    vae.eval().requires_grad_(False)
    mean, std = latent_posteriors(vae, images, device)
    vae.register_to_config(scaling_factor=float(1.0 / mean.std()))
    dit = build_dit(cfg, mean.shape[-1], num_classes, numerics).to(device)
    backbone = Backbone(dit, vae, dit_scheduler(), numerics)
    train_dit(backbone, mean, std, labels.to(device), cfg, log, checkpoint,
              state if state is not None and state["phase"] == "dit" else None)
    log.close()
    with atomic_path(out_dir) as tmp:
        backbone.save(tmp)
        write_manifest(tmp, manifest(
            cfg, seed=cfg["seed"], device=device, started=started,
            scaling_factor=vae.config.scaling_factor, num_classes=num_classes))
    checkpoint.remove()
    return backbone
