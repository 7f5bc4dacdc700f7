"""The diffusion backbone: a VAE, a class-conditional DiT with learned sigma, and its noise schedule.

One loader serves every source: a Hugging Face hub id (``facebook/DiT-XL-2-256``), a local
directory in the diffusers layout (``transformer/``, ``vae/``, optional ``scheduler/``), an official
DiT checkpoint file (``DiT-XL-2-256x256.pt``, converted at load: ``official_dit.py``), or the tiny
embedded backbone that the DAG trains and saves in the diffusers layout. Every backbone carries its
``numerics`` (``official``: the network computes the official DiT; ``diffusers``: the stock
diffusers network), applied at load and recorded in each saved backbone's ``backbone.json``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from evaluation.core.artifacts import os_errors_naming, verify_folder
from evaluation.core.errors import InputError, first_complaint

from .official_dit import apply_numerics, load_official_checkpoint, untied

if TYPE_CHECKING:  # diffusers is imported where a backbone is built: importing it costs about 2 s,
    # and every job that validates a config imports this module through the method registry
    from diffusers import AutoencoderKL, DDPMScheduler, DiTTransformer2DModel

LAYOUT = ("a local directory holding transformer/, vae/ and scheduler/ (diffusers layout) or an official DiT "
          "checkpoint file (DiT-XL-2-256x256.pt) with backbone.vae set")
RECORD = "backbone.json"   # beside transformer/ in a saved backbone: {"numerics": ...}


class BackboneError(InputError, RuntimeError):
    """The backbone cannot be loaded; the message names the source and how to provide it."""


def dit_scheduler(config: dict | None = None) -> DDPMScheduler:
    """DiT's diffusion: linear betas over 1000 steps, learned-range variance, linspace respacing.

    With these settings ``set_timesteps(50)`` yields DiT's ``create_diffusion("50")`` timesteps
    (index i -> round(i*999/49)), see methods_and_protocols.md §1.
    """
    from diffusers import DDPMScheduler

    base = dict(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
    base.update({k: v for k, v in (config or {}).items() if k in base})
    return DDPMScheduler(**base, variance_type="learned_range", timestep_spacing="linspace",
                         clip_sample=False, prediction_type="epsilon")


@dataclass
class Backbone:
    transformer: DiTTransformer2DModel
    vae: AutoencoderKL
    scheduler: DDPMScheduler
    numerics: str = "official"   # official_dit.NUMERICS

    def __post_init__(self):
        apply_numerics(self.transformer, self.numerics)

    @property
    def num_classes(self) -> int:
        return self.transformer.config.num_embeds_ada_norm

    @property
    def null_label(self) -> int:
        """Row of the label table used for the unconditional branch of CFG (DiT: 1000)."""
        return self.num_classes

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        cfg = self.transformer.config
        return (cfg.in_channels, cfg.sample_size, cfg.sample_size)

    @property
    def learns_sigma(self) -> bool:
        return self.transformer.config.out_channels == 2 * self.transformer.config.in_channels

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    def to(self, device: str | torch.device) -> Backbone:
        self.transformer.to(device)
        self.vae.to(device)
        return self

    @torch.no_grad()
    def encode(self, images: torch.Tensor, sample: bool = False,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """uint8 images -> scaled latents (posterior mean, or a posterior sample when ``sample``)."""
        x = images.to(self.device, torch.float32) / 127.5 - 1.0
        dist = self.vae.encode(x).latent_dist
        if sample:
            noise = torch.randn(dist.mean.shape, generator=generator).to(self.device)
            z = dist.mean + dist.std * noise
        else:
            z = dist.mean
        return z * self.vae.config.scaling_factor

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents -> uint8 images (DiT's ``vae.decode(z / 0.18215)``, then [-1,1] -> [0,255])."""
        x = self.vae.decode(latents / self.vae.config.scaling_factor).sample
        return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        with os_errors_naming(directory):
            with untied(self.transformer):
                self.transformer.save_pretrained(directory / "transformer")
            self.vae.save_pretrained(directory / "vae")
        self.scheduler.save_pretrained(directory / "scheduler")
        (directory / RECORD).write_text(json.dumps({"numerics": self.numerics}) + "\n")


def _load(cls, source: str, subfolder: str | None, what: str):
    local = Path(source)
    if local.is_dir():
        path = local / subfolder if subfolder else local
        if not path.is_dir():
            raise BackboneError(f"{what}: {path} does not exist; backbone.source must be {LAYOUT}")
        return _load_complete(cls, path, what)
    try:
        return cls.from_pretrained(source, subfolder=subfolder, low_cpu_mem_usage=False)
    except (OSError, ValueError) as err:
        raise BackboneError(
            f"{what}: cannot load hub id '{source}' (offline or not cached: {type(err).__name__}); "
            f"run `hf download {source}` on a machine with internet, or set "
            f"backbone.source to {LAYOUT}") from err


def _load_complete(cls, path: Path, what: str):
    """A local diffusers model whose weights fill its ``config.json`` exactly: weights of another
    architecture (torch's size mismatch) and weights missing from the checkpoint (which diffusers
    would initialise at random with only a warning) are one :class:`BackboneError` line each."""
    fix = "save the backbone again or set backbone.source to a checkpoint that matches its config.json"
    try:
        model, info = cls.from_pretrained(path, low_cpu_mem_usage=False, output_loading_info=True)
    except RuntimeError as err:
        raise BackboneError(f"{what}: the weights in {path} are of another architecture than its config.json "
                            f"({first_complaint(err)}); {fix}") from None
    if info["missing_keys"]:
        raise BackboneError(f"{what}: {path} lacks {len(info['missing_keys'])} weights of its config.json "
                            f"(e.g. {min(info['missing_keys'])}), which would start at random; {fix}")
    return model


def load_backbone(source: str, vae: str | None = None, device: str = "cpu", numerics: str | None = None,
                  num_heads: int | None = None) -> Backbone:
    """Load DiT + VAE + scheduler from a hub id, a local directory or an official checkpoint file.

    ``vae`` overrides ``vae/`` (and is required with a checkpoint file, which holds only the DiT).
    ``numerics`` defaults to the one a saved backbone records in ``backbone.json``, else ``official``
    (hub and official weights are the official DiT's); ``num_heads`` is needed only for a checkpoint
    whose hidden size is not one of the official configs'. Label dropout inside diffusers' label
    embedders is disabled: the suite applies the null label itself (training) or explicitly (CFG).
    """
    from diffusers import AutoencoderKL, DDPMScheduler, DiTTransformer2DModel

    local = Path(source)
    if local.is_file():
        if not vae:
            raise BackboneError(f"{source} is an official DiT checkpoint, which holds only the DiT; set backbone.vae "
                                f"to the VAE it was trained with (stabilityai/sd-vae-ft-ema or a local AutoencoderKL "
                                f"directory)")
        transformer = load_official_checkpoint(local, num_heads, numerics or "official")
        scheduler_dir = None
    else:
        transformer = _load(DiTTransformer2DModel, source, "transformer", "DiT transformer")
        scheduler_dir = local / "scheduler"
        if numerics is None and (local / RECORD).is_file():
            numerics = json.loads((local / RECORD).read_text())["numerics"]
    autoencoder = _load(AutoencoderKL, vae, None, "VAE") if vae else _load(AutoencoderKL, source, "vae", "VAE")
    scheduler = dit_scheduler(DDPMScheduler.load_config(scheduler_dir)
                              if scheduler_dir is not None and scheduler_dir.is_dir() else None)
    disable_label_dropout(transformer)
    transformer.eval().requires_grad_(False)
    autoencoder.eval().requires_grad_(False)
    return Backbone(transformer, autoencoder, scheduler, numerics or "official").to(device)


def open_backbone(artifact_dir: str | Path, device: str = "cpu") -> Backbone:
    """Load the backbone artifact of a profile: trained weights, or a manifest naming a source.

    ``backbones/<name>/`` holds either the diffusers layout with ``backbone.json`` (tiny, Minimax) or
    only a ``manifest.json`` whose ``source``/``vae``/``numerics``/``num_heads`` name a hub id, a
    local directory or an official checkpoint file (DiT-XL/2). Its files are checked against the
    manifest's digests first.
    """
    artifact_dir = Path(artifact_dir)
    verify_folder(artifact_dir, backbone_rule(artifact_dir))
    if (artifact_dir / "transformer").is_dir():
        return load_backbone(str(artifact_dir), device=device)
    record = json.loads((artifact_dir / "manifest.json").read_text())
    return load_backbone(record["source"], record.get("vae"), device=device, numerics=record["numerics"],
                         num_heads=record.get("num_heads"))


def backbone_rule(artifact_dir: Path) -> str:
    """The rule that writes a backbone artifact: ``backbones/<name>-finetuned/<method>/<dataset>`` is
    a fine-tuned one, ``backbones/<name>`` the profile's own (trained or linked)."""
    if artifact_dir.parent.parent.name.endswith("-finetuned"):
        return "finetune_backbone"
    return "train_backbone or load_backbone"


def disable_label_dropout(transformer: DiTTransformer2DModel) -> None:
    from diffusers.models.embeddings import LabelEmbedding

    for module in transformer.modules():
        if isinstance(module, LabelEmbedding):
            module.dropout_prob = 0.0
