"""``Spikes``: what every step after detection takes, from ``sort``'s detection or from a
result folder (``compare``), so that both run the later steps on the same inputs; and
``NoiseEstimate``, the per-electrode noise it carries. The types sit below the steps that
fill them (detection imports them, not the other way round)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..io.reader import TICKS_PER_SECOND

if TYPE_CHECKING:
    from .detection import Detection
    from ..io.output import Result

MAD_TO_SD = 0.6745  # median |x| / SD of a Gaussian: a robust noise SD is median |x| / this


@dataclass
class NoiseEstimate:
    noise_uv: np.ndarray              # robust SD of the filtered signal, per electrode
    skipped: dict[int, str]           # channel index → why it is not sorted (flat, saturated)
    autocorr: np.ndarray | None = None  # (channels, lags) of the noise, lag 0 = 1; None: not measured


@dataclass
class Spikes:
    """One row per detected spike (arrays or on-disk columns) and, per electrode (channel
    index into ``electrode_ids``), its noise estimate and threshold; ``segments`` are the
    recording's (first tick, samples)."""

    timestamp: np.ndarray         # int64 ticks of the file clock
    electrode: np.ndarray         # channel index
    amplitude: np.ndarray         # µV at the trough
    waveform: np.ndarray          # (n, n_samples) µV
    electrode_ids: np.ndarray
    noise: NoiseEstimate
    threshold_uv: np.ndarray
    segments: list[tuple[int, int]]

    @property
    def n(self) -> int:
        return len(self.timestamp)

    @property
    def duration_s(self) -> float:
        return sum(n for _, n in self.segments) / TICKS_PER_SECOND

    @property
    def autocorr(self) -> dict[int, np.ndarray]:
        """Channel index → noise autocorrelation (empty when the input had no continuous data)."""
        a = self.noise.autocorr
        return dict(enumerate(a)) if a is not None else {}

    @classmethod
    def detected(cls, found: Detection, electrode_ids: np.ndarray, segments: list[tuple[int, int]]) -> "Spikes":
        s = found.store
        return cls(s.column("timestamp"), s.column("electrode"), s.column("amplitude"), s.column("waveform"),
                   np.asarray(electrode_ids), found.noise, found.threshold_uv, segments)

    @classmethod
    def from_result(cls, res: Result) -> "Spikes":
        """The spikes of a loaded result folder (``output.Result``), with the noise and
        thresholds its run recorded."""
        sp, ids = res.spikes, res.electrode_ids
        channel = {int(e): i for i, e in enumerate(ids)}
        autocorr = res.run.get("noise_autocorr", {})
        noise = NoiseEstimate(noise_uv=res.per_electrode("noise_uv"), skipped={},
                              autocorr=np.stack([np.array(autocorr[str(e)]) for e in ids]) if autocorr else None)
        return cls(sp["timestamp"], np.array([channel[int(e)] for e in sp["electrode_id"]], np.int64),
                   sp["amplitude_uv"], res.spike_waveforms, ids, noise, res.per_electrode("threshold_uv"),
                   res.segments)
