"""``toy``: one uniform grey image per sample, a method kept outside methods/ and loaded only as a
plugin file (the config's ``method_modules``, methods.registry.load_method_modules):
tests/test_plugin_method.py takes it through the schema, smoke mode and the workflow, and
tests/test_methods_contract.py through the method contract."""
from dataclasses import dataclass

import torch

from methods.params import param
from methods.registry import DistillContext, SyntheticSet, register_method


@dataclass(frozen=True)
class ToyParams:
    level: int = param(128, minimum=0, maximum=255)  # grey level of every pixel
    mark_step: int = param(25, step_window=True, minimum=-1)  # a step index of the sampler's schedule (for 50
    # steps), kept in the set's records: smoke mode rescales it with the steps like every step window


@register_method("toy", needs_backbone=False, uses_seed=False, params=ToyParams)
def distill(ctx: DistillContext) -> SyntheticSet:
    size = ctx.data["digits_image_size"]
    labels = torch.tensor(ctx.classes).repeat_interleave(ctx.ipc)
    images = torch.full((len(labels), 3, size, size), ctx.params.level, dtype=torch.uint8)
    return SyntheticSet(images, labels, records={"mark_step": [ctx.params.mark_step] * len(ctx.classes)})
