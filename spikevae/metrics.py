"""Per-unit quality metrics that need no ground truth."""
from __future__ import annotations

import numpy as np

from .reader import TICKS_PER_SECOND

ISI_LIMIT_MS = 1.5


def isi_violation_fraction(timestamps: np.ndarray, limit_ms: float = ISI_LIMIT_MS) -> float:
    """Share of inter-spike intervals shorter than ``limit_ms`` (refractory violations)."""
    if len(timestamps) < 2:
        return 0.0
    isi = np.diff(np.sort(timestamps))
    return float((isi < limit_ms * TICKS_PER_SECOND / 1000).mean())


def waveform_stats(waveforms: np.ndarray, align: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean and SD waveform, and the mean's value at the alignment sample (µV)."""
    w = np.asarray(waveforms, dtype=np.float64)
    mean = w.mean(axis=0)
    return mean, w.std(axis=0), float(mean[align])
