"""A second, independent ground-truth family: Utah-array recordings built from SpikeInterface's
generators, written as real ``.ns6`` bytes.

Defaults tuned on ``simulation.py``'s recordings are scored here (and the other way round), so a
choice that only fits one simulator shows. Everything that makes a unit comes from
SpikeInterface (``spikeinterface.core.generate``): its three-exponential waveform family
(``generate_templates``, drawn at 8 sub-sample phases), its refractory spike trains
(``generate_sorting``), its noise (``NoiseGeneratorRecording``) and its injection of spikes into
the noise (``InjectTemplatesRecording``). Units sit 15–60 µm from an electrode of a 10 × 10 grid
at 400 µm pitch, so each is seen on that electrode alone. Added on top, per chunk: background
"hash" of distant cells (SpikeInterface waveforms, Poisson times), each electrode's own noise
level, a slow LFP-like drift, and common-mode artifacts of another shape than ``simulation.py``'s.
The hard setting adds look-alikes (a second unit at the same site, further away, so the same
shape, smaller), bursts with an amplitude decrement, more artifacts and more hash; the stress
setting neighbours of similar amplitude and other shape, slow units beside fast large ones,
bursts and dense hash (as ``simulation.STRESS``).

Needs ``pip install "spikevae[spikeinterface]"``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

from .groundtruth import GroundTruth, ground_truth_path
from ..io.nsx_writer import TICKS_PER_SECOND, NsxWriter, utah_channels
from .simulation import TEMPLATE_SAMPLES, TEMPLATE_TROUGH, similar_neighbours, slow_beside_fast
from ..sorting.spikes import MAD_TO_SD
from ..io.utah import grid_positions

FS = TICKS_PER_SECOND
MS_BEFORE, MS_AFTER = 1.5, 3.0
UPSAMPLE = 8


@dataclass
class SIUtahConfig:
    """Every knob of the SpikeInterface-based Utah simulator."""

    n_electrodes: int = 96
    duration_s: float = 60.0
    seed: int = 0
    n_segments: int = 2
    pause_s: float = 2.0
    units_per_electrode: tuple[float, ...] = (0.15, 0.35, 0.3, 0.2)  # P(0 units), P(1), ...
    amplitude_uv: tuple[float, float] = (35.0, 350.0)   # trough on the home electrode, log-uniform
    rate_hz: tuple[float, float] = (1.0, 25.0)           # log-uniform
    refractory_ms: float = 2.5
    distance_um: tuple[float, float] = (15.0, 60.0)      # unit to electrode
    noise_uv: tuple[float, float] = (4.0, 8.0)           # white noise SD of each electrode (wideband)
    hash_rate_hz: float = 300.0
    hash_amplitude_uv: tuple[float, float] = (3.0, 20.0)
    drift_uv: float = 40.0                               # slow common drift (removed by any band-pass)
    lookalike_prob: float = 0.0
    lookalike_ratio: tuple[float, float] = (0.55, 0.8)   # amplitude of the look-alike against its twin
    neighbour_prob: float = 0.0                          # as simulation.SimulationConfig's
    neighbour_ratio: tuple[float, float] = (0.7, 1.3)
    slow_prob: float = 0.0
    slow_rate_hz: tuple[float, float] = (0.3, 3.0)
    fast_rate_hz: tuple[float, float] = (10.0, 30.0)
    burst_fraction: float = 0.0
    burst_prob: float = 0.25
    burst_isi_ms: tuple[float, float] = (2.5, 8.0)
    burst_decrement: float = 0.75
    artifact_rate_hz: float = 0.05
    artifact_uv: float = 1200.0


HARD = dict(units_per_electrode=(0.1, 0.2, 0.3, 0.25, 0.15), lookalike_prob=0.5, burst_fraction=0.4,
            artifact_rate_hz=0.2, hash_rate_hz=500.0)
STRESS = dict(units_per_electrode=(0.05, 0.15, 0.35, 0.3, 0.15), neighbour_prob=0.7, slow_prob=0.5, burst_fraction=0.4,
              burst_decrement=0.7, hash_rate_hz=900.0, artifact_rate_hz=0.1)
SETTINGS = {"standard": {}, "hard": HARD, "stress": STRESS}


@dataclass
class SIUnits:
    """The neurons of a recording of this family, one row each."""

    home: np.ndarray          # home electrode index (0-based)
    loc: np.ndarray           # (units, 3) µm
    amp: np.ndarray           # trough on the home electrode, µV
    params: dict              # SpikeInterface shape parameters, one array each
    rate: np.ndarray | None = None  # Hz; None: drawn with the spike trains


def draw_units(cfg: SIUtahConfig, rng: np.random.Generator) -> SIUnits:
    """Home electrode (index), 3-D position, amplitude and SpikeInterface shape parameters of each unit."""
    probs = np.asarray(cfg.units_per_electrode, float)
    counts = rng.choice(len(probs), size=cfg.n_electrodes, p=probs / probs.sum())
    home = np.repeat(np.arange(cfg.n_electrodes), counts)
    n = len(home)
    sites = grid_positions(np.arange(1, cfg.n_electrodes + 1))
    angle = rng.uniform(0, 2 * np.pi, n)
    r = rng.uniform(*cfg.distance_um, n)
    loc = np.column_stack([sites[home, 0] + 0.4 * r * np.cos(angle), sites[home, 1] + 0.4 * r * np.sin(angle),
                           0.9 * r])
    amp = np.exp(rng.uniform(*np.log(cfg.amplitude_uv), n))
    params = {"depolarization_ms": rng.uniform(0.09, 0.14, n), "repolarization_ms": rng.uniform(0.5, 0.8, n),
              "recovery_ms": rng.uniform(1.0, 1.5, n), "positive_amplitude": rng.uniform(0.05, 0.3, n),
              "smooth_ms": rng.uniform(0.03, 0.07, n), "spatial_decay": rng.uniform(20, 40, n)}
    for e in range(cfg.n_electrodes):  # look-alike: the same cell type at the same site, further away
        on = np.flatnonzero(home == e)
        if len(on) >= 2 and cfg.lookalike_prob > 0 and rng.random() < cfg.lookalike_prob:
            for k in params:
                params[k][on[1]] = params[k][on[0]] * (rng.uniform(1.0, 1.08) if k != "spatial_decay" else 1)
            loc[on[1]] = loc[on[0]]
            amp[on[1]] = amp[on[0]] * rng.uniform(*cfg.lookalike_ratio)
    similar_neighbours(rng, home, amp, cfg.neighbour_prob, cfg.neighbour_ratio)
    return SIUnits(home, loc, amp, params)


def _templates(cfg: SIUtahConfig, home, loc, amp, params, seed):
    """(units, samples, electrodes, UPSAMPLE) µV templates, each scaled to its trough on its electrode."""
    from spikeinterface.core.generate import generate_templates

    sites = grid_positions(np.arange(1, cfg.n_electrodes + 1))
    tpl = generate_templates(sites, loc, FS, MS_BEFORE, MS_AFTER, seed=seed, upsample_factor=UPSAMPLE,
                             unit_params={**params, "alpha": np.ones(len(home))}, mode="sphere")
    trough = -tpl[np.arange(len(home)), :, home, :].min(axis=(1, 2))
    return (tpl * (amp / np.maximum(trough, 1e-12))[:, None, None, None]).astype(np.float32)


def _spike_trains(cfg: SIUtahConfig, home, amp, durations, rng, seed, *, rates=None):
    """Per segment: (sample index, unit, amplitude factor) from SpikeInterface's refractory trains,
    bursts added for the bursting units; ``rates`` are drawn unless given."""
    from spikeinterface.core.generate import generate_sorting

    n_units = len(home)
    if rates is None:
        rates = np.exp(rng.uniform(*np.log(cfg.rate_hz), n_units))
        slow_beside_fast(rng, home, amp, rates, cfg)
    sorting = generate_sorting(n_units, FS, durations, firing_rates=rates, refractory_period_ms=cfg.refractory_ms,
                               seed=seed)
    bursty = rng.random(n_units) < cfg.burst_fraction
    out = []
    for seg, dur in enumerate(durations):
        samples, units, factors = [], [], []
        for u in range(n_units):
            st = sorting.get_unit_spike_train(sorting.unit_ids[u], segment_index=seg).astype(np.int64)
            f = np.ones(len(st))
            if bursty[u] and len(st):
                starts = np.flatnonzero(rng.random(len(st)) < cfg.burst_prob)
                extra_t, extra_f = [], []
                for i in starts:
                    k = rng.integers(1, 4)
                    extra_t.append(st[i] + np.cumsum(rng.uniform(*cfg.burst_isi_ms, k) * FS / 1e3).astype(np.int64))
                    extra_f.append(cfg.burst_decrement ** np.arange(1, k + 1))
                if extra_t:
                    st, f = np.concatenate([st, *extra_t]), np.concatenate([f, *extra_f])
                    order = np.argsort(st, kind="stable")
                    st, f = st[order], f[order]
                    keep = np.r_[True, np.diff(st) >= cfg.refractory_ms * FS / 1e3] & (st < int(dur * FS))
                    st, f = st[keep], f[keep]
            samples.append(st)
            units.append(np.full(len(st), u))
            factors.append(f * (1 + 0.04 * rng.standard_normal(len(st))))
        s, u, f = (np.concatenate(x) for x in (samples, units, factors))
        order = np.lexsort((u, s))
        out.append((s[order].astype(np.int64), u[order].astype(np.int64), f[order]))
    return out, rates


def _add(out: np.ndarray, start: int, at: np.ndarray, amps: np.ndarray, shapes: np.ndarray, trough: int):
    """Add ``amps[i] * shapes[i]``, sample ``trough`` of the shape at ``at[i]``, into ``out`` (which begins at
    ``start``)."""
    if len(at) == 0:
        return
    idx = (at - start - trough)[:, None] + np.arange(shapes.shape[1])
    ok = (idx >= 0) & (idx < len(out))
    out += np.bincount(idx[ok], weights=(amps[:, None] * shapes)[ok], minlength=len(out))[: len(out)]


def simulate_si(path, config: SIUtahConfig | None = None, chunk_s: float = 1.0, progress=None,
                units: SIUnits | None = None) -> GroundTruth:
    """Write a recording of the SpikeInterface-based family to ``path`` (.ns6) and its ground truth
    beside it; ``units`` (else drawn from the config) are the neurons it holds."""
    from spikeinterface.core import NumpySorting
    from spikeinterface.core.generate import InjectTemplatesRecording, generate_single_fake_waveform
    from spikeinterface.generation import NoiseGeneratorRecording

    cfg = config or SIUtahConfig()
    rng = np.random.default_rng(cfg.seed)
    seed = int(rng.integers(2**31))
    n_el = cfg.n_electrodes
    n_seg_samples = int(round(cfg.duration_s * FS / cfg.n_segments))
    durations = [n_seg_samples / FS] * cfg.n_segments
    units = draw_units(cfg, rng) if units is None else units
    home, loc, amp, params = units.home, units.loc, units.amp, units.params
    n_units = len(home)
    if n_units == 0:
        raise ValueError("no units were drawn: more electrodes, or a lower P(0 units)")
    templates = _templates(cfg, home, loc, amp, params, seed)
    trains, rates = _spike_trains(cfg, home, amp, durations, rng, seed, rates=units.rate)
    nbefore = templates.shape[1] - int(MS_AFTER * FS / 1000)
    noise_sd = np.exp(rng.uniform(*np.log(cfg.noise_uv), n_el))
    noise = NoiseGeneratorRecording(n_el, FS, durations, noise_levels=noise_sd, dtype="float32", seed=seed,
                                    strategy="on_the_fly")
    vector = np.concatenate([np.rec.fromarrays([s, u, np.full(len(s), i)],
                                               names="sample_index,unit_index,segment_index")
                             for i, (s, u, _) in enumerate(trains)])
    rec = InjectTemplatesRecording(NumpySorting(vector, FS, np.arange(n_units)), templates, nbefore=nbefore,
                                   parent_recording=noise, amplitude_factor=np.concatenate([f for _, _, f in trains]),
                                   upsample_vector=rng.integers(0, UPSAMPLE, len(vector)))

    # hash: distant cells, SpikeInterface waveforms of random shape, Poisson on each electrode
    hash_bank = np.stack([generate_single_fake_waveform(
        FS, MS_BEFORE, MS_AFTER, positive_amplitude=rng.uniform(0.05, 0.3), depolarization_ms=rng.uniform(0.09, 0.14),
        repolarization_ms=rng.uniform(0.5, 0.8), recovery_ms=rng.uniform(1.0, 1.5), smooth_ms=rng.uniform(0.05, 0.1))
        for _ in range(24)])
    hash_bank /= -hash_bank.min(axis=1, keepdims=True)
    art_t = np.arange(int(0.008 * FS)) / FS
    art_shape = np.sin(2 * np.pi * 400 * art_t) * np.exp(-art_t / 0.002) + 0.3 * (art_t < 0.0005)
    art_gain = rng.uniform(0.6, 1.4, n_el)
    drift_phase = rng.uniform(0, 2 * np.pi, 3)

    sos = signal.butter(4, (250, 750), btype="bandpass", fs=FS, output="sos")
    chunk, gap = int(chunk_s * FS), int(round(cfg.pause_s * FS))
    band_sd = None
    with NsxWriter(path, utah_channels(n_el), spec="2.3") as writer:
        for seg in range(cfg.n_segments):
            seg_start = seg * (n_seg_samples + gap)
            writer.begin_segment(seg_start)
            n_art = rng.poisson(cfg.artifact_rate_hz * durations[seg])
            art_at = np.sort(rng.integers(0, n_seg_samples, n_art))
            for c0 in range(0, n_seg_samples, chunk):
                c1 = min(c0 + chunk, n_seg_samples)
                data = rec.get_traces(segment_index=seg, start_frame=c0, end_frame=c1).astype(np.float64).T
                background = noise.get_traces(segment_index=seg, start_frame=c0, end_frame=c1).astype(np.float64).T
                hashed = np.zeros_like(background)
                for e in range(n_el):
                    k = rng.poisson(cfg.hash_rate_hz * (c1 - c0 + 2 * nbefore) / FS)
                    at = rng.integers(c0 - nbefore, c1 + nbefore, k)
                    _add(hashed[e], c0, at, np.exp(rng.uniform(*np.log(cfg.hash_amplitude_uv), k)),
                         hash_bank[rng.integers(0, len(hash_bank), k)], nbefore)
                t = (seg_start + np.arange(c0, c1)) / FS
                drift = cfg.drift_uv * sum(np.sin(2 * np.pi * f * t + p) for f, p in zip((0.7, 3.1, 9.0), drift_phase))
                for a in art_at[(art_at > c0 - len(art_shape)) & (art_at < c1)]:
                    i0, i1 = max(a - c0, 0), min(a - c0 + len(art_shape), c1 - c0)
                    data[:, i0:i1] += cfg.artifact_uv * art_gain[:, None] * art_shape[i0 - (a - c0): i1 - (a - c0)]
                if band_sd is None:
                    band_sd = np.median(np.abs(signal.sosfiltfilt(sos, background + hashed, axis=1)), axis=1) / MAD_TO_SD
                data += hashed + drift
                writer.write(np.clip(np.round(data.T / 0.25), -32767, 32767).astype(np.int16))
                if progress is not None:
                    progress(c1 - c0)

    # ground truth: the trough tick on the file clock (SpikeInterface puts the trough at ``nbefore``)
    ticks = np.concatenate([s + seg * (n_seg_samples + gap) for seg, (s, _, _) in enumerate(trains)])
    unit = np.concatenate([u for _, u, _ in trains])
    order = np.argsort(ticks, kind="stable")
    wide = templates[np.arange(n_units), :, home, 0]
    lo = nbefore - TEMPLATE_TROUGH
    unit_template = np.zeros((n_units, TEMPLATE_SAMPLES))
    take = wide[:, lo:lo + TEMPLATE_SAMPLES]
    unit_template[:, :take.shape[1]] = take
    peak = np.array([np.abs(signal.sosfiltfilt(sos, np.pad(w, 200))).max() for w in wide])
    gt = GroundTruth(timestamp=ticks[order], unit=unit[order], unit_electrode=home + 1, unit_amplitude_uv=amp,
                     unit_rate_hz=rates, unit_snr=peak / band_sd[home],
                     unit_template=unit_template)
    gt.save(ground_truth_path(path))
    return gt
