"""``d4m``: D⁴M (Su et al., CVPR 2024), ported to the shared DiT backbone.

**A port, not the original.** D⁴M (suduo94/D4M) uses Stable Diffusion v1.5 with the class name as
text prompt (negative prompt "cartoon, anime, painting") and guidance 8; no official DiT version
exists (MGD3 re-implemented "DiT+D4M" without releasing code). The suite keeps its
disentangled-diffusion stage on the shared class-conditional DiT; each step names the reference
script it follows (methods_and_protocols.md §2 "D4M"):

1. Prototypes (``distillation/gen_prototype.py``, ``initialize_km_models`` / ``prototype_kmeans``;
   :func:`prototypes`): per class, scikit-learn ``MiniBatchKMeans(n_clusters=IPC,
   batch_size=km_expand·IPC)`` centres of the VAE latents of the class's training images (km_expand 1
   as in ``gen_prototype_imgnt.sh``). Departures: the reference streams the latents of 512 px images
   from Stable Diffusion's VAE through one ``partial_fit`` per chunk of km_expand·IPC latents, in
   data-loader order, with ``random_state=0`` and ``n_init="auto"`` (one k-means++ init); the suite
   runs ``fit`` on all of the class's posterior-mean latents of the backbone VAE, with ``n_init=3``
   and ``random_state`` derived from (seed, class, 4).
2. Synthesis (``distillation/gen_syn_image.py`` with ``--strength 0.7`` of
   ``gen_syn_image_imgnt.sh``): each prototype is noised to ``strength`` and denoised, as diffusers'
   image-to-image pipelines do (:func:`start_step`: ``get_timesteps``'s t_start = S − int(S·strength);
   ``prepare_latents``: x = √ᾱ·prototype + √(1−ᾱ)·z at the timestep of step t_start), so 35 of 50
   steps run at 0.7. The reference's own ``StableDiffusionLatents2ImgPipeline`` lives in a patched
   diffusers that was not read; the img2img convention above is diffusers' public one. Departures:
   the denoiser is the shared sampler (DiT's respaced DDPM, class-conditional CFG at
   ``sampler.cfg_scale``) instead of Stable Diffusion's default scheduler, text prompt and guidance 8;
   each sample's noise comes from streams derived from (seed, class, index)
   (``methods/diffusion/generation.py``). At strength 1 the suite starts from z alone, so the method
   is plain ``dit`` bit for bit (tests/test_d4m.py), whereas diffusers' ``prepare_latents`` would
   still add the prototype at the first timestep with weight √ᾱ_999 ≈ 0.0064: a small departure,
   pinned in tests/test_mgd3_d4m_reference.py. The default strength 0.7 is unaffected.

Tested against an independent re-derivation in tests/test_mgd3_d4m_reference.py: the start step
against diffusers' ``get_timesteps`` formula; the noised-then-denoised latents against a float64
re-implementation of item 2 with DiT's step, run with the same network and noise on the tiny test
backbone, to 1e-5 of the latents' largest magnitude (measured < 1e-6, float32 rounding), at 10 steps
and at D⁴M's 50 steps with strength 0.7, and through ``distill`` (sample k of class c starts from
prototype k); strength 1 against plain sampling; :func:`prototypes` against a direct scikit-learn
call with the same arguments. Not tested: agreement with the reference's streamed ``partial_fit``
prototypes, or with Stable Diffusion.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from evaluation.core.errors import InputError
from evaluation.core.seeding import MethodStream, derive_seed

from .diffusion.generation import Generation
from .diffusion.latents import load_latents
from .params import param
from .registry import DistillContext, SyntheticSet, register_method

PORT_NOTE = ("d4m is a port of D4M to the shared DiT backbone (the original uses Stable Diffusion v1.5 "
             "with text prompts); its numbers are not the D4M paper's")


@dataclass(frozen=True)
class D4mParams:
    strength: float = param(0.7, exclusiveMinimum=0, maximum=1)  # Noise strength of the prototypes
    # (D4M: 0.7, gen_syn_image_imgnt.sh --strength; 1 = start from pure noise, plain DiT).
    km_expand: int = param(1, minimum=1)  # MiniBatchKMeans batch size as a multiple of IPC (D4M script 1).


def prototypes(latents: torch.Tensor, ipc: int, km_expand: int, seed: int) -> torch.Tensor:
    """Mini-batch k-means centres [IPC, *latent] of one class's latents (D⁴M ``gen_prototype.py``'s
    clustering, fitted in one ``fit`` rather than streamed ``partial_fit``: module docstring)."""
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
                 ipc_limited_by_class=True, params=D4mParams)
def distill(ctx: DistillContext) -> SyntheticSet:
    params = ctx.params
    real = load_latents(ctx.latents_path)
    protos = torch.stack([prototypes(real["mean"][real["labels"] == c], ctx.ipc, params.km_expand,
                                     derive_seed(ctx.seed, c, MethodStream.D4M_PROTOTYPES)) for c in ctx.classes])
    generation = Generation.from_context(ctx)
    start = start_step(generation.sampler.steps, params.strength)
    return SyntheticSet(*generation.generate(batch_init=lambda labels, index: protos[ctx.rows(labels), index],
                                             start=start))
