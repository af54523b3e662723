"""Per-electrode clustering of feature vectors into units, with an "unsorted" label.

Each electrode is clustered on its own (one electrode per unit on a Utah array): the
features are reduced to ``n_dims`` principal axes of that electrode, then Gaussian mixtures
of 1..``max_units`` components are fitted and the one with the lowest BIC kept. A spike is
left unsorted (−1) when its most likely component claims it with less than
``min_confidence`` or it lies beyond the ``outlier_quantile`` of that component's Gaussian;
a cluster with fewer than ``min_spikes`` members is dissolved into unsorted.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture

from .store import groups

UNSORTED = -1


@dataclass
class ClusterParams:
    max_units: int = 5
    n_dims: int = 3
    min_spikes: int = 15           # 10 and 25 scored the same; 15 keeps slow units of short files
    min_confidence: float = 0.6
    outlier_quantile: float = 0.999
    max_fit: int = 2_000           # spikes that fit one electrode's mixture: more lets BIC over-split long recordings


def reduce(features: np.ndarray, params: ClusterParams, seed: int = 0,
           fit_idx: np.ndarray | None = None) -> np.ndarray:
    """The clustering space of one electrode: its ``n_dims`` principal axes of the features,
    all scaled by the first axis' SD (so their ratios are kept)."""
    dims = min(params.n_dims, features.shape[1])
    pca = PCA(dims, random_state=seed).fit(features if fit_idx is None else features[fit_idx])
    z = pca.transform(features)
    return z / (np.sqrt(pca.explained_variance_[0]) or 1.0)


def cluster_electrode(features: np.ndarray, params: ClusterParams, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Local unit labels 0..k−1 (by decreasing size) or −1 for one electrode's spikes, and the
    clustering-space coordinates of each spike (n × ``n_dims``; zeros when too few spikes)."""
    n = len(features)
    labels = np.full(n, UNSORTED, np.int64)
    dims = min(params.n_dims, features.shape[1])
    if n < max(params.min_spikes, dims + 1):
        return labels, np.zeros((n, dims))
    rng = np.random.default_rng(seed)
    fit_idx = rng.choice(n, params.max_fit, replace=False) if n > params.max_fit else np.arange(n)
    z = reduce(features, params, seed, fit_idx)
    best, best_bic = None, np.inf
    for k in range(1, min(params.max_units, len(fit_idx) // params.min_spikes) + 1):
        gmm = GaussianMixture(k, covariance_type="full", random_state=seed, reg_covar=1e-4,
                              n_init=1, max_iter=200).fit(z[fit_idx])
        bic = gmm.bic(z[fit_idx])
        if bic < best_bic:
            best, best_bic = gmm, bic
    post = best.predict_proba(z)
    lab = post.argmax(axis=1)
    diff = z - best.means_[lab]
    prec = best.precisions_[lab]
    d2 = np.einsum("ni,nij,nj->n", diff, prec, diff)
    ok = (post.max(axis=1) >= params.min_confidence) & (d2 <= stats.chi2.ppf(params.outlier_quantile, dims))
    labels[ok] = lab[ok]
    sizes = np.bincount(labels[labels >= 0], minlength=best.n_components)
    keep = np.flatnonzero(sizes >= params.min_spikes)
    keep = keep[np.argsort(-sizes[keep], kind="stable")]
    remap = np.full(best.n_components, UNSORTED)
    remap[keep] = np.arange(len(keep))
    labels[labels >= 0] = remap[labels[labels >= 0]]
    return labels, z


def cluster_recording(features: np.ndarray, electrode: np.ndarray, params: ClusterParams, seed: int = 0,
                      progress=None, space_out: np.ndarray | None = None) -> np.ndarray:
    """Global unit ids (numbered electrode by electrode, −1 = unsorted) for every spike;
    ``space_out`` (n × n_dims), when given, receives the clustering-space coordinates."""
    electrode = np.asarray(electrode)
    unit = np.full(len(electrode), UNSORTED, np.int64)
    next_id = 0
    for idx in groups(electrode).values():
        local, z = cluster_electrode(np.asarray(features[idx]), params, seed)
        if space_out is not None:
            space_out[idx, :z.shape[1]] = z
        unit[idx[local >= 0]] = local[local >= 0] + next_id
        next_id += local.max(initial=-1) + 1
        if progress is not None:
            progress(1)
    return unit
