"""Simulated Utah-array recordings with ground truth, written as real ``.ns6`` bytes.

Each electrode carries 0 to a few units (one electrode per unit, as on a Utah array) with
varied extracellular waveforms (narrow and broad), refractory spike trains and a little
amplitude jitter, on top of thermal noise, background "hash" of distant small units, a
1/f LFP, line noise and common-mode artifacts that hit every electrode at once. The
recording can be split by pauses into several segments. Generation is chunked, so the
memory needed does not depend on the duration.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, signal

from .groundtruth import GroundTruth, ground_truth_path
from ..io.nsx_writer import TICKS_PER_SECOND, NsxWriter, utah_channels
from ..sorting.spikes import MAD_TO_SD

FS = TICKS_PER_SECOND
TEMPLATE_SAMPLES = 64
TEMPLATE_TROUGH = 20  # index of the trough inside a stored template
PHASES = 16           # sub-sample phases at which a template is drawn with subsample_timing


@dataclass
class SimulationConfig:
    """Every knob of the simulator; defaults give a moderately hard Utah-array recording."""

    n_electrodes: int = 16
    duration_s: float = 20.0          # recorded time, pauses excluded
    seed: int = 0                     # noise, spike times and everything else
    unit_seed: int | None = None      # draws the units themselves; fixed across sessions of one array
    amplitude_scale: float = 1.0      # multiplies every unit's amplitude: drift across sessions
    spec: str = "2.3"                 # NSx spec of the written file: 2.2, 2.3, 3.0, 3.0-ptp
    n_segments: int = 1               # >1 splits the recording by pauses
    pause_s: float = 3.0              # unrecorded time between segments
    units_per_electrode: tuple[float, ...] = (0.1, 0.3, 0.4, 0.2)  # P(0 units), P(1), ... ; up to 4 allowed
    amplitude_uv: tuple[float, float] = (40.0, 400.0)   # trough, log-uniform between these
    rate_hz: tuple[float, float] = (0.5, 30.0)          # firing rate, log-uniform
    refractory_ms: float = 2.0
    amplitude_jitter: float = 0.05    # SD of the spike-to-spike amplitude factor
    burst_fraction: float = 0.0       # share of units that fire bursts
    burst_prob: float = 0.3           # chance that a burster's spike starts a burst of 2–4 spikes
    burst_isi_ms: tuple[float, float] = (3.0, 6.0)
    burst_decrement: float = 0.8      # amplitude factor from one spike of a burst to the next
    lookalike_prob: float = 0.0       # chance that an electrode's second unit is a smaller copy of its first
    neighbour_prob: float = 0.0       # chance that an electrode's second unit is as large as its first (± ratio)
    neighbour_ratio: tuple[float, float] = (0.7, 1.3)
    slow_prob: float = 0.0            # chance that an electrode's smallest unit is slow beside a fast largest
    slow_rate_hz: tuple[float, float] = (0.3, 3.0)     # log-uniform, for that slow unit
    fast_rate_hz: tuple[float, float] = (10.0, 30.0)   # log-uniform, for the fast one beside it
    subsample_timing: bool = False    # each spike drawn at its exact time between two samples, as a real
                                      # recording samples it; off: on the nearest tick (the benchmarks' recordings)
    noise_uv: float = 6.0             # white thermal noise SD (wideband)
    hash_rate_hz: float = 200.0       # background spikes per second per electrode
    hash_amplitude_uv: tuple[float, float] = (4.0, 25.0)
    lfp_uv: float = 80.0              # SD of the 1/f local field potential
    line_uv: float = 15.0             # amplitude of mains interference
    line_hz: float = 60.0
    artifact_rate_hz: float = 0.05    # common-mode transients per second
    artifact_uv: float = 1500.0


def random_template(rng: np.random.Generator) -> np.ndarray:
    """One extracellular waveform of unit trough depth: a trough, a repolarisation bump and a
    small pre-trough bump, with widths drawn for narrow (fast-spiking) or broad cells."""
    t = (np.arange(TEMPLATE_SAMPLES) - TEMPLATE_TROUGH) / FS * 1e3  # ms
    narrow = rng.random() < 0.35
    w1 = rng.uniform(0.07, 0.11) if narrow else rng.uniform(0.11, 0.2)
    delay = rng.uniform(0.2, 0.35) if narrow else rng.uniform(0.35, 0.75)
    w2 = rng.uniform(0.1, 0.2) if narrow else rng.uniform(0.18, 0.4)
    repol = rng.uniform(0.25, 0.6) if narrow else rng.uniform(0.1, 0.4)
    pre = rng.uniform(0.0, 0.15)
    x = (-np.exp(-t**2 / (2 * w1**2)) + repol * np.exp(-(t - delay) ** 2 / (2 * w2**2))
         + pre * np.exp(-(t + 0.3) ** 2 / (2 * 0.1**2)))
    return x / -x.min()


def _spike_train(rng, rate_hz: float, refractory_s: float, duration_s: float) -> np.ndarray:
    """Poisson process with a dead time: ISI = refractory + exponential."""
    mean_free = max(1.0 / rate_hz - refractory_s, 1e-4)
    n = int(duration_s * rate_hz * 1.3) + 20
    t = np.cumsum(refractory_s + rng.exponential(mean_free, n))
    while t[-1] < duration_s:
        t = np.concatenate([t, t[-1] + np.cumsum(refractory_s + rng.exponential(mean_free, n))])
    return t[t < duration_s]


def _add_bursts(rng, t: np.ndarray, amp: np.ndarray, cfg: SimulationConfig, span_s: float):
    """Some spikes start a burst: 1–3 more spikes at short ISIs, each smaller by the decrement."""
    starts = np.flatnonzero(rng.random(len(t)) < cfg.burst_prob)
    extra_t, extra_a = [], []
    for i in starts:
        n = rng.integers(1, 4)
        isi = rng.uniform(*cfg.burst_isi_ms, n) / 1e3
        extra_t.append(t[i] + np.cumsum(isi))
        extra_a.append(amp[i] * cfg.burst_decrement ** np.arange(1, n + 1))
    if not extra_t:
        return t, amp
    t2, a2 = np.concatenate([t, *extra_t]), np.concatenate([amp, *extra_a])
    order = np.argsort(t2, kind="stable")
    t2, a2 = t2[order], a2[order]
    keep = np.r_[True, np.diff(t2) >= cfg.refractory_ms / 1e3] & (t2 < span_s)  # bursts respect refractoriness
    return t2[keep], a2[keep]


def similar_neighbours(rng, home: np.ndarray, amp: np.ndarray, prob: float, ratio: tuple[float, float]) -> None:
    """With chance ``prob`` per electrode of two or more units, give its second unit the first's
    amplitude × uniform(``ratio``) (in place): two cells a trough cannot tell apart, only their shapes."""
    if prob <= 0:
        return
    for e in np.unique(home):
        on = np.flatnonzero(home == e)
        if len(on) >= 2 and rng.random() < prob:
            amp[on[1]] = amp[on[0]] * rng.uniform(*ratio)


def slow_beside_fast(rng, home: np.ndarray, amp: np.ndarray, rate: np.ndarray, cfg) -> None:
    """With chance ``cfg.slow_prob`` per electrode of two or more units, make its largest unit fire
    fast and its smallest slowly (rates log-uniform in ``cfg.fast_rate_hz`` and ``cfg.slow_rate_hz``,
    in place; either simulator's config): a few dozen spikes beside thousands, the unit a mixture
    fitted on a sample overlooks."""
    if cfg.slow_prob <= 0:
        return
    for e in np.unique(home):
        on = np.flatnonzero(home == e)
        if len(on) >= 2 and rng.random() < cfg.slow_prob:
            rate[on[np.argmax(amp[on])]] = np.exp(rng.uniform(*np.log(cfg.fast_rate_hz)))
            rate[on[np.argmin(amp[on])]] = np.exp(rng.uniform(*np.log(cfg.slow_rate_hz)))


HARD = dict(units_per_electrode=(0.1, 0.2, 0.3, 0.25, 0.15), burst_fraction=0.4, lookalike_prob=0.5,
            artifact_rate_hz=0.2, hash_rate_hz=400.0)
"""The harder setting: up to 4 units per electrode, bursts, look-alikes, more artifacts and hash."""
STRESS = dict(units_per_electrode=(0.05, 0.15, 0.35, 0.3, 0.15), neighbour_prob=0.7, slow_prob=0.5,
              burst_fraction=0.4, burst_decrement=0.75, hash_rate_hz=800.0, artifact_rate_hz=0.1)
"""What separates features: same-electrode neighbours of similar amplitude and different shape,
slow units beside fast large ones, bursts whose later spikes shrink, dense hash."""
SETTINGS = {"standard": {}, "hard": HARD, "stress": STRESS}
"""The benchmarks' settings by name: knobs on top of the defaults."""


def _phase_bank(template: np.ndarray) -> np.ndarray:
    """(PHASES + 1, samples): the template delayed by −½, −½ + 1/PHASES, ... ½ sample (cubic spline)."""
    return np.stack([ndimage.shift(template, k / PHASES - 0.5, order=3, mode="constant")
                     for k in range(PHASES + 1)])


def _add_events(out: np.ndarray, start: int, ticks: np.ndarray, amps: np.ndarray,
                templates: np.ndarray) -> None:
    """Add ``amps[i] * templates[i]`` with its trough at ``ticks[i]`` into ``out`` (chunk at ``start``)."""
    if len(ticks) == 0:
        return
    idx = (ticks - start - TEMPLATE_TROUGH)[:, None] + np.arange(TEMPLATE_SAMPLES)
    ok = (idx >= 0) & (idx < len(out))
    out += np.bincount(idx[ok], weights=(amps[:, None] * templates)[ok], minlength=len(out))[: len(out)]


@dataclass
class Units:
    """The neurons of a simulated recording, one row each."""

    electrode: np.ndarray     # home electrode index (0-based)
    amplitude: np.ndarray     # trough, µV
    rate: np.ndarray          # Hz
    template: np.ndarray      # (units, TEMPLATE_SAMPLES), trough −1 at TEMPLATE_TROUGH
    bursty: np.ndarray        # bool


def draw_units(cfg: SimulationConfig, urng: np.random.Generator) -> Units:
    """The units of a recording: electrode, template, amplitude, rate, and which ones burst."""
    n_el = cfg.n_electrodes
    probs = np.asarray(cfg.units_per_electrode, float)
    counts = urng.choice(len(probs), size=n_el, p=probs / probs.sum())
    unit_el = np.repeat(np.arange(n_el), counts)
    n_units = len(unit_el)
    lo, hi = np.log(cfg.amplitude_uv)
    unit_amp = np.exp(urng.uniform(lo, hi, n_units)) * cfg.amplitude_scale
    lo, hi = np.log(cfg.rate_hz)
    unit_rate = np.exp(urng.uniform(lo, hi, n_units))
    unit_tpl = np.array([random_template(urng) for _ in range(n_units)]).reshape(n_units, TEMPLATE_SAMPLES)
    for e in range(n_el):  # look-alikes: a second unit that is a smaller, slightly wider copy of the first
        on = np.flatnonzero(unit_el == e)
        if len(on) >= 2 and cfg.lookalike_prob > 0 and urng.random() < cfg.lookalike_prob:
            stretch = urng.uniform(1.05, 1.15)
            t = np.arange(TEMPLATE_SAMPLES) - TEMPLATE_TROUGH
            unit_tpl[on[1]] = np.interp(t / stretch, t, unit_tpl[on[0]])
            unit_amp[on[1]] = unit_amp[on[0]] * urng.uniform(0.6, 0.8)
    # extra draws only when a knob is on, so that default simulations stay as they were
    similar_neighbours(urng, unit_el, unit_amp, cfg.neighbour_prob, cfg.neighbour_ratio)
    slow_beside_fast(urng, unit_el, unit_amp, unit_rate, cfg)
    bursty = urng.random(n_units) < cfg.burst_fraction if cfg.burst_fraction > 0 else np.zeros(n_units, bool)
    return Units(unit_el, unit_amp, unit_rate, unit_tpl, bursty)


class _Layout:
    """Where each segment sits on the file clock."""

    def __init__(self, cfg: SimulationConfig):
        n = int(round(cfg.duration_s * FS))
        sizes = np.full(cfg.n_segments, n // cfg.n_segments)
        sizes[-1] += n - sizes.sum()
        gap = int(round(cfg.pause_s * FS))
        self.starts = np.concatenate([[0], np.cumsum(sizes[:-1] + gap)]).astype(np.int64)
        self.sizes = sizes.astype(np.int64)
        self.total_ticks = int(self.starts[-1] + self.sizes[-1])

    def recorded(self, ticks: np.ndarray) -> np.ndarray:
        seg = np.searchsorted(self.starts, ticks, side="right") - 1
        return (seg >= 0) & (ticks < self.starts[seg.clip(0)] + self.sizes[seg.clip(0)])


def simulate(path, config: SimulationConfig | None = None, chunk_s: float = 1.0,
             progress=None, units: Units | None = None) -> GroundTruth:
    """Write a simulated recording to ``path`` (.ns6) and its ground truth beside it; ``units``
    (else drawn from the config) are the neurons it holds."""
    cfg = config or SimulationConfig()
    rng = np.random.default_rng(cfg.seed)
    layout = _Layout(cfg)
    span_s = layout.total_ticks / FS
    n_el = cfg.n_electrodes

    units = draw_units(cfg, rng if cfg.unit_seed is None else np.random.default_rng(cfg.unit_seed)) \
        if units is None else units
    unit_el, unit_amp, unit_rate, unit_tpl, bursty = (units.electrode, units.amplitude, units.rate, units.template,
                                                     units.bursty)
    n_units = len(unit_el)
    times = [_spike_train(rng, r, cfg.refractory_ms / 1e3, span_s) for r in unit_rate]
    jitter = [1 + cfg.amplitude_jitter * rng.standard_normal(len(t)) for t in times]
    for u in np.flatnonzero(bursty):
        times[u], jitter[u] = _add_bursts(rng, times[u], jitter[u], cfg, span_s)
    trains = [np.round(t * FS).astype(np.int64) for t in times]
    # with subsample_timing a spike is drawn delayed by the fraction of a tick (−½..½) by
    # which its time follows its nearest tick, which ground truth keeps
    phase = [np.round((t * FS - tr + 0.5) * PHASES).astype(np.int64) if cfg.subsample_timing else None
             for t, tr in zip(times, trains)]
    banks = [_phase_bank(tp) for tp in unit_tpl] if cfg.subsample_timing else None
    hash_bank = np.array([random_template(rng) for _ in range(16)])
    art_ticks = np.round(_spike_train(rng, cfg.artifact_rate_hz, 0.05, span_s) * FS).astype(np.int64) \
        if cfg.artifact_rate_hz > 0 else np.zeros(0, np.int64)
    art_gain = rng.uniform(0.7, 1.3, n_el)
    art_shape = _artifact_shape()

    # 1/f-like LFP: white noise through a first-order low-pass at 1 Hz, half shared.
    b, a = signal.butter(1, 1.0, fs=FS)
    lfp_state = np.zeros((n_el + 1, 1))
    lfp_gain = cfg.lfp_uv / np.sqrt(1.0 / (np.pi * FS))  # variance of the filtered noise ≈ πfc/fs
    line_phase = rng.uniform(0, 2 * np.pi)

    chunk = int(chunk_s * FS)
    noise_sd = np.zeros(n_el)
    sos = signal.butter(4, (250, 750), btype="bandpass", fs=FS, output="sos")
    with NsxWriter(path, utah_channels(n_el), spec=cfg.spec) as writer:
        for seg_start, seg_size in zip(layout.starts, layout.sizes):
            writer.begin_segment(int(seg_start))
            for c0 in range(int(seg_start), int(seg_start + seg_size), chunk):
                c1 = min(c0 + chunk, int(seg_start + seg_size))
                n = c1 - c0
                t = np.arange(c0, c1) / FS
                lfp_in = rng.standard_normal((n_el + 1, n))
                lfp, lfp_state = signal.lfilter(b, a, lfp_in, axis=1, zi=lfp_state)
                lfp *= lfp_gain
                background = (cfg.noise_uv * rng.standard_normal((n_el, n))
                              + 0.7 * lfp[:1] + 0.7 * lfp[1:]
                              + cfg.line_uv * np.sin(2 * np.pi * cfg.line_hz * t + line_phase))
                for e in range(n_el):
                    k = rng.poisson(cfg.hash_rate_hz * n / FS)
                    lo, hi = np.log(cfg.hash_amplitude_uv)
                    _add_events(background[e], c0, rng.integers(c0, c1, k), np.exp(rng.uniform(lo, hi, k)),
                                hash_bank[rng.integers(0, len(hash_bank), k)])
                if c0 == seg_start == 0:
                    noise_sd = np.median(np.abs(signal.sosfiltfilt(sos, background, axis=1)), axis=1) / MAD_TO_SD
                data = background
                for u in range(n_units):
                    sel = slice(*np.searchsorted(trains[u], (c0 - TEMPLATE_SAMPLES, c1 + TEMPLATE_SAMPLES)))
                    ticks = trains[u][sel]
                    tpl = banks[u][phase[u][sel]] if cfg.subsample_timing else \
                        np.broadcast_to(unit_tpl[u], (len(ticks), TEMPLATE_SAMPLES))
                    _add_events(data[unit_el[u]], c0, ticks, unit_amp[u] * jitter[u][sel], tpl)
                sel = (art_ticks > c0 - 3000) & (art_ticks < c1 + 3000)
                for tick in art_ticks[sel]:
                    i0, i1 = max(tick - c0, 0), min(tick - c0 + len(art_shape), n)
                    if i1 > i0:
                        seg = art_shape[i0 - (tick - c0): i1 - (tick - c0)]
                        data[:, i0:i1] += cfg.artifact_uv * art_gain[:, None] * seg
                writer.write(np.clip(np.round(data.T / 0.25), -32767, 32767).astype(np.int16))
                if progress is not None:
                    progress(n)

    spike_ticks = np.concatenate(trains) if n_units else np.zeros(0, np.int64)
    spike_unit = np.repeat(np.arange(n_units), [len(t) for t in trains])
    keep = layout.recorded(spike_ticks)
    order = np.argsort(spike_ticks[keep], kind="stable")
    filtered_peak = np.array([np.abs(signal.sosfiltfilt(sos, np.pad(tp, 200))).max() for tp in unit_tpl]) \
        if n_units else np.zeros(0)
    gt = GroundTruth(
        timestamp=spike_ticks[keep][order], unit=spike_unit[keep][order],
        unit_electrode=unit_el + 1, unit_amplitude_uv=unit_amp, unit_rate_hz=unit_rate,
        unit_snr=unit_amp * filtered_peak / noise_sd[unit_el] if n_units else np.zeros(0),
        unit_template=unit_tpl * unit_amp[:, None],
    )
    gt.save(ground_truth_path(path))
    return gt


def _artifact_shape() -> np.ndarray:
    """A fast common-mode transient (movement/chewing): a step that rings and decays in ~5 ms."""
    t = np.arange(int(0.005 * FS)) / FS
    return np.exp(-t / 0.0012) * np.cos(2 * np.pi * 900 * t)


def cut_online(recording, out, *, band_hz=(250.0, 5000.0), threshold: float = 4.5, pre: int = 10,
               n_samples: int = 48, chunk_s: float = 10.0) -> int:
    """Write ``out`` (.nev) with the spikes a Blackrock system would have cut online from
    ``recording``, for testing sorts of ``.nev`` files against ground truth: a causal
    4th-order Butterworth band-pass (Central's 250 Hz – 5 kHz preset), a crossing below
    −``threshold`` × each electrode's robust noise SD (of its first 10 s), ``n_samples`` cut
    from ``pre`` before the crossing (Central's defaults), no new crossing inside a cut
    window. Timestamps are the crossing's tick; no unit classification. Returns the count."""
    from ..io.nev import write_nev
    from ..io.reader import open_recording

    rec = open_recording(recording)
    sos = signal.butter(4, band_hz, btype="bandpass", fs=FS, output="sos")
    first = rec.read(0, 0, min(rec.segments[0].n_samples, 10 * FS), np.float32)
    level = -threshold * np.median(np.abs(signal.sosfilt(sos, first, axis=1)), axis=1) / MAD_TO_SD
    post, chunk = n_samples - pre, int(chunk_s * FS)
    ticks, electrode, waveforms = [], [], []
    for seg in rec.segments:
        zi = np.zeros((len(sos), rec.n_channels, 2))
        buf, lo = np.zeros((rec.n_channels, 0), np.float32), 0  # buf[:, 0] is sample lo of the segment
        done = pre + 1                                  # crossings before this sample are handled
        free = np.zeros(rec.n_channels, np.int64)       # first sample each electrode may cross again
        for a in range(0, seg.n_samples, chunk):
            y, zi = signal.sosfilt(sos, rec.read(seg.index, a, min(a + chunk, seg.n_samples), np.float32),
                                   axis=1, zi=zi)
            buf = np.concatenate([buf, y.astype(np.float32)], axis=1)
            end = lo + buf.shape[1] - post + 1          # a crossing before this has its whole window
            below = buf < level[:, None]
            ch, i = np.nonzero(below[:, 1:] & ~below[:, :-1])  # by electrode, then by time
            t = lo + i + 1
            take = []
            for k in np.flatnonzero((t >= done) & (t < end)):
                if t[k] >= free[ch[k]]:
                    take.append(k)
                    free[ch[k]] = t[k] + post
            ch, t = ch[take], t[take]
            ticks.append(seg.start_tick + t)
            electrode.append(rec.electrode_ids[ch])
            waveforms.append(buf[ch[:, None], (t - pre - lo)[:, None] + np.arange(n_samples)])
            done = max(done, end)
            buf, lo = buf[:, done - pre - 1 - lo:], done - pre - 1
    ticks, electrode, waveforms = np.concatenate(ticks), np.concatenate(electrode), np.concatenate(waveforms)
    order = np.argsort(ticks, kind="stable")
    write_nev(out, ticks[order], electrode[order], np.zeros(len(ticks), np.int64), waveforms[order],
              rec.electrode_ids, thresholds_uv=level, band_hz=band_hz, comment="spikevae.simulators.simulation.cut_online")
    return len(ticks)
