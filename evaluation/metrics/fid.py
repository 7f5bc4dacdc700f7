"""FID and KID on feature arrays, equal to clean-fid's (DMGD supplementary A3.2: "the official
implementation of clean-fid").

FID is the Fréchet distance of clean-fid's ``frechet_distance`` between the means and ``np.cov``
covariances (as its ``compare_folders``), ``|mu1 - mu2|^2 + Tr S1 + Tr S2 - 2 Tr sqrt(S1 S2)``.
clean-fid computes the last term with ``scipy.linalg.sqrtm`` of the D x D product: ~14 s at
Inception's D = 2048 on a CPU core, per set and again per bootstrap replicate. ``FidResampler``
computes it through an exact identity instead (equal to clean-fid's value in the tests, n < D and
n > D): for the synthetic covariance ``S1 = Xc^T Xc / (n - 1)`` and the real ``S2 = R R`` (R its
symmetric square root, one ``eigh`` per real set), the eigenvalues of ``S1 S2`` are the squared
singular values of ``Xc R / sqrt(n - 1)``, so ``Tr sqrt(S1 S2)`` is their sum: one n x D SVD per
set or replicate.
"""
from __future__ import annotations

import inspect

import numpy as np
from cleanfid.fid import kernel_distance

# KID averages this many subsets: clean-fid's own default (100), read from its signature
CLEANFID_KID_SUBSETS = inspect.signature(kernel_distance).parameters["num_subsets"].default


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance as clean-fid computes them (``np.mean``, ``np.cov(rowvar=False)``)."""
    return np.mean(features, axis=0), np.cov(features, rowvar=False)


def psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (eigenvalues clipped at 0)."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


class FidResampler:
    """FID of (resampled) synthetic sets against fixed real statistics, without a D x D ``sqrtm``."""

    def __init__(self, real: np.ndarray, synthetic: np.ndarray):
        mu_real, sigma_real = gaussian_stats(real)
        self.mu_real, self.trace_real = mu_real, float(np.trace(sigma_real))
        self.synthetic = np.asarray(synthetic, dtype=np.float64)
        self.rotated = self.synthetic @ psd_sqrt(sigma_real)   # X R: centering commutes with R

    def __call__(self, indices: np.ndarray) -> float:
        x, xr = self.synthetic[indices], self.rotated[indices]
        scale = np.sqrt(len(indices) - 1)
        centered = x - x.mean(axis=0)
        diff = x.mean(axis=0) - self.mu_real
        trace_syn = float((centered ** 2).sum()) / scale ** 2
        tr_sqrt = np.linalg.svd((xr - xr.mean(axis=0)) / scale, compute_uv=False).sum()
        return float(diff @ diff + trace_syn + self.trace_real - 2 * tr_sqrt)


def kid(real: np.ndarray, synthetic: np.ndarray, num_subsets: int, max_subset_size: int,
        seed: int) -> tuple[float | None, int]:
    """(KID, subset size) through ``cleanfid.fid.kernel_distance``.

    clean-fid draws its subsets from numpy's global generator: it is seeded with ``seed`` for the
    call and restored afterwards. The subset size is clean-fid's own ``min(real count, synthetic
    count, max_subset_size)``; KID needs two samples per subset, else the value is None.
    """
    size = min(len(real), len(synthetic), max_subset_size)
    if size < 2:
        return None, size
    state = np.random.get_state()
    try:
        np.random.seed(seed % 2 ** 32)
        value = kernel_distance(real, synthetic, num_subsets=num_subsets, max_subset_size=max_subset_size)
    finally:
        np.random.set_state(state)
    return float(value), size


def fid(real: np.ndarray, synthetic: np.ndarray) -> float:
    """Fréchet distance between the Gaussians of the two feature sets (clean-fid's value)."""
    return FidResampler(real, synthetic)(np.arange(len(synthetic)))
