"""Per-unit quality metrics that need no ground truth."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats
from sklearn.metrics import silhouette_score

from ..io.reader import TICKS_PER_SECOND
from ..io.store import groups

if TYPE_CHECKING:
    from .spikes import Spikes

ISI_LIMIT_MS = 1.5


def isi_violations(timestamps: np.ndarray, duration_s: float, dead_time_ms: float,
                   limit_ms: float = ISI_LIMIT_MS) -> dict:
    """Refractory violations (intervals under ``limit_ms``): their number, their share of the
    intervals, and SpikeInterface's ``isi_violations_ratio`` (Hill, Mehta & Kleinfeld 2011):
    their number over twice what a Poisson train at the unit's rate would have, so 0 for one
    neuron and about 0.5 for cells firing at random. That window opens at the detector's dead
    time, below which no two events can lie."""
    n = len(timestamps)
    if n < 2:
        return {"isi_violation_fraction": 0.0, "isi_violations": 0, "isi_violations_ratio": 0.0}
    violations = int((np.diff(np.sort(timestamps)) < limit_ms * TICKS_PER_SECOND / 1000).sum())
    window_s = (limit_ms - dead_time_ms) / 1000
    ratio = violations / (2 * n * n * window_s / duration_s) if window_s > 0 else 0.0
    return {"isi_violation_fraction": violations / (n - 1), "isi_violations": violations,
            "isi_violations_ratio": ratio}


@dataclass
class UnitTable:
    """One row per unit (the columns of units.csv) with its mean and SD waveform."""

    rows: list[dict]
    mean: np.ndarray              # (units, samples) µV
    sd: np.ndarray
    electrode_id: np.ndarray      # (units,)

    def subset(self, kept: list[int]) -> "UnitTable":
        """The rows of units ``kept`` (old ids, ascending), renumbered 0..k−1."""
        rows = [{**self.rows[u], "unit": i} for i, u in enumerate(kept)]
        return UnitTable(rows=rows, mean=self.mean[kept].reshape(-1, self.mean.shape[1]),
                         sd=self.sd[kept].reshape(-1, self.sd.shape[1]), electrode_id=self.electrode_id[kept])


def unit_table(unit: np.ndarray, spikes: Spikes, align: int, dead_time_ms: float) -> UnitTable:
    """Per-unit counts, rate, amplitude, SNR (|mean at the trough| / noise SD) and ISI
    violations (``dead_time_ms``: the detector's)."""
    electrode, electrode_ids, waveforms = spikes.electrode, spikes.electrode_ids, spikes.waveform
    timestamps, amplitude, noise_uv, duration_s = (spikes.timestamp, spikes.amplitude, spikes.noise.noise_uv,
                                                   spikes.duration_s)
    n_samples = waveforms.shape[1]
    rows, means, sds = [], [], []
    for u, members in groups(unit).items():  # units are numbered 0..k-1 without gaps
        w = np.asarray(waveforms[members], dtype=np.float64)
        mean = w.mean(axis=0)
        ch = int(electrode[members[0]])
        rows.append({"unit": u, "electrode_id": int(electrode_ids[ch]), "n_spikes": len(members),
                     "firing_rate_hz": len(members) / duration_s,
                     "amplitude_uv": float(np.median(np.abs(amplitude[members]))),
                     "snr": abs(float(mean[align])) / float(noise_uv[ch]),
                     **isi_violations(np.asarray(timestamps[members]), duration_s, dead_time_ms)})
        means.append(mean)
        sds.append(w.std(axis=0))
    return UnitTable(rows=rows, mean=np.array(means).reshape(-1, n_samples),
                     sd=np.array(sds).reshape(-1, n_samples),
                     electrode_id=np.array([r["electrode_id"] for r in rows], np.int32))


def _others_d2(space: np.ndarray, inside: np.ndarray) -> np.ndarray | None:
    """Squared Mahalanobis distance of every spike outside the unit from the unit's spikes
    (None when the unit is too small for a covariance or has no others around it)."""
    members, others = space[inside], space[~inside]
    if len(members) <= space.shape[1] + 1 or len(others) == 0:
        return None
    diff = others - members.mean(axis=0)
    return np.einsum("ij,jk,ik->i", diff, np.linalg.pinv(np.cov(members.T)), diff)


def l_ratio(space: np.ndarray, inside: np.ndarray) -> float:
    """L-ratio (Schmitzer-Torbert et al. 2005) of the spikes ``inside`` among one electrode's
    spikes in ``space``: the chi-square tail mass of the others, per member (0 when undefined)."""
    d2 = _others_d2(space, inside)
    return 0.0 if d2 is None else float(stats.chi2.sf(d2, space.shape[1]).sum() / inside.sum())


def isolation(space: np.ndarray, labels: np.ndarray, unit: int) -> tuple[float, float]:
    """Isolation distance and L-ratio of ``unit`` among all spikes of its electrode, in the
    clustering space. Isolation distance is NaN when the other spikes are fewer than the unit's."""
    inside = labels == unit
    d2 = _others_d2(space, inside)
    if d2 is None:
        return float("nan"), float("nan")
    n = int(inside.sum())
    iso = float(np.sort(d2)[n - 1]) if len(d2) >= n else float("nan")
    return iso, l_ratio(space, inside)


def silhouette(space: np.ndarray, labels: np.ndarray, max_spikes: int = 3000, seed: int = 0) -> float:
    """Mean silhouette of the sorted spikes of one electrode (NaN with fewer than two units)."""
    keep = np.flatnonzero(labels >= 0)
    if len(np.unique(labels[keep])) < 2:
        return float("nan")
    if len(keep) > max_spikes:
        keep = np.random.default_rng(seed).choice(keep, max_spikes, replace=False)
    return float(silhouette_score(space[keep], labels[keep]))
