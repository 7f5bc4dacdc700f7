"""The smoke kit: everything a paper profile needs to run for real on a CPU, in miniature.

* A fake ImageNet tree (``IMAGENET_LAYOUT``) holding every subset of ``imagenet_subsets.yaml`` inside
  a full 1000-class ImageNet-1K whose sorted order puts each subset's wnid at its true class id
  (``fake_imagenet.imagenet_1k_wnids``). Images are small JPEGs of a class-dependent shape and colour
  with per-image noise, jitter, size and orientation (``fake_imagenet.shape_image``).
* A miniature DiT-XL/2-*shaped* backbone: the ``DiTTransformer2DModel`` of DiT-XL/2 (patch 2 on a
  4x32x32 latent, 1000 classes + the null class, learned sigma) at width 32 and depth 2, and an 8x
  ``AutoencoderKL`` (256 px <-> 32x32x4), saved twice as one network:
  (a) as the hub snapshot of ``facebook/DiT-XL-2-256`` is laid out (``model_index.json``,
  ``transformer/`` with the ``Transformer2DModel`` class name and a copy of the shared label table and
  t-MLP in every block, ``vae/``, ``scheduler/`` with DDIM's config), exactly as diffusers'
  ``scripts/convert_dit_to_diffusers.py`` writes it; and (b) as an official ``DiT-XL-2-256x256.pt``
  (a bare state dict of facebookresearch/DiT's ``models.py``) with the VAE in its own directory.

Width 32 is no official DiT config, so the ``.pt`` form needs ``backbone.num_heads: NUM_HEADS``.

``build_smoke_kit(root)`` builds all of it once per root (a marker written last guards a rebuild).
"""
from __future__ import annotations

import fcntl
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from evaluation.data.datasets import read_image
from tests.fake_imagenet import LONG_SIDE_MAX, imagenet_1k_wnids, shape_image, write_shape_class

KIT_VERSION = 1
MARKER = "smoke_kit.json"                 # written last: its presence means a complete kit
IMAGE_SIZE, LATENT_SIZE = 256, 32         # DiT-XL/2-256 through an 8x VAE
NUM_CLASSES = 1000                        # + the null class 1000
NUM_HEADS = 2
MINI = dict(vae_channels=[8, 8, 8, 8], latent_channels=4, dit_layers=2, dit_heads=NUM_HEADS, dit_head_dim=16,
            dit_patch_size=2)             # methods/diffusion/train_tiny.py build_vae/build_dit settings
PERTURB_STD = 0.05                        # seeded noise added to every DiT weight
PATCH_GAIN, CARRIER = 20.0, 400.0         # the x_t -> ε̂ path of add_patch_path ...
BLOCK_LEAK, FINAL_STD = 0.02, 0.002       # ... and how much the blocks and the final layer's noise move ε̂
# what diffusers' scripts/convert_dit_to_diffusers.py gives the hub's DiT-XL/2 besides its sizes
HUB_TRANSFORMER = dict(attention_bias=True, activation_fn="gelu-approximate", norm_type="ada_norm_zero",
                       norm_elementwise_affine=False)
HUB_SCHEDULER = dict(num_train_timesteps=1000, beta_schedule="linear", prediction_type="epsilon", clip_sample=False)

# the kit's paths under its root
IMAGENET_DIR, BACKBONE_DIR, VAE_DIR = "imagenet", "dit-xl-2-256-mini", "sd-vae-mini"
OFFICIAL_PT = "DiT-XL-2-256x256-mini.pt"


@dataclass(frozen=True)
class SmokeKit:
    imagenet_root: Path      # train/<wnid>/*.JPEG, val/<wnid>/*.JPEG of all 1000 classes
    backbone_dir: Path       # hub layout: backbone.source for the diffusers form
    official_pt: Path        # official DiT checkpoint: backbone.source for the .pt form ...
    vae_dir: Path            # ... with backbone.vae set to this AutoencoderKL directory
    num_heads: int = NUM_HEADS   # backbone.num_heads for the .pt form (width 32 is no official config)


# ----------------------------------------------------------------------------- ImageNet

def make_smoke_imagenet(root: str | Path, train_per_class: int = 4, val_per_class: int = 2,
                        max_side: int = LONG_SIDE_MAX) -> Path:
    """Write a 1000-class fake ImageNet under ``root`` (every subset's wnid at its ImageNet-1K id,
    ``fake_imagenet.imagenet_1k_wnids``); class ``k`` of the sorted list draws its images as position ``k``
    (``fake_imagenet.shape_image``). Deterministic; returns ``root``."""
    root = Path(root)
    for position, wnid in enumerate(imagenet_1k_wnids()):
        write_shape_class(root, wnid, position, train_per_class, val_per_class, max_side=max_side)
    return root


# ----------------------------------------------------------------------------- the mini DiT-XL/2

def mini_networks(seed: int = 0):
    """(transformer, vae): the stock diffusers DiT (official per-block copies equal) and the VAE, seeded.

    Every DiT weight gets seeded noise (the official DiT zero-initialises its adaLN and final layers, so
    a fresh official checkpoint would not depend on its input), then :func:`add_patch_path` makes ε̂
    track x_t; the shared label table and t-MLP are copied from block 0 into every block, as the
    official conversion does. The VAE's scaling factor makes the smoke images' latents unit-std, the
    role of SD's 0.18215 (methods/diffusion/train_tiny.py sets it the same way)."""
    from methods.diffusion.official_dit import SHARED
    from methods.diffusion.train_tiny import build_dit, build_vae

    with torch.random.fork_rng(devices=[]):   # diffusers initialises from the global generator
        torch.manual_seed(seed)
        vae = build_vae(MINI, IMAGE_SIZE).eval()
        dit = build_dit(MINI, LATENT_SIZE, NUM_CLASSES, numerics="diffusers").eval()
    gen = torch.Generator().manual_seed(seed)
    state = {name: (p + PERTURB_STD * torch.randn(p.shape, generator=gen)).detach()
             for name, p in dit.named_parameters()}
    add_patch_path(state, MINI["latent_channels"], MINI["dit_patch_size"], gen)
    for path in SHARED:
        for b in range(1, len(dit.transformer_blocks)):
            for name in [n for n in state if n.startswith(f"transformer_blocks.0.{path}.")]:
                state[name.replace("transformer_blocks.0.", f"transformer_blocks.{b}.", 1)] = state[name]
    dit.load_state_dict(state, strict=True)   # pos_embed is a fixed, unsaved buffer
    vae.register_to_config(scaling_factor=unit_scaling_factor(vae))
    return dit, vae


@torch.no_grad()
def unit_scaling_factor(vae, count: int = 8) -> float:
    """1 / std of the VAE's posterior means of ``count`` smoke images (one per class position 0..)."""
    images = []
    for position in range(count):
        buffer = io.BytesIO()
        shape_image(position, 0, 0).save(buffer, format="PNG")
        images.append(read_image(buffer, IMAGE_SIZE))
    mean = vae.encode(torch.stack(images).float() / 127.5 - 1.0).latent_dist.mean
    return round(float(1.0 / mean.std()), 4)


def add_patch_path(state: dict[str, torch.Tensor], channels: int, patch: int, gen: torch.Generator) -> None:
    """Make ε̂ ≈ x_t, as a DiT trained on latents near 0 would, so that sampled latents stay bounded.

    A random DiT predicts ε regardless of x_t, and its samples grow to hundreds or thousands (the golden
    README's "eps residual"). Here the patch embedding writes each token's own patch, ``PATCH_GAIN``
    times, into the first ``channels * patch**2`` hidden dimensions (the signal), and a constant carrier
    of ±``CARRIER`` fills the others, so that every LayerNorm divides by about ``CARRIER / √2`` whatever
    x_t: the signal stays linear in x_t through the final layer, whose ε rows read it back into the same
    pixels. The blocks write into the signal only ``BLOCK_LEAK`` as much as elsewhere, and the final
    layer is redrawn at ``FINAL_STD``: timestep and class (adaLN) still move ε̂, by about a tenth."""
    embed, embed_bias = state["pos_embed.proj.weight"], state["pos_embed.proj.bias"]   # (H, C, p, p), (H,)
    hidden, signal = len(embed_bias), channels * patch * patch
    for name in ("proj_out_1.weight", "proj_out_1.bias", "proj_out_2.weight", "proj_out_2.bias"):
        state[name] = FINAL_STD * torch.randn(state[name].shape, generator=gen)
    for name, value in state.items():   # the blocks' writes into the residual stream
        if name.endswith(("attn1.to_out.0.weight", "attn1.to_out.0.bias", "ff.net.2.weight", "ff.net.2.bias")):
            value[:signal] *= BLOCK_LEAK
    head = state["proj_out_2.weight"]                                                   # (p*p*2C, H)
    for c in range(channels):
        for p in range(patch):
            for q in range(patch):
                k = (c * patch + p) * patch + q                  # the hidden dimension carrying this value
                embed[k, c, p, q] += PATCH_GAIN
                head[(p * patch + q) * 2 * channels + c, k] += CARRIER / (2 ** 0.5 * PATCH_GAIN)  # unpatchify (p, q, c)
    embed_bias[signal:] += CARRIER * torch.tensor([1.0, -1.0]).repeat(hidden)[:hidden - signal]


def official_state_dict(dit) -> dict[str, torch.Tensor]:
    """The facebookresearch/DiT ``models.py`` state dict of a diffusers DiT whose per-block copies are
    equal: the inverse of ``official_dit.convert_state_dict``, in the official module order."""
    s = {k: v.detach().clone() for k, v in dit.state_dict().items()}
    emb = "transformer_blocks.0.norm1.emb"
    out = {"pos_embed": dit.pos_embed.pos_embed.detach().clone().float(),
           "x_embedder.proj.weight": s["pos_embed.proj.weight"], "x_embedder.proj.bias": s["pos_embed.proj.bias"]}
    for kind in ("weight", "bias"):
        out[f"t_embedder.mlp.0.{kind}"] = s[f"{emb}.timestep_embedder.linear_1.{kind}"]
    for kind in ("weight", "bias"):
        out[f"t_embedder.mlp.2.{kind}"] = s[f"{emb}.timestep_embedder.linear_2.{kind}"]
    out["y_embedder.embedding_table.weight"] = s[f"{emb}.class_embedder.embedding_table.weight"]
    for b in range(len(dit.transformer_blocks)):
        block, official = f"transformer_blocks.{b}", f"blocks.{b}"
        for kind in ("weight", "bias"):
            out[f"{official}.attn.qkv.{kind}"] = torch.cat([s[f"{block}.attn1.to_{x}.{kind}"] for x in "qkv"])
        for kind in ("weight", "bias"):
            out[f"{official}.attn.proj.{kind}"] = s[f"{block}.attn1.to_out.0.{kind}"]
        for fc, diffusers_name in (("fc1", "ff.net.0.proj"), ("fc2", "ff.net.2")):
            for kind in ("weight", "bias"):
                out[f"{official}.mlp.{fc}.{kind}"] = s[f"{block}.{diffusers_name}.{kind}"]
        for kind in ("weight", "bias"):
            out[f"{official}.adaLN_modulation.1.{kind}"] = s[f"{block}.norm1.linear.{kind}"]
    for kind in ("weight", "bias"):
        out[f"final_layer.linear.{kind}"] = s[f"proj_out_2.{kind}"]
    for kind in ("weight", "bias"):
        out[f"final_layer.adaLN_modulation.1.{kind}"] = s[f"proj_out_1.{kind}"]
    return out


def save_hub_layout(dit, vae, directory: Path) -> None:
    """``DiTPipeline.save_pretrained`` of the hub's DiT-XL/2 layout: the transformer as the
    ``Transformer2DModel`` the conversion script builds (same keys as ``DiTTransformer2DModel``)."""
    from diffusers import DDIMScheduler, DiTPipeline, Transformer2DModel

    cfg = dit.config
    transformer = Transformer2DModel(
        sample_size=cfg.sample_size, num_layers=cfg.num_layers, attention_head_dim=cfg.attention_head_dim,
        in_channels=cfg.in_channels, out_channels=cfg.out_channels, patch_size=cfg.patch_size,
        num_attention_heads=cfg.num_attention_heads, num_embeds_ada_norm=cfg.num_embeds_ada_norm,
        **HUB_TRANSFORMER)
    transformer.load_state_dict(dit.state_dict(), strict=True)
    pipeline = DiTPipeline(transformer=transformer.eval(), vae=vae, scheduler=DDIMScheduler(**HUB_SCHEDULER))
    pipeline.save_pretrained(directory)


def make_mini_dit_xl(out_dir: str | Path, seed: int = 0) -> tuple[Path, Path, Path]:
    """Save the mini DiT-XL/2 under ``out_dir`` as ``(hub-layout dir, official .pt, VAE dir)``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dit, vae = mini_networks(seed)
    backbone_dir, official_pt, vae_dir = out_dir / BACKBONE_DIR, out_dir / OFFICIAL_PT, out_dir / VAE_DIR
    save_hub_layout(dit, vae, backbone_dir)
    torch.save(official_state_dict(dit), official_pt)
    vae.save_pretrained(vae_dir)
    return backbone_dir, official_pt, vae_dir


# ----------------------------------------------------------------------------- the kit

def build_smoke_kit(root: str | Path, train_per_class: int = 4, val_per_class: int = 2, seed: int = 0) -> SmokeKit:
    """The whole kit under ``root``, built once: a root whose marker records the same settings is
    returned as is; otherwise the kit's own paths are removed and written again, the marker last.
    A lock file serialises processes that share a root (pytest-xdist workers, parallel sessions)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    settings = {"version": KIT_VERSION, "train_per_class": train_per_class, "val_per_class": val_per_class,
                "seed": seed}
    kit = SmokeKit(root / IMAGENET_DIR, root / BACKBONE_DIR, root / OFFICIAL_PT, root / VAE_DIR)
    marker = root / MARKER
    with open(root / f"{MARKER}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file() and json.loads(marker.read_text()) == settings:
            return kit
        marker.unlink(missing_ok=True)
        for path in (kit.imagenet_root, kit.backbone_dir, kit.vae_dir):
            shutil.rmtree(path, ignore_errors=True)
        kit.official_pt.unlink(missing_ok=True)
        make_smoke_imagenet(kit.imagenet_root, train_per_class, val_per_class)
        make_mini_dit_xl(root, seed)
        marker.write_text(json.dumps(settings) + "\n")
    return kit
