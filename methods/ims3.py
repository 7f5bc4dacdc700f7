"""IMS3's parameters (Wang, Chen et al., CVPR 2026, arXiv 2603.13960; official code Westlake-AGI-Lab/IMS3;
shared/reference/ims3_lgm_sfm.md §1.2–1.7), one dataclass per row of the paper's Table 4 ablation:

* ``ims3``: IM fine-tuning (methods/ims3_finetune.py) then S³ selection (methods/ims3_selection.py):
  :class:`Ims3Params`;
* ``ims3-imonly`` ("+IM"): IM fine-tuning, then the shared sampler's plain sampling: :class:`InversionMatchingParams`;
* ``ims3-s3only`` ("+S³"): the pretrained backbone, then S³ selection: :class:`SubgroupSelectionParams`.

The paper's per-sample form of the IM term (Eq. (5)–(7): no Minimax terms) is a variant of the fine-tuning's
params: ``{pairing: per_sample, lambda_pos: 0, lambda_neg: 0}``.
"""
from __future__ import annotations

from dataclasses import dataclass

from .ims3_finetune import PAIRINGS
from .minimax import MinimaxParams
from .params import param


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
    features: str = param("resnet18", enum=["resnet18", "teacher"])  # Frozen feature extractor: resnet18 =
    # torchvision's supervised ImageNet-1K ResNet-18 (official default), 512-d penultimate features;
    # teacher = the suite's teacher network's penultimate features (stand-in where no ImageNet weights exist).


@dataclass(frozen=True)
class Ims3Params(SubgroupSelectionParams, InversionMatchingParams):
    """IMS3: IM fine-tuning, then S³ on the fine-tuned backbone (official run.sh: train_dit.py, centroid.py)."""
