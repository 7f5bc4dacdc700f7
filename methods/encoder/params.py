"""The typed parameters of ``lgm`` and ``sfm`` (methods/params.py), defaults from the official code
(reference ims3_lgm_sfm.md §2.3 for LGM, §3.2 for SFM: "everything else as LGM")."""
from __future__ import annotations

from dataclasses import dataclass

from ..params import param
from .encoders import encoder_names


@dataclass(frozen=True)
class LgmParams:
    """Linear gradient matching (methods/encoder/lgm.py) on the image parametrisation of methods/encoder/images.py."""
    encoder: str = param("dinov2_vitb", enum=encoder_names())  # Frozen distillation encoder (methods/encoder/
    # encoders.py): dinov2_vitb, clip_vitb32 (LGM's clip_vitb), clip_vitb16 (SFM's), eva02_vitb, mocov3_vitb, whose
    # weight file the config's encoders.<name> gives, or teacher, the digits stand-in (the dataset's teacher).
    iterations: int = param(5000, minimum=1)         # Optimisation steps (official 5000, steps 0..5000 inclusive).
    lr: float = param(2e-3, exclusiveMinimum=0)      # Adam learning rate, one parameter group per pyramid level.
    augs_per_batch: int = param(10, minimum=1)       # Differently augmented copies of each synthetic image per step;
    # the real batch holds ipc x augs_per_batch x C images (README: at most 3 on ImageNet-1K, for memory).
    head_std: float = param(0.01, exclusiveMinimum=0)  # Std of the fresh random linear head's weights (bias 0).
    image_mode: str = param("pyramid", enum=["pyramid", "pixel"])  # Multi-scale pyramid (official default) or
    # one pixel tensor at the synthetic resolution.
    pyramid_start_resolution: int = param(1, minimum=1)  # The pyramid starts with the levels up to this resolution.
    pyramid_extent_iterations: int = param(200, minimum=1)  # A level at twice the resolution every this many steps.
    decorrelate_color: bool = param(True)            # Parameters in the decorrelated colour space (ablation: false).
    synthetic_resolution: int = param(256, minimum=1)  # Side of the synthetic images (official 256 px).
    crop_resolution: int = param(224, minimum=1)     # Side of the random resized crop the encoder sees (224).
    autocast: bool = param(True)                     # Mixed precision on GPU, with the official manual x1024 loss
    # scaling (gradients divided back before Adam's step).


@dataclass(frozen=True)
class SfmParams:
    """Statistical flow matching (methods/encoder/sfm.py): LGM's settings, one augmentation pass, no head."""
    encoder: str = param("dinov2_vitb", enum=encoder_names())  # Frozen distillation encoder (see lgm); the class statistics
    # are computed once per dataset and encoder.
    iterations: int = param(5000, minimum=1)         # Optimisation steps (as LGM).
    lr: float = param(2e-3, exclusiveMinimum=0)      # Adam learning rate, one parameter group per pyramid level.
    augs_per_batch: int = param(1, minimum=1)        # Augmented copies per image, features averaged over them
    # (official default 1; distill.sh passes 1).
    loss: str = param("sfm", enum=["sfm", "sfm_decouple"])  # Flow cosine (official --method sfm) or the
    # decoupled MSE variant.
    alpha: float = param(1.0, minimum=0, maximum=1)  # sfm_decouple: weight of MSE(class means) against
    # MSE(other-class centres) (official default 1: class means only).
    official_denominator: bool = param(True)         # Synthetic other-class centre divided by C*ipc - 1, the
    # official quirk (false: C - 1, the real flow's; both agree at ipc 1).
    image_mode: str = param("pyramid", enum=["pyramid", "pixel"])  # As lgm.
    pyramid_start_resolution: int = param(1, minimum=1)  # As lgm.
    pyramid_extent_iterations: int = param(200, minimum=1)  # As lgm.
    decorrelate_color: bool = param(True)            # As lgm.
    synthetic_resolution: int = param(256, minimum=1)  # As lgm.
    crop_resolution: int = param(224, minimum=1)     # As lgm; the statistics use a centre crop of this side.
    autocast: bool = param(True)                     # As lgm.
