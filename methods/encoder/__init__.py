"""Methods that optimise images through a frozen pretrained encoder (LGM, SFM): no diffusion backbone.

``images``: the image parametrisation (pyramid, colour decorrelation, sigmoid); ``augment``: the differentiable
augmentations and normalisation; ``lgm``: linear gradient matching; ``sfm``: statistical flow matching and its
class-statistics; ``distill``: the shared optimisation loop, the per-step losses and the statistics artifact;
``params``: the typed parameters of ``lgm`` and ``sfm``; ``encoders``: the frozen encoders by name (local weight files, the
teacher stand-in).
"""
