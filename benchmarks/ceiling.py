"""A feature space's ceiling, clustering aside (REFERENCE.md §7): give each detected spike its true
unit, let a classifier that knows the labels predict every spike from the others of its electrode
(cross-validated), and count the true units it reaches accuracy ≥ 0.8 on, with TP / (TP + FP + FN)
and undetected spikes as misses, as ``groundtruth.score`` counts them. Two classifiers, since each
can miss what the other sees: a kNN (k = 15), which follows any cloud's shape but depends on the
axes' scale, and a quadratic discriminant, which no scaling of the axes changes. The space's
ceiling is the higher count; a sort's well-detected count over the higher ceiling of the spaces
compared is what its clustering, split and curation keep.

``truth_started_units`` asks the sort's own model instead: on each electrode, a Gaussian mixture
in the clustering space started at the true units (the events that are no unit's as one more
component) and fitted by EM as the sort's mixture is; the sort's later steps (``pipeline.
refine_units``) then run on its units. What that loses beside the classifiers, no search for the
mixture's start recovers. ``heldout.py`` also sorts without the detected events that are no
unit's (the truth removes them), which shows what they cost.
"""
from __future__ import annotations

import warnings

import numpy as np
from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import KFold
from sklearn.neighbors import KNeighborsClassifier

from spikevae.simulators.groundtruth import MATCH_TICKS, WELL_DETECTED, GroundTruth

NOISE = -1  # a detected event that is no true unit's spike (hash, noise, artifact)


def spike_truth(gt: GroundTruth, timestamp: np.ndarray, electrode_id: np.ndarray) -> np.ndarray:
    """The true unit of each detected spike: the nearest true spike on its electrode within
    ±0.4 ms, or ``NOISE``."""
    truth = np.full(len(timestamp), NOISE, np.int64)
    spike_el = gt.unit_electrode[gt.unit]
    for e in np.unique(electrode_id):
        det = np.flatnonzero(electrode_id == e)
        true = np.flatnonzero(spike_el == e)
        if not len(true):
            continue
        t = gt.timestamp[true]
        i = np.searchsorted(t, timestamp[det]).clip(1, len(t) - 1) if len(t) > 1 else np.zeros(len(det), int)
        near = np.where(np.abs(t[i - 1] - timestamp[det]) <= np.abs(t[i] - timestamp[det]), i - 1, i) \
            if len(t) > 1 else i
        ok = np.abs(t[near] - timestamp[det]) <= MATCH_TICKS
        truth[det[ok]] = gt.unit[true[near[ok]]]
    return truth


def _predict(make, x: np.ndarray, y: np.ndarray, folds: int, seed: int, min_class: int) -> np.ndarray:
    """Cross-validated prediction of every row; a class with fewer than ``min_class`` training
    rows in a fold is not fitted there (its spikes count as another class)."""
    pred = np.full(len(y), NOISE, np.int64)
    for trn, tst in KFold(folds, shuffle=True, random_state=seed).split(x):
        labels, sizes = np.unique(y[trn], return_counts=True)
        fit = np.isin(y[trn], labels[sizes >= min_class])
        if len(np.unique(y[trn][fit])) < 2:
            pred[tst] = labels[np.argmax(sizes)]
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pred[tst] = make().fit(x[trn][fit], y[trn][fit]).predict(x[tst])
    return pred


def ceiling(features: np.ndarray, electrode_id: np.ndarray, truth: np.ndarray, gt: GroundTruth,
            folds: int = 5, k: int = 15, seed: int = 0) -> dict:
    """Well-detected true units a label-knowing kNN and quadratic discriminant reach in ``features``
    (one row per detected spike), and the higher of the two as ``ceiling``."""
    n_true = np.bincount(gt.unit, minlength=len(gt.unit_electrode))
    out = {}
    for name, make, min_class, scale in (
            ("knn", lambda: KNeighborsClassifier(k), 1, False),
            # standardised, so that the small ridge on each class covariance weighs every axis alike
            ("qda", lambda: QuadraticDiscriminantAnalysis(reg_param=1e-3), features.shape[1] + 2, True)):
        tp = np.zeros(len(n_true))
        fp = np.zeros(len(n_true))
        for e in np.unique(electrode_id):
            rows = np.flatnonzero(electrode_id == e)
            y = truth[rows]
            if len(rows) < 2 * folds or not (y >= 0).any():
                continue
            x = np.asarray(features[rows], np.float64)
            if scale:
                x = (x - x.mean(axis=0)) / np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
            pred = _predict(make, x, y, folds, seed, min_class)
            for u in np.unique(np.r_[y[y >= 0], pred[pred >= 0]]):
                tp[u] += np.sum((pred == u) & (y == u))
                fp[u] += np.sum((pred == u) & (y != u))
        acc = tp / np.maximum(n_true + fp, 1)
        out[name] = int((acc >= WELL_DETECTED).sum())
    out["ceiling"] = max(out["knn"], out["qda"])
    return out


def _truth_started_mixture(z: np.ndarray, y: np.ndarray, min_spikes: int) -> np.ndarray:
    """Each row's class after EM from the true classes of at least ``min_spikes`` rows (the
    sort's smallest unit); ``NOISE`` where the noise class' component takes it."""
    classes, sizes = np.unique(y, return_counts=True)
    classes = classes[sizes >= min_spikes]
    if not len(classes):
        return np.full(len(y), NOISE, np.int64)
    ridge = 1e-4 * np.eye(z.shape[1])  # clustering's reg_covar
    means = np.stack([z[y == c].mean(axis=0) for c in classes])
    precisions = np.stack([np.linalg.inv(np.cov(z[y == c].T) + ridge) for c in classes])
    weights = np.array([np.mean(y == c) for c in classes])
    gmm = GaussianMixture(len(classes), covariance_type="full", reg_covar=1e-4, max_iter=200,
                          means_init=means, precisions_init=precisions, weights_init=weights / weights.sum())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return classes[gmm.fit(z).predict(z)]


def truth_started_units(space: np.ndarray, electrode_id: np.ndarray, truth: np.ndarray, min_spikes: int = 15
                        ) -> np.ndarray:
    """Unit of every spike (the true unit's id, −1 unsorted) after each electrode's mixture in the
    clustering ``space`` is fitted from the truth."""
    space = space[:, np.any(space != 0, axis=0)]  # a space of fewer features than axes is padded
    unit = np.full(len(truth), NOISE, np.int64)
    for e in np.unique(electrode_id):
        rows = np.flatnonzero(electrode_id == e)
        if len(rows) > space.shape[1] + 1 and (truth[rows] >= 0).any():
            unit[rows] = _truth_started_mixture(np.asarray(space[rows], np.float64), truth[rows], min_spikes)
    return unit
