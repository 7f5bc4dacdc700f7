"""``d4m``: D⁴M (Su et al., CVPR 2024), ported to the shared DiT backbone.

**A port, not the original.** D⁴M (suduo94/D4M) uses Stable Diffusion v1.5 with the class name as
text prompt (negative prompt "cartoon, anime, painting") and guidance 8; no official DiT version
exists. The suite keeps its disentangled-diffusion idea on the shared class-conditional DiT
(methods_and_protocols.md §2 "D4M"):

1. Prototypes: per class, scikit-learn ``MiniBatchKMeans(n_clusters=IPC, batch_size=km_expand·IPC)``
   on the VAE latents of the class's training images (the reference's clustering, with a seed
   derived from (seed, class) instead of ``random_state=0``).
2. Synthesis: each prototype is noised to ``strength`` (0.7) and denoised class-conditionally
   with the shared sampler and CFG, as diffusers' image-to-image pipelines do: the sampler starts
   at step int(S·(1 − strength)) of S (35 of 50 steps remain at 0.7). At strength 1 sampling starts
   from pure noise and the method is plain ``dit``.
"""
from __future__ import annotations

import torch

from evaluation.errors import InputError
from evaluation.seeding import derive_seed

from .diffusion.generation import Generation
from .registry import DistillContext, SyntheticSet, register_method

PORT_NOTE = ("d4m is a port of D4M to the shared DiT backbone (the original uses Stable Diffusion v1.5 "
             "with text prompts); its numbers are not the D4M paper's")


def prototypes(latents: torch.Tensor, ipc: int, km_expand: int, seed: int) -> torch.Tensor:
    """Mini-batch k-means centres [IPC, *latent] of one class's latents (D⁴M ``gen_prototype.py``)."""
    if ipc > len(latents):
        raise InputError(f"d4m: ipc {ipc} exceeds the {len(latents)} training images of the class, so "
                         f"k-means cannot find {ipc} prototypes; lower the IPC")
    # imported here, not at the top: importing scikit-learn costs every distill job about 1 s
    from sklearn.cluster import MiniBatchKMeans

    km = MiniBatchKMeans(n_clusters=ipc, batch_size=km_expand * ipc, random_state=seed % 2 ** 32, n_init=3)
    km.fit(latents.flatten(1).double().numpy())
    return torch.from_numpy(km.cluster_centers_).to(latents.dtype).view(ipc, *latents.shape[1:])


def start_step(steps: int, strength: float) -> int:
    """First step of an image-to-image run: diffusers' ``t_start = S - int(S·strength)``."""
    return steps - int(steps * strength)


@register_method("d4m", needs_backbone=True, needs_latents=True, table_note=PORT_NOTE,
                 ipc_limited_by_class=True)
def distill(ctx: DistillContext) -> SyntheticSet:
    params = ctx.params
    real = torch.load(ctx.latents_path)
    protos = torch.stack([prototypes(real["mean"][real["labels"] == c], ctx.ipc, params["km_expand"],
                                     derive_seed(ctx.seed, c, 4)) for c in ctx.classes])
    generation = Generation.from_context(ctx)
    start = start_step(generation.sampler.steps, params["strength"])
    return SyntheticSet(*generation.generate(batch_init=lambda labels, index: protos[ctx.rows(labels), index],
                                             start=start))
