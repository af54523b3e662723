"""After clustering: leave filter echoes unsorted, rejoin the pieces of bursting and adapting
units, and leave threshold noise unsorted.

The failure modes of clustering one electrode at a time, each measured on simulated ground
truth (``benchmarks/RESULTS.md``):

- A band-pass filter rings: a large spike filtered to 250–750 Hz is followed and preceded by
  side lobes 1–4 ms away that can cross the threshold themselves. Their events form a
  cluster of their own, locked to the large unit at one lag (the filter's response is the
  same every time), unlike bursts or another cell's spikes, whose lags vary. A smaller unit
  most of whose spikes sit within ``echo_jitter_ms`` of one lag of ``echo_lag_ms`` from a
  larger unit's spikes is such an echo and is left unsorted.
- A bursting neuron fires 2–4 spikes a few ms apart, each smaller than the last (Fee, Mitra
  & Kleinfeld 1996). The mixture then cuts it by amplitude into a large and a small cluster.
  The small one gives itself away in time: far more of its spikes follow a spike of the large
  one by 2–15 ms than chance allows. The share beyond chance counts, not the share: a fast
  unit of a broad cell crosses the threshold again in its slow after-phase 2–4 ms later, so
  its electrode's hash follows it a little more than chance, and must not join it. In such a
  pair, of alike shape, the small one's spikes that follow the large one's join it, unless the
  small one is below ``min_amplitude_ratio`` of the large: a burst's late spikes keep a third
  to a half of their size, while the band-pass filter's ringing after a large spike (side
  lobes of up to 26 % of it at 250–750 Hz, 6 % at 250–7500 Hz) also follows it and must not be
  merged. Only the followers move: on hard recordings the small cluster is often the
  electrode's hash, which took the burst's late spikes with it; joined whole, it made the unit
  fail its quality labels. Nor do they move when most of them would follow by chance: a
  large hash cluster has many chance followers of a fast unit, and a few of the filter's echoes
  among them pass the test beyond chance. The whole small cluster joins when its spikes and the
  large one's keep one refractory period: far fewer pairs 1.5–2 ms apart (1–2 ms above 1 kHz)
  than two independent trains would have. A cell whose spikes shrink after any short interval
  (MEArec's do, after up to 100 ms) leaves a second mode most of whose spikes follow no spike
  within the burst lags. Closer pairs tell nothing at 250–750 Hz, where two spikes of any two
  cells within 1.5 ms make one event. Nor does the count alone: an event 1.5–2 ms from a large
  spike rides on its rebound and is often clustered elsewhere, so a cluster of hash can look
  refractory beside a unit. Only a pair that passed the follow test is judged by it.
- A cell's spike is smaller the sooner it follows the cell's last one (bursts, and adaptation
  over tens of ms: Fee, Mitra & Kleinfeld 1996; MEArec models it up to 100 ms), so the mixture
  cuts it by amplitude at any interval, not only a burst's. Its smaller cluster gives itself
  away: after a silence of ``recovery_ms`` of the pair, the cell's spike has its full size, so
  the small cluster is rarely among the spikes that end such a silence. Two cells fire
  independently, and a silence of both ends with either. A pair of alike shape whose small
  cluster ends at most ``max_recovered_share`` of its share of such silences joins whole
  (RESULTS.md, "Shrunk spikes joined"), unless it is an echo: after a large spike at 250–750 Hz,
  noise events riding the filter's side lobes come within ``echo_within_ms`` and never end a
  silence either. After the joins a unit's echoes are looked for again: against each of the
  unit's pieces they were too few to count.
- Lowering the detection threshold catches more of each unit's spikes, but also noise and
  distant-unit hash, which cluster just above the threshold. A unit whose median trough is
  less than ``floor_ratio`` × the threshold is put back into unsorted (1.25 × 3.5 SD is the
  threshold + 0.9 SD; 1.25 × 3.25 SD, the narrow band's, + 0.8 SD).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

from .clustering import UNSORTED, join_best_first
from ..params import CurationParams
from ..io.reader import TICKS_PER_SECOND
from ..io.store import groups

if TYPE_CHECKING:
    from .spikes import Spikes


def following(t_big: np.ndarray, t_small: np.ndarray, lag_ms: tuple[float, float]) -> np.ndarray:
    """Which ``t_small`` spikes follow a spike of ``t_big`` (sorted) within ``lag_ms``."""
    lo, hi = (int(round(x * TICKS_PER_SECOND / 1e3)) for x in lag_ms)
    return np.searchsorted(t_big, t_small - lo, "right") > np.searchsorted(t_big, t_small - hi, "left")


def follow_fraction(t_big: np.ndarray, t_small: np.ndarray, duration_s: float,
                    lag_ms: tuple[float, float]) -> tuple[float, float, float]:
    """Share of ``t_small`` spikes that follow a ``t_big`` spike within ``lag_ms`` beyond the
    share expected if the two fired independently, the Poisson probability of at least that
    many followers then, and the share of the followers beyond chance."""
    lo, hi = (int(round(x * TICKS_PER_SECOND / 1e3)) for x in lag_ms)
    n = int(following(t_big, t_small, lag_ms).sum())
    rate = len(t_big) / max(duration_s, 1e-9)
    expected = len(t_small) * -np.expm1(-rate * (hi - lo) / TICKS_PER_SECOND)
    return ((n - expected) / max(len(t_small), 1), float(stats.poisson.sf(n - 1, expected)),
            (n - expected) / max(n, 1))


def refractory_share(t_a: np.ndarray, t_b: np.ndarray, duration_s: float,
                     window_ms: tuple[float, float]) -> tuple[float, float]:
    """Pairs of an ``t_a`` and a ``t_b`` spike (both sorted) whose distance lies within
    ``window_ms``, as a share of the pairs two independent trains at their rates would have,
    and that expected number. Near 0 when the two are one cell's spikes and the window lies
    within its refractory period, near 1 when they are two cells or hash."""
    lo, hi = (int(round(x * TICKS_PER_SECOND / 1e3)) for x in window_ms)
    if hi <= lo:
        return 1.0, 0.0
    after = np.searchsorted(t_b, t_a + hi, "left") - np.searchsorted(t_b, t_a + lo, "left")
    before = np.searchsorted(t_b, t_a - lo, "right") - np.searchsorted(t_b, t_a - hi, "right")
    expected = len(t_a) * len(t_b) * 2 * (hi - lo) / TICKS_PER_SECOND / max(duration_s, 1e-9)
    return int(after.sum() + before.sum()) / max(expected, 1e-9), expected


def one_cell(t_big: np.ndarray, t_small: np.ndarray, duration_s: float, dead_time_ms: float,
             params: CurationParams) -> bool:
    """Whether two clusters' spikes keep one refractory period between them, with enough pairs
    expected to tell."""
    if params.max_refractory_share is None:
        return False
    if params.refractory_ms is None:
        raise ValueError("CurationParams.refractory_ms is unset: take default_refractory_window(band_hz)")
    window = (max(params.refractory_ms[0], dead_time_ms), params.refractory_ms[1])
    share, expected = refractory_share(t_big, t_small, duration_s, window)
    return expected >= params.min_refractory_pairs and share <= params.max_refractory_share


def locked_fraction(t_big: np.ndarray, t_small: np.ndarray, lag_ms: tuple[float, float], jitter_ms: float) -> float:
    """Largest share of ``t_small`` spikes that have a ``t_big`` spike at one lag (± ``jitter_ms``,
    |lag| within ``lag_ms``); every pair within the lags counts, not only the nearest spike."""
    lo, hi, jitter = (int(round(x * TICKS_PER_SECOND / 1e3)) for x in (*lag_ms, jitter_ms))
    start = np.searchsorted(t_big, t_small - hi, "left")
    k = np.searchsorted(t_big, t_small + hi, "right") - start
    if len(t_small) == 0 or k.sum() == 0:
        return 0.0
    small = np.repeat(np.arange(len(t_small)), k)
    big = np.repeat(start - np.r_[0, np.cumsum(k)[:-1]], k) + np.arange(k.sum())
    lag = t_small[small] - t_big[big]
    ok = np.abs(lag) >= lo
    counts = np.bincount(lag[ok] + hi, minlength=2 * hi + 1)
    mode = int(np.argmax(np.convolve(counts, np.ones(2 * jitter + 1, np.int64), mode="same"))) - hi
    locked = ok & (np.abs(lag - mode) <= jitter)
    return len(np.unique(small[locked])) / len(t_small)


def drop_echoes(labels: np.ndarray, timestamps: np.ndarray, amplitude: np.ndarray,
                params: CurationParams) -> np.ndarray:
    """One electrode's labels with the filter echoes of larger units left unsorted."""
    labels = labels.copy()
    ids = np.unique(labels[labels != UNSORTED])
    times = {c: np.sort(timestamps[labels == c]) for c in ids}
    size = {c: np.median(np.abs(amplitude[labels == c])) for c in ids}
    echoes = {small for big in ids for small in ids
              if size[small] < params.max_echo_ratio * size[big]
              and locked_fraction(times[big], times[small], params.echo_lag_ms,
                                  params.echo_jitter_ms) >= params.min_echo_fraction}
    labels[np.isin(labels, list(echoes))] = UNSORTED
    return labels


def one_cell_shape(mean_a: np.ndarray, mean_b: np.ndarray, size_big: float, size_small: float,
                   params: CurationParams) -> bool:
    """Whether two clusters' mean waveforms are alike enough (``min_shape_corr``), and the
    smaller's size close enough to the larger's (``min_amplitude_ratio``), to be one cell's
    spikes at two sizes: the burst rules' and the shrunk spikes' common test."""
    return params.min_amplitude_ratio * size_big <= size_small and \
        not np.corrcoef(mean_a, mean_b)[0, 1] < params.min_shape_corr


def recovered_share(t_big: np.ndarray, t_small: np.ndarray, recovery_ms: float) -> tuple[float, float]:
    """Of two units' pooled spikes that come at least ``recovery_ms`` after the pool's previous
    spike, the small unit's share as a multiple of its share of all, and the binomial chance of
    that few if a spike's size did not depend on the interval before it."""
    t = np.r_[t_big, t_small]
    small = np.r_[np.zeros(len(t_big), bool), np.ones(len(t_small), bool)][np.argsort(t, kind="stable")]
    quiet = np.diff(np.sort(t)) >= recovery_ms * TICKS_PER_SECOND / 1e3
    n, k, share = int(quiet.sum()), int(small[1:][quiet].sum()), small.mean()
    if n == 0 or share == 0:
        return 1.0, 1.0
    return k / (n * share), float(stats.binom.cdf(k, n, share))


def join_shrunk(labels: np.ndarray, timestamps: np.ndarray, waveforms: np.ndarray,
                params: CurationParams) -> np.ndarray:
    """One electrode's labels with the clusters of a cell's shrunk spikes joined to it whole,
    best pair (fewest recovered small spikes) first: of alike shape and trough within
    ``min_amplitude_ratio``, the smaller cluster is at most ``max_recovered_share`` as often
    among the spikes after a ``recovery_ms`` silence as among all (binomial chance at most
    ``max_recovered_p``), and fewer than ``min_echo_fraction`` of its spikes come within
    ``echo_within_ms`` after the larger's, where its filter's echoes lie."""
    if params.max_recovered_share is None:
        return labels
    if params.min_amplitude_ratio is None:
        raise ValueError("CurationParams.min_amplitude_ratio is unset: take default_burst_ratio(band_hz)")

    def recovered(a: np.ndarray, b: np.ndarray) -> float | None:
        mean_a, mean_b = waveforms[a].mean(axis=0), waveforms[b].mean(axis=0)
        size_a, size_b = np.abs(mean_a).max(), np.abs(mean_b).max()
        big, small = (a, b) if size_a >= size_b else (b, a)
        if not one_cell_shape(mean_a, mean_b, max(size_a, size_b), min(size_a, size_b), params):
            return None
        t_big, t_small = np.sort(timestamps[big]), np.sort(timestamps[small])
        if following(t_big, t_small, (params.echo_lag_ms[0], params.echo_within_ms)).mean() >= params.min_echo_fraction:
            return None
        share, p = recovered_share(t_big, t_small, params.recovery_ms)
        return 1.0 - share if p <= params.max_recovered_p else None
    return join_best_first(labels, recovered, 1.0 - params.max_recovered_share, larger_stays=True)


def merge_bursts(labels: np.ndarray, timestamps: np.ndarray, waveforms: np.ndarray, duration_s: float,
                 params: CurationParams, dead_time_ms: float = 1.0) -> np.ndarray:
    """One electrode's labels with burst followers moved into their unit, best pair first: the
    smaller cluster's spikes that follow the larger's (all of it unless ``followers_only``, or
    when the two keep one cell's refractory period: ``one_cell``).
    Each cluster keeps the size it was clustered with: followers moved in would shrink a unit's
    mean, and two look-alikes could then trade the same spikes back and forth for ever; so
    spikes only move to a larger cluster, and the loop ends."""
    if params.min_amplitude_ratio is None:
        raise ValueError("CurationParams.min_amplitude_ratio is unset: take default_burst_ratio(band_hz)")
    labels = labels.copy()
    size = {c: np.abs(waveforms[labels == c].mean(axis=0)).max() for c in np.unique(labels[labels != UNSORTED])}
    while True:
        ids = np.unique(labels[labels != UNSORTED])
        times = {c: np.sort(timestamps[labels == c]) for c in ids}
        mean = {c: waveforms[labels == c].mean(axis=0) for c in ids}
        best = None
        for big in ids:
            for small in ids:
                if not size[small] < size[big] or \
                        not one_cell_shape(mean[big], mean[small], size[big], size[small], params):
                    continue
                frac, p, excess = follow_fraction(times[big], times[small], duration_s, params.burst_lag_ms)
                if frac >= params.min_follow_fraction and p <= params.max_follow_p and \
                        excess >= params.min_excess_share and (best is None or frac > best[0]):
                    best = (frac, big, small)
        if best is None:
            return labels
        small = np.flatnonzero(labels == best[2])
        if params.followers_only and not one_cell(times[best[1]], times[best[2]], duration_s, dead_time_ms, params):
            small = small[following(times[best[1]], timestamps[small], params.burst_lag_ms)]
        labels[small] = best[1]


def _several(labels: np.ndarray) -> bool:
    """Whether one electrode's ``labels`` hold two units or more."""
    return len(np.unique(labels[labels != UNSORTED])) > 1


def curate(unit: np.ndarray, spikes: Spikes, params: CurationParams, dead_time_ms: float = 1.0) -> np.ndarray:
    """Global unit ids after both steps, renumbered 0..k−1 in order (−1 = unsorted);
    ``dead_time_ms`` is the detector's."""
    timestamps, amplitude, waveforms = spikes.timestamp, spikes.amplitude, spikes.waveform
    unit = np.asarray(unit).copy()
    for ch, idx in groups(spikes.electrode).items():
        lab = unit[idx]
        amp, t = np.abs(np.asarray(amplitude[idx])), np.asarray(timestamps[idx])
        if _several(lab):
            lab = drop_echoes(lab, t, amp, params)
        if _several(lab):
            wf = np.asarray(waveforms[idx])
            lab = join_shrunk(lab, t, wf, params)
            if _several(lab):
                lab = merge_bursts(lab, t, wf, spikes.duration_s, params, dead_time_ms)
            if params.echoes_after_join and _several(lab):
                lab = drop_echoes(lab, t, amp, params)
        floor = params.floor_ratio * spikes.threshold_uv[ch]
        for c in np.unique(lab[lab != UNSORTED]):
            if np.median(amp[lab == c]) < floor:
                lab[lab == c] = UNSORTED
        unit[idx] = lab
    sorted_ = unit != UNSORTED
    unit[sorted_] = np.unique(unit[sorted_], return_inverse=True)[1]
    return unit
