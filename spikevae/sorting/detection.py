"""Threshold-crossing detection, artifact rejection and waveform cutting, streamed.

Noise per electrode is the median absolute deviation of the filtered signal (median|x| /
0.6745) over windows spread across the whole recording. An event is a local extremum
beyond ``threshold × noise`` that is the largest within ± the dead time; its waveform is
cut with the extremum at ``align_sample``, to a fraction of a sample: a parabola through the
extremum and its neighbours places the true trough, and the waveform is resampled there
(``subsample_waveforms``). Events that appear at once on many electrodes beyond one cell's
reach of each other (the common-mode transients Utah arrays are known for) and events of
impossible amplitude are rejected and counted. The same windows give each electrode's noise autocorrelation
(samples near crossings left out), with which ``splitting`` whitens waveforms.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy import fft
from scipy.ndimage import maximum_filter1d

from ..errors import SpikevaeError
from .filtering import BandpassFilter, Chunk
from ..params import DetectionParams, default_threshold
from ..io.reader import TICKS_PER_SECOND
from .spikes import MAD_TO_SD, NoiseEstimate
from ..io.store import SpikeStore, groups

RAIL = 32000  # |raw int16| at or above this is treated as saturated
INTERP_HALF = 8  # half-width in samples of the Lanczos kernel that resamples waveforms


@dataclass
class Detection:
    store: SpikeStore                 # timestamp, electrode (channel index), amplitude, waveform
    noise: NoiseEstimate
    threshold_uv: np.ndarray          # |level| the events crossed, per electrode
    counts: dict = field(default_factory=dict)


def spike_store(folder, n_samples: int) -> SpikeStore:
    """The on-disk columns every detection fills."""
    return SpikeStore(folder, {"timestamp": (np.int64, ()), "electrode": (np.int16, ()),
                               "amplitude": (np.float32, ()), "waveform": (np.float32, (n_samples,))})


def noise_autocorr(y: np.ndarray, sd: np.ndarray, lags: int) -> tuple[np.ndarray, np.ndarray]:
    """Sums of x(t)·x(t+k) and their counts for k < ``lags`` over the samples of ``y`` (channels,
    n) farther than ``lags`` from any excursion beyond 3 SD, so that spikes do not count as noise."""
    quiet = maximum_filter1d(np.abs(y) > 3 * sd[:, None], 2 * lags + 1, axis=1) == 0
    x = np.where(quiet, y / np.maximum(sd, 1e-9)[:, None], 0).astype(np.float32)
    nfft = fft.next_fast_len(y.shape[1] + lags, real=True)
    # float32 FFTs on all cores, faster than float64 (RESULTS.md, "Timings behind the code's
    # design"); the autocorrelation is kept to 4 decimals, float32 is good to 1e-6
    corr = [fft.irfft(np.abs(fft.rfft(v, nfft, axis=1, workers=-1)) ** 2, nfft, axis=1, workers=-1)[:, :lags]
            for v in (x, quiet.astype(np.float32))]
    return corr[0], corr[1]


def autocorr_from_sums(products: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Autocorrelation (lag 0 = 1) from ``noise_autocorr``'s sums and counts."""
    autocorr = products / np.maximum(counts, 1)
    return autocorr / np.where(autocorr[:, :1] > 0, autocorr[:, :1], 1.0)


def estimate_noise(filt: BandpassFilter, n_windows: int = 12, window_s: float = 1.0,
                   lags: int = 48) -> NoiseEstimate:
    """Robust noise SD and autocorrelation (``lags`` lags) per electrode from windows spread
    over every segment; flags flat and saturated electrodes."""
    rec = filt.recording
    win = int(window_s * TICKS_PER_SECOND)
    sizes = np.array([s.n_samples for s in rec.segments])
    total = sizes.sum()
    starts = np.unique(np.linspace(0, max(total - win, 0), n_windows).astype(np.int64))
    mads, railed, n_raw = [], np.zeros(rec.n_channels), 0
    products, counts = np.zeros((rec.n_channels, lags)), np.zeros((rec.n_channels, lags))
    edges = np.cumsum(sizes)
    for g in starts:
        seg = int(np.searchsorted(edges, g, side="right"))
        a = int(g - (edges[seg] - sizes[seg]))
        b = min(a + win, int(sizes[seg]))
        y = filt.filter_range(seg, a, b)
        mads.append(np.median(np.abs(y), axis=1) / MAD_TO_SD)
        p, c = noise_autocorr(y, mads[-1], lags)
        products, counts = products + p, counts + c
        raw = rec.read_raw(seg, a, b)
        railed += (np.abs(raw.astype(np.int32)) >= RAIL).sum(axis=1)
        n_raw += raw.shape[1]
    noise = np.median(mads, axis=0)
    skipped = {}
    for ch in range(rec.n_channels):
        if noise[ch] < 0.1:
            skipped[ch] = "flat (no signal)"
        elif railed[ch] > 0.01 * n_raw:
            skipped[ch] = f"saturated ({100 * railed[ch] / n_raw:.0f}% of samples at the rail)"
    # Rounded as run.json stores it, so that `compare` re-splits exactly as `sort` did.
    return NoiseEstimate(noise_uv=noise, skipped=skipped, autocorr=autocorr_from_sums(products, counts).round(4))


def local_maxima(s: np.ndarray, thr: np.ndarray, dead: int) -> tuple[np.ndarray, np.ndarray]:
    """(channel, sample) of every sample of ``s`` (channels × samples) at or above its channel's
    threshold that is the largest within ± ``dead`` samples; the first of equal values wins.

    Only above-threshold local maxima are candidates (a larger sample nearby would itself be
    above threshold), so the dead time is enforced among a few candidates rather than by a
    maximum filter over every sample: ~10× less work on 96-channel chunks. One pass over the
    chunk finds the samples above threshold (a few in a thousand); the rest looks at those
    alone (1D ``flatnonzero`` is 4× faster than 2D ``nonzero``)."""
    above = s >= thr[:, None]
    above[:, [0, -1]] = False
    ch, pos = np.divmod(np.flatnonzero(above), s.shape[1])
    val = s[ch, pos]
    peak = (val > s[ch, pos - 1]) & (val >= s[ch, pos + 1])
    ch, pos, val = ch[peak], pos[peak], val[peak]
    keep = np.ones(len(pos), bool)
    for k in range(1, dead + 1):  # neighbours k candidates apart, while any is within the dead time
        near = (ch[k:] == ch[:-k]) & (pos[k:] - pos[:-k] <= dead)
        if not near.any():
            break
        keep[k:] &= ~(near & (val[:-k] >= val[k:]))
        keep[:-k] &= ~(near & (val[k:] > val[:-k]))
    return ch[keep], pos[keep]


def signed(y: np.ndarray, polarity: str) -> np.ndarray:
    """``y`` turned so that the spikes sought (polarity neg, pos or both) are its maxima."""
    return -y if polarity == "neg" else (y if polarity == "pos" else np.abs(y))


def subsample_waveforms(y: np.ndarray, s: np.ndarray, ch: np.ndarray, pos: np.ndarray, align: int,
                        n_samples: int, *, half: int = INTERP_HALF) -> np.ndarray:
    """Waveforms of ``y`` (channels × samples) with the extremum of ``s`` (y signed by polarity)
    near ``pos`` at ``align``, to a fraction of a sample; needs ``half`` samples beyond the window.

    Cut at the whole sample of the extremum, a neuron's spikes whose true trough lies between
    two samples fall into two groups one sample apart; after whitening these look as different
    as two neurons do, and the mixture splits the neuron (found on ground truth: 1468 and 170
    spikes of one unit, trough between samples 11 and 12). The offset δ ∈ [−½, ½] comes from
    a parabola through the extremum and its neighbours; the window is resampled at t + δ with
    a Lanczos kernel (a windowed sinc: for a band-limited signal, near its value between samples)."""
    left, mid, right = s[ch, pos - 1], s[ch, pos], s[ch, pos + 1]
    curvature = left - 2 * mid + right  # < 0 at a local maximum; a flat top is left whole
    delta = np.clip(0.5 * (left - right) / np.where(curvature < 0, curvature, -np.inf), -0.5, 0.5)
    x = delta[:, None] - np.arange(-half, half + 1)[None, :]
    kernel = np.sinc(x) * np.sinc(x / (half + 1))
    kernel /= kernel.sum(axis=1, keepdims=True)
    ext = y[ch[:, None], pos[:, None] - align - half + np.arange(n_samples + 2 * half)]
    windows = np.lib.stride_tricks.sliding_window_view(ext, 2 * half + 1, axis=1)
    return np.einsum("njm,nm->nj", windows, kernel.astype(y.dtype), optimize=False)


class Detector:
    """Turns filtered chunks into events; ``run`` streams a whole recording into a store."""

    def __init__(self, params: DetectionParams, noise: NoiseEstimate, apart: np.ndarray | None = None):
        """``apart`` (channels × channels, ``geometry.Geometry.apart``): whose coincident events
        count toward a common-mode artifact; None: every electrode's (a Utah array's)."""
        self.p = params
        self.noise = noise
        self.apart = None if apart is None or apart.all() else np.asarray(apart, bool)
        self.dead = max(1, int(round(params.dead_time_ms * TICKS_PER_SECOND / 1000)))
        self.window = int(round(params.artifact_window_ms * TICKS_PER_SECOND / 1000))
        self.good = np.ones(len(noise.noise_uv), bool)
        self.good[list(noise.skipped)] = False
        if params.threshold is None:
            raise ValueError("Detector needs a threshold; detect() fills in the band's default")
        if params.polarity not in ("neg", "pos", "both"):
            raise ValueError(f"polarity must be neg, pos or both, not {params.polarity!r}")
        if not 0 <= params.align_sample < params.n_samples:
            raise ValueError("align_sample must lie inside the waveform")

    @property
    def context(self) -> int:
        return self.p.n_samples + self.dead + self.window + INTERP_HALF

    def events(self, chunk: Chunk) -> tuple[dict, dict]:
        """Accepted events of this chunk's own samples, and the counts of what was rejected."""
        y, p = chunk.data, self.p
        s = signed(y, p.polarity)
        thr = np.where(self.good, p.threshold * self.noise.noise_uv, np.inf).astype(np.float32)
        ch, pos = local_maxima(s, thr, self.dead)  # channel-major; reordered by time below
        fits = (pos >= p.align_sample + INTERP_HALF) & \
            (pos - p.align_sample + p.n_samples + INTERP_HALF <= y.shape[1])
        ch, pos = ch[fits], pos[fits]

        t = chunk.lo + pos
        order = np.argsort(t, kind="stable")
        ts = t[order]
        lo = np.searchsorted(ts, ts - self.window, "left")
        near = np.searchsorted(ts, ts + self.window, "right") - lo
        if self.apart is not None:  # only events on electrodes beyond one cell's reach count
            i = np.repeat(np.arange(len(ts)), near)
            j = np.repeat(lo - np.r_[0, np.cumsum(near)[:-1]], near) + np.arange(near.sum())
            chs = ch[order]
            near = np.bincount(i, weights=self.apart[chs[i], chs[j]], minlength=len(ts)).astype(np.int64)
        common = np.empty_like(near, dtype=bool)
        common[order] = near >= max(2, int(np.ceil(p.artifact_fraction * self.good.sum())))

        own = (t >= chunk.start) & (t < chunk.stop)
        wf = subsample_waveforms(y, s, ch, pos, p.align_sample, p.n_samples)
        too_big = np.abs(wf).max(axis=1) > p.max_amplitude_uv
        keep = own & ~common & ~too_big
        keep = order[keep[order]]  # time order, so the store is sorted by timestamp
        counts = {"detected": int(own.sum()), "rejected_common_mode": int((own & common).sum()),
                  "rejected_amplitude": int((own & ~common & too_big).sum())}
        return {"sample": t[keep], "electrode": ch[keep], "amplitude": wf[keep, p.align_sample],
                "waveform": wf[keep]}, counts

    def run(self, filt: BandpassFilter, store: SpikeStore, progress=None) -> dict:
        counts = {"detected": 0, "rejected_common_mode": 0, "rejected_amplitude": 0}
        chunk_samples = int(self.p.chunk_s * TICKS_PER_SECOND)
        for chunk in filt.chunks(chunk_samples, context=self.context):
            ev, c = self.events(chunk)
            start_tick = filt.recording.segments[chunk.segment].start_tick
            store.append(timestamp=start_tick + ev["sample"], electrode=ev["electrode"],
                         amplitude=ev["amplitude"], waveform=ev["waveform"])
            for k in counts:
                counts[k] += c[k]
            if progress is not None:
                progress(chunk.stop - chunk.start)
        counts["kept"] = store.n
        return counts


def detect(filt: BandpassFilter, params: DetectionParams, folder, progress=None,
           apart: np.ndarray | None = None) -> Detection:
    """Estimate noise, then stream detection over the whole recording into ``folder``;
    ``apart`` as ``Detector``'s."""
    if params.threshold is None:
        params = replace(params, threshold=default_threshold(filt.band_hz))
    noise = estimate_noise(filt, lags=params.n_samples)
    store = spike_store(folder, params.n_samples)
    try:
        counts = Detector(params, noise, apart).run(filt, store, progress)
    finally:
        store.close()
    return Detection(store=store, noise=noise, threshold_uv=params.threshold * noise.noise_uv, counts=counts)


def realign_waveforms(wf: np.ndarray, polarity: str, align: int, half: int = INTERP_HALF,
                      rows: int = 1 << 16) -> np.ndarray:
    """Waveforms cut elsewhere, moved so that their extremum sits at ``align`` to a fraction
    of a sample, as ``detect`` cuts them. A recording system cuts at the threshold crossing
    (Blackrock's Central: 10 samples into the 48), and the trough follows it by a varying
    part of a sample to a few samples, which splits a unit as whole-sample cuts do. The
    extremum is looked for in the window's first half; samples shifted in from beyond the
    window are zero (the band-passed signal's mean)."""
    n, m = wf.shape
    out = np.empty((n, m), np.float32)
    pad = m + half
    for a in range(0, n, rows):
        w = np.asarray(wf[a:a + rows], np.float32)
        s = signed(w, polarity)
        pos = 1 + np.argmax(s[:, 1:m // 2], axis=1)
        y, sp = np.pad(w, ((0, 0), (pad, pad))), np.pad(s, ((0, 0), (pad, pad)))
        out[a:a + len(w)] = subsample_waveforms(y, sp, np.arange(len(w)), pos + pad, align, m, half=half)
    return out


def from_waveforms(spikes: dict, electrode_ids: np.ndarray, params: DetectionParams, folder) -> Detection:
    """A detection made elsewhere (the recording system's cut waveforms in a .nev): noise per
    electrode from the waveforms' first samples, before any threshold crossing; waveforms
    moved to their trough (``realign_waveforms``; timestamps stay the file's); the system's
    threshold as the smallest trough it cut."""
    channel = np.searchsorted(electrode_ids, spikes["electrode_id"])
    raw = spikes["waveform"]
    if raw.shape[1] != params.n_samples:
        raise SpikevaeError(f"the file's waveforms have {raw.shape[1]} samples; pass a matching n_samples "
                            f"(spikevae cuts {params.n_samples})")
    wf = realign_waveforms(raw, params.polarity, params.align_sample)
    pre = max(2, params.align_sample - 5)
    noise, threshold = np.zeros(len(electrode_ids)), np.zeros(len(electrode_ids))
    for c, idx in groups(channel).items():
        noise[c] = np.median(np.abs(raw[idx, :pre])) / MAD_TO_SD
        threshold[c] = np.abs(wf[idx, params.align_sample]).min()
    skipped = {c: "flat (no signal)" for c in range(len(electrode_ids)) if not noise[c] > 0.1}
    keep = ~np.isin(channel, list(skipped))
    store = spike_store(folder, params.n_samples)
    store.append(timestamp=spikes["timestamp"][keep], electrode=channel[keep],
                 amplitude=wf[keep, params.align_sample], waveform=wf[keep])
    store.close()
    n = int(len(wf))
    counts = {"detected": n, "rejected_common_mode": 0, "rejected_amplitude": 0, "kept": store.n}
    return Detection(store=store, noise=NoiseEstimate(noise_uv=noise, skipped=skipped), threshold_uv=threshold,
                     counts=counts)
