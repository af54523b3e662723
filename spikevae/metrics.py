"""Per-unit quality metrics that need no ground truth."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .reader import TICKS_PER_SECOND

ISI_LIMIT_MS = 1.5


def isi_violation_fraction(timestamps: np.ndarray, limit_ms: float = ISI_LIMIT_MS) -> float:
    """Share of inter-spike intervals shorter than ``limit_ms`` (refractory violations)."""
    if len(timestamps) < 2:
        return 0.0
    isi = np.diff(np.sort(timestamps))
    return float((isi < limit_ms * TICKS_PER_SECOND / 1000).mean())


@dataclass
class UnitTable:
    """One row per unit (the columns of units.csv) with its mean and SD waveform."""

    rows: list[dict]
    mean: np.ndarray              # (units, samples) µV
    sd: np.ndarray
    electrode_id: np.ndarray      # (units,)


def unit_table(unit: np.ndarray, electrode: np.ndarray, electrode_ids: np.ndarray, waveforms: np.ndarray,
               timestamps: np.ndarray, amplitude: np.ndarray, noise_uv: np.ndarray, duration_s: float,
               align: int) -> UnitTable:
    """Per-unit counts, rate, amplitude, SNR (|mean at the trough| / noise SD) and ISI violations."""
    n_samples = waveforms.shape[1]
    rows, means, sds = [], [], []
    for u in range(int(unit.max(initial=-1)) + 1):
        members = np.flatnonzero(unit == u)
        w = np.asarray(waveforms[members], dtype=np.float64)
        mean = w.mean(axis=0)
        ch = int(electrode[members[0]])
        rows.append({"unit": u, "electrode_id": int(electrode_ids[ch]), "n_spikes": len(members),
                     "firing_rate_hz": len(members) / duration_s,
                     "amplitude_uv": float(np.median(np.abs(amplitude[members]))),
                     "snr": abs(float(mean[align])) / float(noise_uv[ch]),
                     "isi_violation_fraction": isi_violation_fraction(np.asarray(timestamps[members]))})
        means.append(mean)
        sds.append(w.std(axis=0))
    return UnitTable(rows=rows, mean=np.array(means).reshape(-1, n_samples),
                     sd=np.array(sds).reshape(-1, n_samples),
                     electrode_id=np.array([r["electrode_id"] for r in rows], np.int32))
