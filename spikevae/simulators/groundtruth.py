"""Ground truth, and scoring a sorting against it with SpikeInterface's conventions.

A sorted spike matches a true spike within ±0.4 ms (12 ticks); a true and a sorted unit
agree by n_match / (n_true + n_sorted − n_match); units are paired by the Hungarian method
on agreement, a pair counting when agreement ≥ 0.5. For a paired true unit
accuracy = TP / (TP + FN + FP); an unpaired one scores 0. "Well detected" is accuracy ≥ 0.8.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..errors import SpikevaeError

MATCH_TICKS = 12          # ±0.4 ms at 30 kHz
MATCH_SCORE = 0.5
CHANCE_SCORE = 0.1
WELL_DETECTED = 0.8


@dataclass
class GroundTruth:
    """True spikes (trough tick on the file clock, unit index) and one row per unit."""

    timestamp: np.ndarray         # int64 30 kHz ticks
    unit: np.ndarray              # int64 index into the unit arrays
    unit_electrode: np.ndarray    # electrode id of each unit
    unit_amplitude_uv: np.ndarray
    unit_rate_hz: np.ndarray
    unit_snr: np.ndarray          # filtered (250–750 Hz) peak / robust noise SD of its electrode
    unit_template: np.ndarray     # (units, 64) wideband waveform in µV, trough at sample 20

    def save(self, path) -> None:
        np.savez(path, **asdict(self))

    @classmethod
    def load(cls, path) -> "GroundTruth":
        try:
            with np.load(path) as f:
                return cls(**{k: f[k] for k in cls.__dataclass_fields__})
        except (OSError, KeyError, ValueError) as exc:
            raise SpikevaeError(f"{path}: not a spikevae ground-truth file ({exc})") from exc


def ground_truth_path(recording_path) -> Path:
    """``session.ns6`` → ``session.gt.npz``, where the simulator puts the ground truth."""
    p = Path(recording_path)
    return p.with_name(p.stem + ".gt.npz")


@dataclass
class Scores:
    """Per true unit: accuracy, precision, recall and the sorted unit it was paired with."""

    accuracy: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    matched_unit: np.ndarray      # sorted unit id, or -1
    n_sorted_units: int
    false_positive_units: int     # sorted units agreeing with no true unit beyond chance
    redundant_units: int          # unpaired sorted units that do agree with some true unit

    @property
    def well_detected(self) -> int:
        return int((self.accuracy >= WELL_DETECTED).sum())

    def summary(self, snr: np.ndarray | None = None, min_snr: float = 5.0) -> dict:
        out = {"true_units": len(self.accuracy), "sorted_units": self.n_sorted_units,
               "well_detected": self.well_detected,
               "mean_accuracy": float(self.accuracy.mean()) if len(self.accuracy) else 0.0,
               "mean_precision": float(self.precision.mean()) if len(self.precision) else 0.0,
               "mean_recall": float(self.recall.mean()) if len(self.recall) else 0.0,
               "false_positive_units": self.false_positive_units,
               "redundant_units": self.redundant_units}
        if snr is not None:
            big = snr >= min_snr
            out[f"true_units_snr_ge_{min_snr:g}"] = int(big.sum())
            out[f"well_detected_snr_ge_{min_snr:g}"] = int((self.accuracy[big] >= WELL_DETECTED).sum())
            out[f"mean_accuracy_snr_ge_{min_snr:g}"] = float(self.accuracy[big].mean()) if big.any() else 0.0
        return out


def match_counts(true_ts, true_unit, n_true, sorted_ts, sorted_unit, sorted_ids, *, delta=MATCH_TICKS):
    """Matrix of one-to-one matched spike counts between every true and sorted unit."""
    order = np.argsort(sorted_ts, kind="stable")
    st = np.asarray(sorted_ts)[order]
    su = np.searchsorted(sorted_ids, np.asarray(sorted_unit)[order])
    lo = np.searchsorted(st, true_ts - delta, "left")
    hi = np.searchsorted(st, true_ts + delta, "right")
    k = hi - lo
    g = np.repeat(np.arange(len(true_ts)), k)
    s = np.repeat(lo - np.r_[0, np.cumsum(k)[:-1]], k) + np.arange(k.sum())
    counts = np.zeros((n_true, len(sorted_ids)), np.int64)
    # a true spike counts once per sorted unit, and a sorted spike once per true unit
    by_true = np.unique(np.stack([g, su[s]], 1), axis=0)
    np.add.at(counts, (true_unit[by_true[:, 0]], by_true[:, 1]), 1)
    by_sorted = np.unique(np.stack([s, true_unit[g]], 1), axis=0)
    other = np.zeros_like(counts)
    np.add.at(other, (by_sorted[:, 1], su[by_sorted[:, 0]]), 1)
    return np.minimum(counts, other)


def pair_units(matched: np.ndarray, size_a: np.ndarray, size_b: np.ndarray) -> tuple[np.ndarray, list]:
    """Agreement |A∩B| / |A∪B| of every unit pair from their ``matched`` spike counts and
    sizes, and the (row, column) pairs the Hungarian method makes at ≥ ``MATCH_SCORE``."""
    agreement = matched / np.maximum(size_a[:, None] + size_b[None, :] - matched, 1)
    if not matched.size:
        return agreement, []
    return agreement, [(int(r), int(c)) for r, c in zip(*linear_sum_assignment(-agreement))
                       if agreement[r, c] >= MATCH_SCORE]


def score(gt: GroundTruth, sorted_ts: np.ndarray, sorted_unit: np.ndarray, delta=MATCH_TICKS) -> Scores:
    """Score a sorting (spike ticks and unit ids; −1 = unsorted, ignored) against ground truth."""
    keep = np.asarray(sorted_unit) >= 0
    sorted_ts, sorted_unit = np.asarray(sorted_ts)[keep], np.asarray(sorted_unit)[keep]
    ids, n_sorted = np.unique(sorted_unit, return_counts=True)
    n_true_units = len(gt.unit_electrode)
    n_true = np.bincount(gt.unit, minlength=n_true_units)
    m = match_counts(gt.timestamp, gt.unit, n_true_units, sorted_ts, sorted_unit, ids, delta=delta)
    agreement, pairs = pair_units(m, n_true, n_sorted)
    acc, prec, rec = (np.zeros(n_true_units) for _ in range(3))
    matched = np.full(n_true_units, -1, np.int64)
    paired = np.zeros(len(ids), bool)
    for r, c in pairs:
        acc[r] = agreement[r, c]
        prec[r] = m[r, c] / n_sorted[c]
        rec[r] = m[r, c] / n_true[r]
        matched[r] = ids[c]
        paired[c] = True
    best = agreement.max(axis=0) if m.size and n_true_units else np.zeros(len(ids))
    return Scores(accuracy=acc, precision=prec, recall=rec, matched_unit=matched,
                  n_sorted_units=len(ids),
                  false_positive_units=int((~paired & (best < CHANCE_SCORE)).sum()),
                  redundant_units=int((~paired & (best >= CHANCE_SCORE)).sum()))
