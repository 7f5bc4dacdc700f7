"""``sfm``: Statistical Flow Matching (reference ims3_lgm_sfm.md §3.2; official ``match_flow``): synthetic images,
parametrised as LGM's, optimised so that the flow between their feature class centres matches the flow between the
real class means, which rule ``class_statistics`` computes once per dataset and encoder
(methods/encoder/statistics.py).

Every class is optimised in one job (the flow couples the classes: ``joint_classes``). ``official_denominator``
keeps the official C*ipc - 1 denominator of the synthetic other-class centre (ipc > 1: a quirk, §4.4d).
"""
from __future__ import annotations

from .encoder.distill import class_major_labels, optimise_images, sfm_step_loss
from .encoder.job import IMAGE_DRAWS, STAND_IN_NOTE, check_params, draws, image_schedule, job_encoder, use_amp
from .encoder.params import SfmParams
from .encoder.statistics import load_class_statistics
from .registry import DistillContext, SyntheticSet, register_method


@register_method("sfm", needs_backbone=False, params=SfmParams, check_params=check_params, encoder_param="encoder",
                 needs_class_statistics=True, joint_classes=True, table_note=f"SFM {STAND_IN_NOTE}")
def distill(ctx: DistillContext) -> SyntheticSet:
    params = ctx.params
    encoder = job_encoder(ctx)
    real_means = load_class_statistics(ctx.statistics_path, params.encoder, params.synthetic_resolution,
                                       params.crop_resolution).float().to(ctx.device)
    labels = class_major_labels(ctx.dataset.num_classes, ctx.ipc)
    generator, amp = draws(ctx, IMAGE_DRAWS), use_amp(ctx)
    step_loss = sfm_step_loss(encoder, real_means, ctx.ipc, params.augs_per_batch, params.crop_resolution, generator,
                              params.loss, params.alpha, params.official_denominator, amp)
    images, losses = optimise_images(image_schedule(params), labels, step_loss, generator, ctx.device, amp)
    print(f"sfm: loss {losses[0]:.4f} at step 0, {losses[-1]:.4f} at step {len(losses) - 1}", flush=True)
    return SyntheticSet(images.cpu(), labels)
