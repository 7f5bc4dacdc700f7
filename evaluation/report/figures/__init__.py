"""Figures of a profile (issue #6), drawn from stored results only.

``samples``   sample grid of one synthetic set: classes as rows, samples in generation order as
              columns (DMGD supplementary, Figures 5-6).
``tsne``      joint 2-D t-SNE of real and every method's synthetic features, one panel per method
              (Figure 3).
``ot_loss``   final OT loss of each sample in generation order, variants overlaid (Figure 4).
``accuracy``  top-1 against IPC per (dataset, protocol, network), best and validation-selected.
``sampling``  the capped, seeded real and synthetic samples of the t-SNE and the rows a grid shows,
              chosen from indices before any image is decoded.
``build``     reads the result tree, draws them all and writes ``index.md``; the CLI
              (``python workflow/scripts/figures.py``).
"""
