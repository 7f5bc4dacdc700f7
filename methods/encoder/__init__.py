"""Methods that optimise images through a frozen pretrained encoder (LGM, SFM): no diffusion backbone.

``images``: the image parametrisation (pyramid, colour decorrelation, sigmoid); ``lgm``: linear
gradient matching; ``sfm``: statistical flow matching and its class-statistics.
"""
