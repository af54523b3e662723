"""Waveforms in units of their electrode's noise, made white: uncorrelated from sample to sample.

Band-passed noise is strongly correlated across a 48-sample window (at 250–750 Hz it lies in
a few directions of it), so a squared distance between waveforms, the β-VAE's reconstruction
loss and the Gaussians of a mixture alike, weighs differences along those directions as
much as any other and drowns the small ones along the quiet directions. Right-multiplying
by C^(−1/2), C the noise covariance over the window (Toeplitz, from the electrode's measured
autocorrelation), gives the noise SD 1 in every direction it occupies: a squared error is
then the noise's log-likelihood, the loss a Gaussian decoder assumes. The eigenvalues of C
are raised by ``shrinkage`` × their mean so that directions with almost no noise (outside
the band) are not blown up.
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import toeplitz

from ..params import SHRINKAGE



def whitener(autocorr: np.ndarray | None, n_samples: int, shrinkage: float = SHRINKAGE) -> np.ndarray:
    """Matrix that makes noise of this autocorrelation (lags 0..n−1, lag 0 = 1) white; the
    identity when none was measured (spikes cut by the recording system)."""
    if autocorr is None:
        return np.eye(n_samples)
    lam, v = np.linalg.eigh(toeplitz(autocorr[:n_samples]))
    lam = np.clip(lam, 0, None)
    return (v / np.sqrt(lam + shrinkage * lam.mean())) @ v.T


def noise_transforms(noise_uv: np.ndarray, autocorr: np.ndarray | None, n_samples: int,
                     whiten: bool = True) -> np.ndarray:
    """(channels, n, n): each electrode's µV waveforms times its matrix are in units of its
    noise SD, and white when ``whiten`` and its autocorrelation (channels, lags) is known."""
    out = np.empty((len(noise_uv), n_samples, n_samples), np.float32)
    for ch, sd in enumerate(noise_uv):
        w = whitener(autocorr[ch] if whiten and autocorr is not None else None, n_samples)
        out[ch] = w / max(float(sd), 1e-9)
    return out


def to_noise_units(waveforms: np.ndarray, electrode: np.ndarray, transforms: np.ndarray) -> np.ndarray:
    """Waveforms (n, samples) in µV, each times its electrode's matrix from ``noise_transforms``."""
    waveforms = np.asarray(waveforms, dtype=np.float32)
    electrode = np.asarray(electrode)
    out = np.empty(waveforms.shape, np.float32)
    for ch in np.unique(electrode):
        rows = electrode == ch
        # einsum, not BLAS: BLAS rounds differently with the batch's rows and its threads, and
        # one model must give bit-identical latents wherever it runs (batch on a Dask cluster)
        out[rows] = np.einsum("ni,ij->nj", waveforms[rows], transforms[ch], optimize=False)
    return out
