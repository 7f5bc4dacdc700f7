"""``lgm``: Linear Gradient Matching (reference ims3_lgm_sfm.md §2.2–2.3; official GeorgeCazenavette/
linear-gradient-matching): synthetic images, parametrised as a pyramid (methods/encoder/images.py), optimised so that
a fresh random linear head on the frozen encoder's features gets the same gradient from them as from a real batch.

Every class is optimised in one job (the head spans all classes: ``joint_classes``); real batches of
ipc x augs_per_batch x C images are drawn from the whole train split in seeded shuffled epochs
(methods/encoder/real.py), read one batch at a time. Sizes are checked against the dataset and the encoder (methods/encoder/job.py).
"""
from __future__ import annotations

from .encoder.distill import class_major_labels, lgm_step_loss, optimise_images
from .encoder.job import (IMAGE_DRAWS, REAL_ORDER, STAND_IN_NOTE, check_params, draws, image_schedule,
                          job_encoder, use_amp)
from .encoder.params import LgmParams
from evaluation.data.datasets import split_labels

from .encoder.real import shuffled_batches, train_images
from .registry import DistillContext, SyntheticSet, register_method


@register_method("lgm", needs_backbone=False, params=LgmParams, check_params=check_params, encoder_param="encoder",
                 joint_classes=True, table_note=f"LGM {STAND_IN_NOTE}")
def distill(ctx: DistillContext) -> SyntheticSet:
    params, num_classes = ctx.params, ctx.dataset.num_classes
    encoder = job_encoder(ctx)
    batches = shuffled_batches(len(split_labels(ctx.data_dir, "train")), ctx.ipc * params.augs_per_batch * num_classes,
                               draws(ctx, REAL_ORDER),
                               lambda indices: train_images(ctx.data_dir, params.synthetic_resolution, indices))
    labels = class_major_labels(num_classes, ctx.ipc)
    generator, amp = draws(ctx, IMAGE_DRAWS), use_amp(ctx)
    step_loss = lgm_step_loss(encoder, batches, encoder.feature_dim, num_classes, params.augs_per_batch,
                              params.crop_resolution, generator, params.head_std, amp)
    images, losses = optimise_images(image_schedule(params), labels, step_loss, generator, ctx.device, amp)
    print(f"lgm: loss {losses[0]:.4f} at step 0, {losses[-1]:.4f} at step {len(losses) - 1}", flush=True)
    return SyntheticSet(images.cpu(), labels)
