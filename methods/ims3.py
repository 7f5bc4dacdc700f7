"""IMS3's parameters (Wang, Chen et al., CVPR 2026, arXiv 2603.13960; official code Westlake-AGI-Lab/IMS3;
shared/reference/ims3_lgm_sfm.md §1.2–1.7), one dataclass per row of the paper's Table 4 ablation:

* ``ims3``: IM fine-tuning (methods/ims3_finetune.py) then S³ selection (methods/ims3_selection.py):
  :class:`Ims3Params`;
* ``ims3-imonly`` ("+IM"): IM fine-tuning, then the shared sampler's plain sampling: :class:`InversionMatchingParams`;
* ``ims3-s3only`` ("+S³"): the pretrained backbone, then S³ selection: :class:`SubgroupSelectionParams`.

The paper's per-sample form of the IM term (Eq. (5)–(7): no Minimax terms) is a variant of the fine-tuning's
params: ``{pairing: per_sample, lambda_pos: 0, lambda_neg: 0}``.

**IM fine-tuning** (:func:`finetune_backbone`, the registry's ``finetune`` entry of ``ims3`` and ``ims3-imonly``)
is Minimax's fine-tuning job (methods/minimax_finetune.py: same trainable parameters, γ, memories, terms,
optimiser, EMA, checkpoints, latents artifact) with :func:`inversion_term` added to every step's loss:
total = L_DiT + pos + neg + λ_match·IM, as the official ``run.sh --condense``. The inversion forward draws its own
label-dropout uniforms from the step's training stream, after the loss's draws (official: the model is in train
mode there too).

**S³** (:func:`select`): for every class, G·IPC images through the shared sampler (``Generation``), sample i of
class c seeded by (seed, c, i) as every generating method, subgroup g = samples g·IPC … (g+1)·IPC − 1 (so
subgroup 0 is the ``dit`` set of the same backbone); membership is fixed at generation. φ (:func:`features_of`
through the frozen encoder ``features`` names, methods/encoder/encoders.py) of every candidate; real centroids from at most ``real_per_class`` training images per class, a permutation
seeded by (seed, c, IMS3_REAL); :func:`~methods.ims3_selection.select_subgroups` (the official objective and
search). The selected subgroup of each class is the record ``s3_subgroup``.

**Class chunks** (methods/chunks.py). The selection is joint over the dataset's classes (the separation term
pairs every two classes), so a chunk job generates and scores the candidates of **all** the dataset's classes
and keeps its own classes' selection: chunks merge into exactly the unchunked set (the contract test), at the
cost of repeating the generation in every chunk job; do not chunk S³ methods (``distill_chunk_classes: null``).
The official code's ``--phase`` chunks select each chunk on its own; this port does not.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F

from evaluation.core.seeding import MethodStream, generator
from evaluation.data.datasets import load_split, resize_uint8, split_labels

from .diffusion.generation import Generation
from .encoder.augment import normalize
from .encoder.encoders import FrozenEncoder, encoder_names, load_encoder
from .diffusion.losses import DiffusionLoss, LossTerms
from .diffusion.randomness import TrainingRandomness
from .ims3_finetune import PAIRINGS, inversion_matching_term
from .ims3_selection import select_subgroups
from .minimax_params import MinimaxParams
from .minimax_finetune import ExtraTerm, run_finetune_job
from .params import param
from .registry import DistillContext, SyntheticSet, register_method


@dataclass(frozen=True)
class InversionMatchingParams(MinimaxParams):
    """IM fine-tuning: Minimax's fine-tuning settings (its terms on, as the official ``run.sh --condense``)
    plus the inversion-matching term."""
    steps: int = param(8000, minimum=0)              # Fine-tuning steps (official run.sh: 8 epochs at global
    # batch 8 on ImageWoof, sampled from checkpoint 0008000, "the best stopping point on Imagewoof").
    lambda_match: float = param(0.002, minimum=0)    # Weight of the inversion-matching term (official
    # --lambda_match 0.002; paper lambda_IM 0.002, Fig. 5).
    pairing: str = param(PAIRINGS[0], enum=list(PAIRINGS))  # Which (x_prev, x_inv) pairs the cosine averages:
    # all_pairs = the official code's B x B batch matrix; per_sample = each sample with its own inversion
    # (the paper's Eq. (5)).


@dataclass(frozen=True)
class SubgroupSelectionParams:
    """S³: G candidate subgroups of IPC images per class through the shared sampler, one selected per class
    (the candidates' noise and the real images' choice are keyed by the run's seed, ``DistillContext.seed``)."""
    groups: int = param(5, minimum=1)                # Candidate subgroups G per class (official --groups 5);
    # G x IPC images are generated per class.
    alpha: float = param(0.4, minimum=0)             # Weight of the closeness to the real centroid (official
    # run.sh --w-real 0.4; argparse default 1.0).
    beta: float = param(0.9, minimum=0)              # Weight of the inter-class separation (official run.sh
    # --w-sep 0.9; argparse default 1.0).
    eps: float = param(0.0, minimum=0)               # Added to every distance inside the logs (official run.sh
    # --sel-eps 0; argparse default 1e-6).
    max_sweeps: int = param(5, minimum=0)            # Most coordinate-ascent sweeps over the classes (official
    # --sel-max-iters 5); the search stops earlier after a sweep that changes nothing.
    real_per_class: int = param(200, minimum=1)      # Most real training images per class in its real
    # centroid, a seeded choice when the class has more (official --real-max-per-class 200).
    features: str = param("resnet18", enum=encoder_names())  # Frozen feature extractor φ (methods/encoder/
    # encoders.py): resnet18 = torchvision's supervised ImageNet-1K ResNet-18, 512-d pooled features (official
    # default; its file: the config's encoders.resnet18, else torchvision's cache), or teacher, the suite's teacher
    # network's penultimate features (the digits stand-in: no ImageNet weights offline).


@dataclass(frozen=True)
class Ims3Params(SubgroupSelectionParams, InversionMatchingParams):
    """IMS3: IM fine-tuning, then S³ on the fine-tuned backbone (official run.sh: train_dit.py, centroid.py)."""


# ----------------------------------------------------------------------------- IM fine-tuning

def inversion_term(params: InversionMatchingParams) -> ExtraTerm:
    """The step's IM term (methods/ims3_finetune.py :func:`inversion_matching_term`): the inversion forward
    sees the class ids after its own label dropout (uniforms drawn when ``label_dropout`` > 0, as the loss's)."""
    def term(loss_fn: DiffusionLoss, terms: LossTerms, x: torch.Tensor, ids: torch.Tensor,
             randomness: TrainingRandomness) -> torch.Tensor:
        labels = ids
        if params.label_dropout > 0:
            drop = randomness.dropout_uniform(len(ids)).to(ids.device) < params.label_dropout
            labels = torch.where(drop, loss_fn.backbone.null_label, ids)
        return inversion_matching_term(loss_fn, terms, x, labels, params.lambda_match, params.pairing)
    return term


def finetune_backbone(spec: dict, backbone_dir: Path, latents_path: Path, dataset: str, out: Path,
                      device: str) -> None:
    """The ``finetune_backbone`` rule's job for ``ims3`` and ``ims3-imonly``: Minimax's job plus the IM term.
    Only the fine-tuning's fields of the variant's params are read (S³'s are the distill job's)."""
    names = {f.name for f in fields(InversionMatchingParams)}
    params = InversionMatchingParams(**{k: v for k, v in spec.items() if k in names})
    run_finetune_job("ims3_finetune", spec, params, backbone_dir, latents_path, dataset, out, device,
                     inversion_term(params))


# ----------------------------------------------------------------------------- S³

def features_of(encoder: FrozenEncoder, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """φ of uint8 images N×3×S×S (official ``centroid.py``): [0, 1] → Resize(input_size, bicubic) → CenterCrop
    (the identity on the square result) → ImageNet mean/std → the encoder's pooled features, float N×D, in batches."""
    device = next(encoder.buffers(), next(encoder.parameters())).device
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size].to(device).float() / 255.0
            if x.shape[-1] != encoder.input_size:
                x = F.interpolate(x, size=(encoder.input_size, encoder.input_size), mode="bicubic",
                                  align_corners=False)
            out.append(encoder(normalize(x)).cpu())
    return torch.cat(out)


def real_features(ctx: DistillContext, encoder: FrozenEncoder, per_class: int, side: int) -> tuple[torch.Tensor, ...]:
    """φ of at most ``per_class`` training images of every class (a permutation seeded by (seed, c,
    IMS3_REAL)), resized bilinearly to the generated ``side`` (the official code resizes them to 256 px)."""
    labels = split_labels(ctx.data_dir, "train")
    chosen = []
    for c in range(ctx.dataset.num_classes):
        members = torch.nonzero(labels == c).flatten()
        order = torch.randperm(len(members), generator=generator(ctx.seed, c, MethodStream.IMS3_REAL))
        chosen.append(members[order[:per_class]])
    size = None if ctx.dataset.source == "digits" else ctx.data.get("imagenet_image_size")
    images, picked = load_split(ctx.data_dir, "train", image_size=size, indices=torch.cat(chosen).tolist())
    features = features_of(encoder, resize_uint8(images, side))
    return tuple(features[picked == c] for c in range(ctx.dataset.num_classes))


def select(ctx: DistillContext, params: SubgroupSelectionParams) -> SyntheticSet:
    """S³ on the context's backbone (module docstring): candidates of all the dataset's classes, the joint
    selection, the images of ``ctx.classes``' selected subgroups."""
    every = range(ctx.dataset.num_classes)
    generation = dataclasses.replace(Generation.from_context(ctx), ipc=params.groups * ctx.ipc, classes=every)
    images, _ = generation.generate()
    candidates = images.view(len(every), params.groups, ctx.ipc, *images.shape[1:])
    encoder = load_encoder(params.features, weights=ctx.encoder_weights, teacher=ctx.teacher, device=ctx.device)
    candidate_features = features_of(encoder, images).view(len(every), params.groups, ctx.ipc, -1)
    real = real_features(ctx, encoder, params.real_per_class, images.shape[-1])
    chosen = select_subgroups(candidate_features, real, params.alpha, params.beta, params.eps,
                              params.max_sweeps).groups
    kept = [chosen[c] for c in ctx.classes]
    synset = torch.cat([candidates[c, g] for c, g in zip(ctx.classes, kept)])
    return SyntheticSet(synset, torch.tensor(ctx.classes).repeat_interleave(ctx.ipc), {"s3_subgroup": kept})


@register_method("ims3", needs_backbone=True, finetune="methods.ims3", params=Ims3Params, encoder_param="features")
def distill(ctx: DistillContext) -> SyntheticSet:
    """IM-fine-tuned backbone, then S³."""
    return select(ctx, ctx.params)


@register_method("ims3-imonly", needs_backbone=True, finetune="methods.ims3", params=InversionMatchingParams)
def distill_imonly(ctx: DistillContext) -> SyntheticSet:
    """IM-fine-tuned backbone, plain sampling (the ablation's "+IM" row)."""
    return SyntheticSet(*Generation.from_context(ctx).generate())


@register_method("ims3-s3only", needs_backbone=True, params=SubgroupSelectionParams, encoder_param="features")
def distill_s3only(ctx: DistillContext) -> SyntheticSet:
    """Pretrained backbone, then S³ (the ablation's "+S³" row)."""
    return select(ctx, ctx.params)
