"""After clustering: split units that hold two neurons of one electrode, and join units that are one.

Two neurons on one electrode with nearly the same shape (mean waveforms correlating at
0.96–0.99) and troughs 10–40 % apart land in one cluster of the feature space: the β-VAE,
trained on every electrode at once, and PCA both spend their few dimensions on the shapes
that differ between electrodes. So do two of equal trough and different shape when half an
electrode's events are distant cells' hash, which takes most of the mixture's components.
The difference is still in the waveforms, but hidden by the band-passed noise, which is
strongly correlated from sample to sample. So each unit is tested again in its own space:
its waveforms whitened by the electrode's noise autocorrelation, reduced to ``n_dims``
principal axes, and fitted with one Gaussian and with two that share one covariance (two
neurons of one electrode differ in their mean waveform, not in their noise; the shared
covariance also costs BIC 6 fewer parameters, so small units can be split). The unit is
split when BIC prefers two, the two overlap little (as in clustering's merge rule), each
keeps ``min_spikes``, and either

- their median troughs differ by at least ``min_amplitude_ratio``, or
- each holds ``min_alike_spikes`` of the spikes fitted and their shapes differ by
  ``min_shape_dprime`` beyond what one neuron's spikes vary by (``shape_dprime``).

Whitening also brings out what is left of the jitter of trough alignment, which can cut one
neuron into pieces that BIC alone would accept; such pieces differ along the mean waveform's
time derivative, which ``shape_dprime`` leaves out. A neuron whose trough is broad (a cell
seen from afar, at a wide band) is cut wherever the noise makes its trough deepest, several
samples either way, which no derivative covers; so before the test each spike of a unit is
moved by up to ``max_shift`` samples to best match the unit's mean, in steps of ``shift_step``
(whole samples leave a sharp flank beside the broad trough up to half a sample off, which cut
large cells of MEArec's family into pieces of a hundred spikes). Pieces of fewer
spikes are mostly a large unit's outliers (spikes overlapping another's, the tail of its
amplitudes), which only a difference in size may split off, and only at a unit's first test.
Pieces are tested again, up to ``max_units`` per unit, but into pieces of ``min_alike_spikes``
only: once the first test has opened a unit, the second cuts off such outliers far more often
than a third neuron. Burst pieces split here are rejoined by curation, which runs next.

The mixture (above 1 kHz) also cuts such a broad neuron by where its trough fell, into units of
near-equal trough that the split leaves apart. ``join_units`` then joins two units of one
electrode whose median troughs are within ``join_ratio`` of each other when, realigned together
as the split realigns one unit, no valley lies between them in their principal axes. Two cells
of one electrode mostly keep a valley there, and where they do not their troughs mostly differ,
as those of the tuning families' look-alikes do (by 20–45 %).
"""
from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from scipy.interpolate import CubicSpline
from sklearn.mixture import GaussianMixture

from .clustering import UNSORTED, join_best_first, posterior_overlap, principal_space, valley_ratio
from .parallel import map_electrodes
from ..params import SplitParams
from ..io.store import groups
from .whitening import whitener

if TYPE_CHECKING:
    from .spikes import Spikes


def shape_dprime(xa: np.ndarray, xb: np.ndarray, same: np.ndarray) -> float:
    """How far apart two groups of whitened waveforms lie along the part of their mean
    difference outside the span of ``same``'s rows (what one neuron's spikes vary along: its
    mean waveform, for amplitude, and the mean's time derivative, for alignment), in SDs of
    the groups' spread along it."""
    q = np.linalg.qr(same.T)[0]
    delta = xa.mean(axis=0) - xb.mean(axis=0)
    rest = delta - q @ (q.T @ delta)
    norm = np.linalg.norm(rest)
    if norm == 0:
        return 0.0
    pa, pb = xa @ (rest / norm), xb @ (rest / norm)
    return float(abs(pa.mean() - pb.mean()) / np.sqrt((pa.var() + pb.var()) / 2 + 1e-12))


def _two_groups(x: np.ndarray, amp: np.ndarray, same: np.ndarray, p: SplitParams, seed: int,
                again: bool = False) -> np.ndarray | None:
    """Boolean mask of one of two groups in whitened waveforms ``x``, or None to keep them whole;
    ``same`` as in ``shape_dprime``; ``again``: ``x`` is a piece of a unit split before."""
    rng = np.random.default_rng(seed)
    fit = rng.choice(len(x), p.max_fit, replace=False) if len(x) > p.max_fit else np.arange(len(x))
    z = principal_space(x, p.n_dims, seed, fit)
    zf = z[fit]
    one = GaussianMixture(1, covariance_type="full", reg_covar=1e-4, random_state=seed).fit(zf)
    two = GaussianMixture(2, covariance_type=p.covariance, reg_covar=1e-4, random_state=seed, n_init=2).fit(zf)
    if two.bic(zf) >= one.bic(zf):
        return None
    post = two.predict_proba(zf)
    if posterior_overlap(post[:, 0], post[:, 1]) > p.max_overlap:
        return None
    side = two.predict(z) == 1
    if min(side.sum(), (~side).sum()) < p.min_spikes:
        return None
    large = p.min_alike_spikes is not None and min(side[fit].sum(), (~side[fit]).sum()) >= p.min_alike_spikes
    if large and shape_dprime(x[side], x[~side], same) >= p.min_shape_dprime:
        return side
    if again and p.min_alike_spikes is not None and not large:
        return None
    a, b = np.median(amp[side]), np.median(amp[~side])
    return side if max(a, b) >= p.min_amplitude_ratio * min(a, b) else None


@lru_cache(maxsize=256)
def _shift_map(n: int, k: float) -> np.ndarray:
    """The linear map (n × n, applied on the right) that moves an ``n``-sample waveform later by
    ``k`` samples, a fraction of one included: its cubic spline read at t − k, edge values held."""
    t = np.arange(n)
    return CubicSpline(t, np.eye(n), axis=0)(np.clip(t - k, 0, n - 1)).T


def _moved(x: np.ndarray, by: np.ndarray) -> np.ndarray:
    """Each row of ``x`` moved later by ``by[i]`` samples (``_shift_map``); built one shift at a
    time, so that no array larger than ``x`` is made."""
    out = np.empty_like(x)
    for k in np.unique(by):
        rows = np.flatnonzero(by == k)
        out[rows] = x[rows] @ _shift_map(x.shape[1], float(k))
    return out


def realigned(raw: np.ndarray, w: np.ndarray, max_shift: int, step: float, rounds: int = 2) -> np.ndarray:
    """``raw`` waveforms each moved by the shift (up to ``max_shift`` samples either way, in
    steps of ``step``) that best matches their mean, compared after whitening by ``w``; the mean
    is taken again ``rounds`` times, from the waveforms as last moved."""
    shifts = np.arange(-max_shift, max_shift + step / 2, step)
    x = raw
    for _ in range(rounds):
        candidates = _moved(np.tile(x.mean(axis=0), (len(shifts), 1)), shifts) @ w
        candidates /= np.maximum(np.linalg.norm(candidates, axis=1, keepdims=True), 1e-12)  # a flat unit
        x = _moved(raw, -shifts[np.argmax(raw @ (w @ candidates.T), axis=1)])
    return x


def split_electrode(lab: np.ndarray, waveforms: np.ndarray, amplitude: np.ndarray, autocorr: np.ndarray | None,
                    params: SplitParams, seed: int = 0) -> np.ndarray:
    """Split the units of one electrode: per spike, 0 where its unit stays, or k when it went
    to the k-th new piece (numbered in the order the pieces were made). One unit's waveforms,
    as they are and whitened, are in memory at a time."""
    piece = np.zeros(len(lab), np.int64)
    w = whitener(autocorr, waveforms.shape[1], params.shrinkage)
    amp = np.abs(np.asarray(amplitude))
    made = 0
    for u in np.unique(lab[lab != UNSORTED]):
        members = np.flatnonzero(lab == u)
        raw = np.asarray(waveforms[members], dtype=np.float64)
        if params.max_shift:
            raw = realigned(raw, w, params.max_shift, params.shift_step)
        x = raw @ w
        todo, pieces = [np.arange(len(members))], 1
        while todo and pieces < params.max_units:
            m = todo.pop()
            if len(m) < 2 * params.min_spikes:
                continue
            mean = raw[m].mean(axis=0)
            side = _two_groups(x[m], amp[members[m]], np.stack([mean, np.gradient(mean)]) @ w, params, seed,
                               again=pieces > 1)
            if side is None:
                continue
            made += 1
            piece[members[m[side]]] = made
            pieces += 1
            todo += [m[~side], m[side]]
    return piece


def join_electrode(lab: np.ndarray, waveforms: np.ndarray, amplitude: np.ndarray, autocorr: np.ndarray | None,
                   params: SplitParams, seed: int = 0) -> np.ndarray:
    """One electrode's labels with the units that are one neuron joined, the pair with the
    shallowest valley first (into the larger), each unit represented by at most half of
    ``max_fit`` of its spikes."""
    w = whitener(autocorr, waveforms.shape[1], params.shrinkage)
    amp = np.abs(np.asarray(amplitude))
    rng = np.random.default_rng(seed)

    def valley(a: np.ndarray, b: np.ndarray) -> float | None:
        ta, tb = np.median(amp[a]), np.median(amp[b])
        if min(len(a), len(b)) <= params.n_dims + 1 or min(ta, tb) < params.join_ratio * max(ta, tb):
            return None
        a, b = (m if len(m) <= params.max_fit // 2 else rng.choice(m, params.max_fit // 2, replace=False)
                for m in (a, b))
        raw = np.asarray(waveforms[np.r_[a, b]], dtype=np.float64)
        if params.max_shift:
            raw = realigned(raw, w, params.max_shift, params.shift_step)
        z = principal_space(raw @ w, params.n_dims, seed)
        return valley_ratio(z[:len(a)], z[len(a):], seed)
    return join_best_first(lab, valley, params.join_valley, larger_stays=True)


def join_units(unit: np.ndarray, spikes: Spikes, params: SplitParams, seed: int = 0, progress=None,
               workers: int = 1) -> np.ndarray:
    """Unit ids after joining the units that are one neuron (``join_electrode``; a joined unit
    keeps the larger one's id), on ``workers`` processes as ``split_units``."""
    if params.join_valley is None:
        raise ValueError("SplitParams.join_valley is unset: take default_join_valley(band_hz)")
    unit = np.asarray(unit).copy()
    every = groups(spikes.electrode)
    on = params.enabled and params.join_valley <= 1
    by_electrode = [(ch, s) for ch, idx in every.items()
                    if on and len(np.unique(unit[s := idx[unit[idx] != UNSORTED]])) > 1]
    if progress is not None:
        progress(len(every) - len(by_electrode))  # fewer than two units there: nothing to join
    tasks = ((unit[idx], np.asarray(spikes.waveform[idx]), np.asarray(spikes.amplitude[idx]), spikes.autocorr.get(ch),
              params, seed) for ch, idx in by_electrode)
    for (_, idx), lab in zip(by_electrode, map_electrodes(join_electrode, tasks, workers, progress)):
        unit[idx] = lab
    return unit


def split_units(unit: np.ndarray, spikes: Spikes, params: SplitParams, seed: int = 0, progress=None,
                workers: int = 1) -> np.ndarray:
    """Unit ids after splitting (new units numbered after the existing ones; −1 stays), each
    electrode whitened by its noise autocorrelation. Electrodes are split on ``workers``
    processes (the same labels for any number)."""
    waveforms, amplitude, autocorr = spikes.waveform, spikes.amplitude, spikes.autocorr
    unit = np.asarray(unit).copy()
    if not params.enabled:
        return unit
    if params.min_amplitude_ratio is None:
        raise ValueError("SplitParams.min_amplitude_ratio is unset: take default_split_ratio(band_hz)")
    next_id = unit.max(initial=-1) + 1
    every = groups(spikes.electrode)
    # unsorted spikes are never split: only the sorted ones go to the workers
    by_electrode = [(ch, s) for ch, idx in every.items() if len(s := idx[unit[idx] != UNSORTED])]
    if progress is not None:
        progress(len(every) - len(by_electrode))  # nothing sorted there, nothing to split
    tasks = ((unit[idx], np.asarray(waveforms[idx]), np.asarray(amplitude[idx]), autocorr.get(ch), params, seed)
             for ch, idx in by_electrode)
    for (_, idx), piece in zip(by_electrode, map_electrodes(split_electrode, tasks, workers, progress)):
        new = piece > 0
        unit[idx[new]] = next_id + piece[new] - 1
        next_id += piece.max(initial=0)
    return unit
