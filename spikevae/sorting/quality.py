"""A quality label per unit (good / mua / noise) from metrics that need no ground truth.

The metrics are those curation tools compute (Hill, Mehta & Kleinfeld 2011; the Allen
Institute's ecephys pipeline), each on the unit's own electrode:

- ``l_ratio``: L-ratio in the electrode's clustering space (Schmitzer-Torbert et al. 2005),
  how many of the electrode's other spikes lie inside the unit's cluster;
- ``presence_ratio``: share of equal bins of recorded time (pauses left out) in which it fires;
- ``amplitude_cutoff``: share of its spikes estimated lost below the threshold, from the
  missing lower tail of its amplitude histogram;
- ``isi_violation_fraction``: share of its intervals under 1.5 ms;
- ``isi_violations_ratio``: SpikeInterface's ratio of those violations to a Poisson train's at
  its rate (0 for one neuron, 0.5 for cells firing at random).

The rule: ``noise`` when the cluster is not isolated from the electrode's other spikes (a
large, well-sampled unit is allowed more of them inside: it is a neuron all the same), fires
in only part of the recording, is a fast cluster cut in half by the threshold (distant cells'
hash: no neuron fires that fast with half its spikes below the noise floor), is weak and
poorly isolated (the weaker, the better isolated it must be), or sits near the threshold
with refractory violations that one neuron does not have (hash of several cells, which hand
sorters leave unsorted); these are the clusters that match no neuron on ground truth;
``good`` when it passes every limit of ``QualityParams``; ``mua`` otherwise. ``sort`` leaves
``noise`` units unsorted. Limits and their figures: benchmarks/RESULTS.md, "Quality labels".
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from .clustering import UNSORTED
from .metrics import l_ratio
from ..params import QualityParams
from ..io.store import groups

if TYPE_CHECKING:
    from .spikes import Spikes

LABELS = ("good", "mua", "noise")
COLUMNS = ("l_ratio", "presence_ratio", "amplitude_cutoff", "quality")


def amplitude_cutoff(amplitude: np.ndarray, n_bins: int = 100, smooth_bins: float = 3.0) -> float:
    """Share of a unit's spikes missing below the detection threshold: its histogram's upper
    tail, from where it falls back to its height at the lowest amplitude, mirrors the lower
    tail that the threshold cut off (capped at 0.5)."""
    a = np.abs(np.asarray(amplitude, np.float64))
    if len(a) < 20:
        return 0.5
    counts, edges = np.histogram(a, n_bins)
    pdf = ndimage.gaussian_filter1d(counts.astype(np.float64), smooth_bins)
    pdf /= pdf.sum()
    peak = int(np.argmax(pdf))
    below = np.flatnonzero(pdf[peak:] <= pdf[0])
    start = peak + int(below[0]) if len(below) else len(pdf)
    return float(min(pdf[start:].sum(), 0.5))


def presence_ratio(timestamps: np.ndarray, segments: list[tuple[int, int]], n_bins: int) -> float:
    """Share of ``n_bins`` equal bins of recorded time holding a spike; ``segments`` are the
    recording's (first tick, samples), so a pause is not an absence."""
    starts = np.array([s for s, _ in segments], np.int64)
    lengths = np.array([n for _, n in segments], np.int64)
    offset = np.r_[0, np.cumsum(lengths)[:-1]]
    seg = np.clip(np.searchsorted(starts, timestamps, "right") - 1, 0, len(starts) - 1)
    recorded = timestamps - starts[seg] + offset[seg]
    counts, _ = np.histogram(recorded, n_bins, range=(0, max(int(lengths.sum()), 1)))
    return float((counts > 0).mean())


def label(m: dict, params: QualityParams) -> str:
    """``good``, ``mua`` or ``noise`` for one unit's metrics."""
    if params.noise_mixed_ratio is None:
        raise ValueError("QualityParams.noise_mixed_ratio is unset: take default_mixed_ratio(band_hz)")
    large = m["snr"] >= params.noise_large_snr and m["n_spikes"] >= params.noise_large_min_spikes
    isolated = m["l_ratio"] <= (params.noise_large_l_ratio if large else params.noise_l_ratio)
    hash_ = (m["amplitude_cutoff"] >= params.noise_amplitude_cutoff
             and m["firing_rate_hz"] > params.noise_rate_hz)
    weak = ((m["snr"] < params.noise_weak_snr and m["l_ratio"] > params.noise_weak_l_ratio)
            or (m["snr"] < params.noise_faint_snr and m["l_ratio"] > params.noise_faint_l_ratio
                and m["n_spikes"] >= params.noise_faint_min_spikes))
    mixed = (m["snr"] < params.noise_mixed_snr and m["isi_violations"] >= params.noise_mixed_violations
             and m["isi_violations_ratio"] > params.noise_mixed_ratio)
    if not isolated or m["presence_ratio"] < params.noise_presence or hash_ or weak or mixed:
        return "noise"
    good = (m["l_ratio"] <= params.max_l_ratio and m["presence_ratio"] >= params.min_presence
            and m["amplitude_cutoff"] <= params.max_amplitude_cutoff
            and m["isi_violation_fraction"] <= params.max_isi_violation)
    return "good" if good else "mua"


def qualify(unit: np.ndarray, spikes: Spikes, space: np.ndarray, described: list[dict], params: QualityParams
            ) -> tuple[np.ndarray, list[int], list[dict]]:
    """Unit ids with ``noise`` units left unsorted (the rest renumbered 0..k−1 in order), the
    old ids of the kept units, and each kept unit's metrics and label, in the new order.
    ``space`` is each spike's clustering-space position, ``described`` the units' rows of
    ``metrics.unit_table`` (SNR, rate, ISI violations)."""
    unit = np.asarray(unit).copy()
    found: dict[int, dict] = {}
    segments = spikes.segments
    for ch, idx in groups(spikes.electrode).items():
        lab = unit[idx]
        if not (lab != UNSORTED).any():
            continue
        ts, amp, z = np.asarray(spikes.timestamp[idx]), np.abs(np.asarray(spikes.amplitude[idx])), space[idx]
        for u in np.unique(lab[lab != UNSORTED]):
            inside = lab == u
            m = {**described[int(u)], "l_ratio": l_ratio(z, inside),
                 "presence_ratio": presence_ratio(ts[inside], segments, params.presence_bins),
                 "amplitude_cutoff": amplitude_cutoff(amp[inside])}
            found[int(u)] = {**m, "quality": label(m, params)}
    noise = [u for u, m in found.items() if m["quality"] == "noise"]
    unit[np.isin(unit, noise)] = UNSORTED
    kept = sorted(u for u in found if u not in noise)
    sorted_ = unit != UNSORTED
    unit[sorted_] = np.searchsorted(kept, unit[sorted_])
    return unit, kept, [{k: found[u][k] for k in COLUMNS} for u in kept]
