"""The ``linear_probe`` evaluation network: a fresh linear head on a frozen pretrained encoder, LGM's
evaluator (ims3_lgm_sfm.md §2.4, its ``LinearClassifier`` on the frozen φ; SFM's ``normal`` evaluation
and ``dd_others.py``, §3.3).

The encoder comes from ``methods.encoder.encoders.load_encoder`` and stays frozen: its parameters do
not require gradients, it is always in eval mode (``train()`` leaves it there, so normalisation
statistics never move) and its forward runs without autograd. Inputs of another size than the encoder's ``input_size`` are resized to it (bilinear,
antialiased), so sets of any resolution are scored, as ``dd_others.py`` scores other methods' folders.
The head is LGM's: weight N(0, 0.01), bias 0.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from methods.encoder.encoders import load_encoder

HEAD_INIT_STD = 0.01   # LGM LinearClassifier: weight ~ N(0, 0.01), bias 0


def frozen_encoder(name: str, weights: str | None, teacher: str | None) -> nn.Module:
    """The frozen encoder ``name`` (methods/encoder/encoders.py) from its weight file, or, for the ``teacher``
    stand-in, from the teacher folder the evaluate job was given (``--teacher``)."""
    from evaluation.protocols.train import teacher_network   # train imports the network registry

    return load_encoder(name, weights=weights, teacher=teacher_network(teacher) if teacher else None)


def resized(x: torch.Tensor, size: int) -> torch.Tensor:
    """``x`` at ``size`` x ``size`` (bilinear, antialiased), unchanged when already there."""
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


class LinearProbe(nn.Module):
    """``classifier(encoder(resize(x)))`` with only ``classifier`` trainable.

    ``image_size`` is the training images' side; it need not be the encoder's input size.
    """

    def __init__(self, num_classes: int, image_size: int, encoder: str, weights: str | None = None,
                 teacher: str | None = None):
        super().__init__()
        self.encoder = frozen_encoder(encoder, weights, teacher)
        self.encoder.requires_grad_(False)
        self.encoder.eval()
        self.input_size = self.encoder.input_size
        self.classifier = nn.Linear(self.encoder.feature_dim, num_classes)
        nn.init.normal_(self.classifier.weight, 0.0, HEAD_INIT_STD)
        nn.init.zeros_(self.classifier.bias)

    def train(self, mode: bool = True) -> LinearProbe:
        """Set the head's mode; the encoder stays in eval mode."""
        super().train(mode)
        self.encoder.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.encoder(resized(x, self.input_size)).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
