"""SFM's classifier inheritance (CI, ims3_lgm_sfm.md §3.3): the ``inherited_classifier`` evaluation
network and its golden head.

1. Golden head (:func:`train_golden_head`): a linear probe (evaluation/protocols/linear_probe.py) on
   the distillation encoder, trained once per (dataset, encoder) on the FULL real training set
   (SFM ``get_classifier.sh``: 10 epochs, batch 128, Adam 1e-3 x batch / 256, cosine, AugBasic);
   its ``fc`` is saved.
2. Per synthetic set, only a linear projector P: eval_dim -> distill_dim learns, label-free, on the
   synthetic images: loss ``MSE(P(φ_eval(x)), φ_distill(x))`` (the training loop's ``feature_mse``
   loss: ``features`` against ``distilled_features``).
3. Prediction: ``fc_golden(P(φ_eval(x)))``.

CI ships a full-data classifier with the images: another storage and evaluation budget than a probe
trained on the distilled set, which the tables label by the protocol's name.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from evaluation.core.artifacts import verify_folder
from evaluation.protocols import linear_probe
from evaluation.protocols.linear_probe import resized

GOLDEN_FILE = "head.pt"


def load_golden_head(folder: str | Path, distill_encoder: str, num_classes: int) -> nn.Linear:
    """The frozen golden ``fc`` of ``folder`` (a ``golden_head`` artifact), checked to be the head of
    ``distill_encoder`` with ``num_classes`` outputs."""
    verify_folder(Path(folder), "golden_head")
    record = torch.load(Path(folder) / GOLDEN_FILE, map_location="cpu")
    if record["encoder"] != distill_encoder or record["num_classes"] != num_classes:
        raise ValueError(f"golden head {folder} is for encoder {record['encoder']!r} and {record['num_classes']} "
                         f"classes, not {distill_encoder!r} and {num_classes}; re-make it")
    head = nn.Linear(record["feature_dim"], num_classes)
    head.load_state_dict(record["state_dict"])
    return head.requires_grad_(False)


class InheritedClassifier(nn.Module):
    """``classifier(projector(φ_eval(x)))``: only ``projector`` is trainable; ``classifier`` is the
    frozen golden head of the distillation encoder ``distill_encoder`` (default ``encoder``)."""

    def __init__(self, num_classes: int, image_size: int, encoder: str, golden: str,
                 distill_encoder: str | None = None, weights: str | None = None,
                 distill_weights: str | None = None, teacher: str | None = None):
        super().__init__()
        distill_encoder = distill_encoder or encoder
        self.encoder = linear_probe.frozen_encoder(encoder, weights, teacher)
        self.distill_encoder = (self.encoder if distill_encoder == encoder else
                                linear_probe.frozen_encoder(distill_encoder, distill_weights, teacher))
        self.classifier = load_golden_head(golden, distill_encoder, num_classes)
        if self.classifier.in_features != self.distill_encoder.feature_dim:
            raise ValueError(f"golden head {golden} reads {self.classifier.in_features} features, encoder "
                             f"{distill_encoder!r} gives {self.distill_encoder.feature_dim}; re-make the head")
        self.projector = nn.Linear(self.encoder.feature_dim, self.distill_encoder.feature_dim)
        for frozen in (self.encoder, self.distill_encoder):
            frozen.requires_grad_(False)
            frozen.eval()

    def train(self, mode: bool = True) -> InheritedClassifier:
        """Set the projector's mode; the encoders stay in eval mode."""
        super().train(mode)
        self.encoder.eval()
        self.distill_encoder.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``P(φ_eval(x))``: the projected features the golden head reads."""
        with torch.no_grad():
            eval_features = self.encoder(resized(x, self.encoder.input_size)).float()
        return self.projector(eval_features)

    def distilled_features(self, x: torch.Tensor) -> torch.Tensor:
        """``φ_distill(x)``: the projector's regression target."""
        with torch.no_grad():
            return self.distill_encoder(resized(x, self.distill_encoder.input_size)).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
