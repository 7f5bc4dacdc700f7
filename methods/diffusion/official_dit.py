"""The official DiT network inside diffusers' ``DiTTransformer2DModel``: checkpoint conversion and numerics.

diffusers' DiT is the official DiT (facebookresearch/DiT ``models.py``) up to three differences,
measured on the golden files (``reference/golden/README.md``, ``tiny_dit.pt``):

1. its sinusoidal timestep features divide the frequency exponent by 127 (``Timesteps(256,
   downscale_freq_shift=1)``); the official divides by 128 (f_j = exp(−ln(10000)·j/128));
2. its pre-MLP LayerNorm (``norm3``) uses eps 1e-5; the official 1e-6;
3. every block holds its own copy of the label table and of the timestep MLP; the official has one
   shared table and one t-MLP (fine-tuning then updates one set of parameters, whose gradient is the
   sum over the per-block uses).

``numerics: official`` (:func:`apply_numerics`) removes all three: the frequency shift is set to 0,
``norm3.eps`` to 1e-6, and the per-block copies become one shared parameter set (they must be equal
when tied). ``numerics: diffusers`` leaves the stock network, as a named variant whose effect can be
shown. ``tests/test_golden_dit.py`` pins the official numerics to the official outputs (≤ 1e-5).

:func:`load_official_checkpoint` reads the official checkpoint format (``DiT-XL-2-256x256.pt``, used by
the DMGD, Minimax and IMS3 repositories; a bare state dict, or a training checkpoint holding ``ema``
or ``model``) and converts it with the key mapping of diffusers' own DiT conversion (golden README).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from evaluation.core.errors import InputError

if TYPE_CHECKING:
    from diffusers import DiTTransformer2DModel

NUMERICS = ("official", "diffusers")
OFFICIAL_NORM_EPS = 1e-6
# attention heads of the official DiT configs by hidden size (DiT-XL/L: 16, B: 12, S: 6)
OFFICIAL_HEADS = {1152: 16, 1024: 16, 768: 12, 384: 6}
# the shared modules of the official DiT, as paths inside each diffusers block
SHARED = ("norm1.emb.timestep_embedder.linear_1", "norm1.emb.timestep_embedder.linear_2",
          "norm1.emb.class_embedder.embedding_table")


class CheckpointError(InputError, ValueError):
    """An official DiT checkpoint that cannot be converted; the message names the fix."""


def _shared_modules(transformer: torch.nn.Module, path: str) -> list[torch.nn.Module]:
    return [block.get_submodule(path) for block in transformer.transformer_blocks]


def tie_shared_parameters(transformer: DiTTransformer2DModel, fresh: bool = False) -> None:
    """Make every block use block 0's label table and t-MLP (one official parameter set).

    The copies must already be equal (a converted or saved official model) unless the model is
    ``fresh`` (just initialised, its copies random): a trained model whose copies differ was trained
    with independent copies and only ``numerics: diffusers`` can represent it.
    """
    for path in SHARED:
        first, *rest = _shared_modules(transformer, path)
        for module in rest:
            for name, param in first.named_parameters(recurse=False):
                if not fresh and getattr(module, name) is not param and not torch.equal(getattr(module, name), param):
                    raise CheckpointError(
                        f"the DiT's per-block copies of {path}.{name} differ, so it is not one official network; "
                        f"set backbone.numerics: diffusers for a model trained with independent copies")
                setattr(module, name, param)


def shared_parameters_tied(transformer: DiTTransformer2DModel) -> bool:
    """Whether every block uses block 0's label table and t-MLP parameters (the same objects)."""
    for path in SHARED:
        first, *rest = _shared_modules(transformer, path)
        if any(getattr(m, name) is not p for m in rest for name, p in first.named_parameters(recurse=False)):
            return False
    return True


@contextlib.contextmanager
def untied(transformer: DiTTransformer2DModel) -> Iterator[None]:
    """Give each block its own copy while the body runs (safetensors refuses shared tensors), then re-tie."""
    tied = shared_parameters_tied(transformer)
    if tied:
        for path in SHARED:
            for module in _shared_modules(transformer, path)[1:]:
                for name, param in list(module.named_parameters(recurse=False)):
                    setattr(module, name, torch.nn.Parameter(param.detach().clone(), param.requires_grad))
    try:
        yield
    finally:
        if tied:
            tie_shared_parameters(transformer)


def apply_numerics(transformer: DiTTransformer2DModel, numerics: str, fresh: bool = False) -> DiTTransformer2DModel:
    """Make ``transformer`` compute the official DiT (``official``) or leave diffusers' network (module
    docstring); ``fresh``: a just-initialised model whose blocks adopt block 0's copies."""
    if numerics not in NUMERICS:
        raise CheckpointError(f"backbone numerics '{numerics}' is unknown; use one of {', '.join(NUMERICS)}")
    if numerics == "diffusers":
        return transformer
    from diffusers.models.embeddings import Timesteps

    for module in transformer.modules():
        if isinstance(module, Timesteps):
            module.downscale_freq_shift = 0.0
    for block in transformer.transformer_blocks:
        block.norm3.eps = OFFICIAL_NORM_EPS
    transformer.register_to_config(norm_eps=OFFICIAL_NORM_EPS)
    tie_shared_parameters(transformer, fresh)
    return transformer


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The state dict of an official checkpoint file: a bare state dict (``DiT-XL-2-256x256.pt``) or a
    training checkpoint's ``ema`` (else ``model``) entry, as DiT's ``find_model``."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as err:
        raise CheckpointError(f"cannot read the official DiT checkpoint {path} ({type(err).__name__}); provide "
                              f"DiT-XL-2-256x256.pt from facebookresearch/DiT or a DiT training checkpoint") from None
    for key in ("ema", "model"):
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    if not isinstance(checkpoint, dict) or "x_embedder.proj.weight" not in checkpoint:
        raise CheckpointError(f"{path} is not an official DiT state dict (no x_embedder.proj.weight); provide "
                              f"DiT-XL-2-256x256.pt or a training checkpoint holding 'ema' or 'model'")
    return checkpoint


def official_config(state: dict[str, torch.Tensor], num_heads: int | None = None) -> dict:
    """diffusers ``DiTTransformer2DModel`` config of an official state dict (sizes read off the tensors)."""
    hidden, in_channels, patch, _ = state["x_embedder.proj.weight"].shape
    tokens = state["pos_embed"].shape[1]
    side = round(tokens ** 0.5)
    depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    if state["blocks.0.mlp.fc1.weight"].shape[0] != 4 * hidden:
        raise CheckpointError("the checkpoint's MLP is not 4x the hidden size, which diffusers' DiT requires")
    heads = num_heads or OFFICIAL_HEADS.get(hidden)
    if heads is None or hidden % heads:
        raise CheckpointError(f"cannot tell the attention heads of a DiT with hidden size {hidden}; set "
                              f"backbone.num_heads (DiT-XL/2: 16)")
    return dict(num_attention_heads=heads, attention_head_dim=hidden // heads, in_channels=in_channels,
                out_channels=state["final_layer.linear.weight"].shape[0] // (patch * patch), num_layers=depth,
                sample_size=side * patch, patch_size=patch,
                num_embeds_ada_norm=state["y_embedder.embedding_table.weight"].shape[0] - 1,
                norm_eps=OFFICIAL_NORM_EPS)


def convert_state_dict(state: dict[str, torch.Tensor], depth: int) -> dict[str, torch.Tensor]:
    """Official key names → diffusers key names (golden README's mapping); shared tensors copied per block."""
    out = {"pos_embed.proj.weight": state["x_embedder.proj.weight"], "pos_embed.proj.bias": state["x_embedder.proj.bias"],
           "proj_out_1.weight": state["final_layer.adaLN_modulation.1.weight"],
           "proj_out_1.bias": state["final_layer.adaLN_modulation.1.bias"],
           "proj_out_2.weight": state["final_layer.linear.weight"], "proj_out_2.bias": state["final_layer.linear.bias"]}
    for b in range(depth):
        block, official = f"transformer_blocks.{b}", f"blocks.{b}"
        emb = f"{block}.norm1.emb"
        for kind in ("weight", "bias"):
            out[f"{emb}.timestep_embedder.linear_1.{kind}"] = state[f"t_embedder.mlp.0.{kind}"]
            out[f"{emb}.timestep_embedder.linear_2.{kind}"] = state[f"t_embedder.mlp.2.{kind}"]
            out[f"{block}.norm1.linear.{kind}"] = state[f"{official}.adaLN_modulation.1.{kind}"]
            q, k, v = state[f"{official}.attn.qkv.{kind}"].chunk(3, dim=0)
            out[f"{block}.attn1.to_q.{kind}"], out[f"{block}.attn1.to_k.{kind}"] = q, k
            out[f"{block}.attn1.to_v.{kind}"] = v
            out[f"{block}.attn1.to_out.0.{kind}"] = state[f"{official}.attn.proj.{kind}"]
            out[f"{block}.ff.net.0.proj.{kind}"] = state[f"{official}.mlp.fc1.{kind}"]
            out[f"{block}.ff.net.2.{kind}"] = state[f"{official}.mlp.fc2.{kind}"]
        out[f"{emb}.class_embedder.embedding_table.weight"] = state["y_embedder.embedding_table.weight"]
    return out


def from_official_state_dict(state: dict[str, torch.Tensor], num_heads: int | None = None,
                             numerics: str = "official") -> DiTTransformer2DModel:
    """A diffusers DiT holding the official weights, with ``numerics`` applied."""
    from diffusers import DiTTransformer2DModel

    config = official_config(state, num_heads)
    if numerics == "diffusers":
        config["norm_eps"] = 1e-5   # diffusers' default, the stock network
    model = DiTTransformer2DModel(**config)
    try:
        model.load_state_dict(convert_state_dict(state, config["num_layers"]), strict=True)
    except (KeyError, RuntimeError) as err:
        raise CheckpointError(f"the official checkpoint does not fit a DiT of its own sizes ({err}); provide an "
                              f"unmodified DiT checkpoint") from None
    # the official stores its fixed 2-D sin-cos table; diffusers recomputes it: they must agree
    if not torch.allclose(model.pos_embed.pos_embed.float(), state["pos_embed"].float(), atol=1e-5):
        raise CheckpointError("the checkpoint's pos_embed is not DiT's fixed 2-D sin-cos table of its size; provide "
                              "an unmodified DiT checkpoint")
    return apply_numerics(model, numerics)


def load_official_checkpoint(path: Path, num_heads: int | None = None,
                             numerics: str = "official") -> DiTTransformer2DModel:
    """Load ``DiT-XL-2-256x256.pt`` (or any official-format checkpoint) as a diffusers DiT."""
    return from_official_state_dict(read_checkpoint(Path(path)), num_heads, numerics)
