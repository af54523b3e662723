"""A third ground-truth family: Utah recordings whose cells are MEArec's biophysical models.

Neither of the other families' waveforms is a real cell's: ``simulation.py`` draws its own
templates and ``simulate_si.py`` SpikeInterface's three-exponential ones. Here every unit and
every distant cell of the hash is an extracellular action potential that MEArec (Buccino &
Einevoll 2021) computes, with NEURON and LFPy, for one of its 13 reconstructed layer-5 cell
models of the Blue Brain Project (pyramidal cells and eight interneuron types), seen by one
electrode tip from 10–150 µm at a random position and rotation (``template_library``, 40 per
cell model, cached). Spike trains are MEArec's gamma process (shape 2, 2 ms refractory);
spikes in a burst shrink by MEArec's own modulation (``compute_modulation``, a per-spike
Gaussian jitter of 5 %); the hash is the library's far cells (trough under 8 µV), firing
Poisson on each electrode. Units sit on the electrodes of a 10 × 10 grid at 400 µm less its
corners, one electrode each. The settings draw units per electrode, look-alikes (the same
cell at a near position), similar-amplitude neighbours, slow units beside fast ones, bursts
and hash as the other families' settings name them.

Benchmarks only; needs ``pip install "spikevae[mearec]"`` (NEURON 8 compiles the cell models'
mechanisms on first use, which needs a C compiler).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import signal

from spikevae.io.nsx_writer import TICKS_PER_SECOND, NsxWriter, utah_channels
from spikevae.simulators.groundtruth import GroundTruth, ground_truth_path
from spikevae.simulators.simulation import TEMPLATE_SAMPLES, TEMPLATE_TROUGH, similar_neighbours, slow_beside_fast
from spikevae.sorting.spikes import MAD_TO_SD

FS = TICKS_PER_SECOND
UPSAMPLE = 8
LIBRARY_PER_CELL = 40
UNIT_MIN_UV, HASH_MAX_UV = 15.0, 8.0   # library troughs (cells near enough) that may make a unit, or hash


@dataclass
class MEArecUtahConfig:
    """Every knob of the MEArec-based Utah simulator, named as ``simulate_si.SIUtahConfig``'s."""

    n_electrodes: int = 96
    duration_s: float = 60.0
    seed: int = 0
    n_segments: int = 2
    pause_s: float = 2.0
    units_per_electrode: tuple[float, ...] = (0.15, 0.35, 0.3, 0.2)
    amplitude_uv: tuple[float, float] = (35.0, 350.0)
    rate_hz: tuple[float, float] = (1.0, 25.0)
    noise_uv: tuple[float, float] = (4.0, 8.0)
    hash_rate_hz: float = 300.0
    hash_amplitude_uv: tuple[float, float] = (3.0, 20.0)
    lookalike_prob: float = 0.0
    lookalike_ratio: tuple[float, float] = (0.55, 0.8)
    neighbour_prob: float = 0.0
    neighbour_ratio: tuple[float, float] = (0.7, 1.3)
    slow_prob: float = 0.0
    slow_rate_hz: tuple[float, float] = (0.3, 3.0)
    fast_rate_hz: tuple[float, float] = (10.0, 30.0)
    burst_fraction: float = 0.0
    burst_prob: float = 0.25
    burst_isi_ms: tuple[float, float] = (2.5, 8.0)
    artifact_rate_hz: float = 0.05
    artifact_uv: float = 1000.0


HARD = dict(units_per_electrode=(0.1, 0.2, 0.3, 0.25, 0.15), lookalike_prob=0.5, burst_fraction=0.4,
            artifact_rate_hz=0.2, hash_rate_hz=500.0)
STRESS = dict(units_per_electrode=(0.05, 0.15, 0.35, 0.3, 0.15), neighbour_prob=0.7, slow_prob=0.5, burst_fraction=0.4,
              hash_rate_hz=900.0, artifact_rate_hz=0.1)
SETTINGS = {"standard": {}, "hard": HARD, "stress": STRESS}


def template_library(cache: Path, progress=print) -> dict:
    """MEArec's templates of its default cell models on one electrode tip, generated once
    (8–11 minutes on 2 cores) and cached: ``eap`` (n, samples) µV at 30 kHz × ``UPSAMPLE``
    with the largest peak at ``trough``, ``cell`` (n,) the cell model of each, ``distance`` µm."""
    path = cache / f"mearec-library-{LIBRARY_PER_CELL}.npz"
    if not path.exists():
        import MEArec as mr

        progress(f"generating MEArec's templates into {path} (once; about 10 minutes)")
        params = mr.get_default_templates_params()
        params.update(probe="monotrode", n=LIBRARY_PER_CELL, xlim=[10, 150], ylim=[-100, 100], zlim=[-100, 100],
                      min_amp=3, seed=1)
        folder = cache.resolve()
        folder.mkdir(parents=True, exist_ok=True)
        here = Path.cwd()
        os.chdir(folder)  # MEArec writes its parameters into the working folder
        try:
            tempgen = mr.gen_templates(mr.get_default_cell_models_folder(), params=params, n_jobs=2, recompile=True,
                                       templates_tmp_folder=folder / "mearec-tmp", verbose=False)
        finally:
            os.chdir(here)
        save_library(tempgen, path)
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def save_library(tempgen, path: Path) -> None:
    """A MEArec ``TemplateGenerator`` of one electrode as ``template_library``'s file."""
    fs_in = 1000.0 / float(tempgen.info["params"]["dt"])  # the templates' own rate, Hz
    eap = signal.resample_poly(np.asarray(tempgen.templates, float)[:, 0, :], int(FS * UPSAMPLE), int(fs_in), axis=1)
    trough = int(round(float(tempgen.info["params"]["cut_out"][0]) * FS * UPSAMPLE / 1000))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, eap=eap.astype(np.float32), trough=trough, cell=np.asarray(tempgen.celltypes).astype(str),
             distance=np.linalg.norm(np.asarray(tempgen.locations, float), axis=1))


def _aligned(eap: np.ndarray, trough: int) -> np.ndarray:
    """Each template rolled so that its own trough (the MEArec cut puts the largest peak, not
    always the trough, at ``trough``) lies at ``trough``."""
    shift = trough - eap.argmin(axis=1)
    return np.stack([np.roll(e, s) for e, s in zip(eap, shift)])


def _spike_trains(rates: np.ndarray, duration_s: float, seed: int) -> list[np.ndarray]:
    """MEArec's gamma spike trains (seconds), one per rate. MEArec hands each rate to elephant's
    gamma process as its rate parameter, whose spikes come at that rate over the shape (half of it
    at shape 2), so the rates go in multiplied by the shape."""
    from MEArec import SpikeTrainGenerator

    shape = 2
    gen = SpikeTrainGenerator(params={"rates": list(shape * rates), "process": "gamma", "gamma_shape": shape,
                                      "ref_per": 2, "t_start": 0, "duration": duration_s, "min_rate": 0.1}, seed=seed)
    gen.generate_spikes()
    return [np.asarray(st.times.rescale("s").magnitude, float) for st in gen.spiketrains]


def _bursts(times: np.ndarray, cfg: MEArecUtahConfig, duration_s: float, rng) -> np.ndarray:
    """``times`` with 1–3 followers after a share ``burst_prob`` of its spikes, refractory kept,
    none past ``duration_s``."""
    starts = times[rng.random(len(times)) < cfg.burst_prob]
    extra = [t + np.cumsum(rng.uniform(*cfg.burst_isi_ms, rng.integers(1, 4))) / 1e3 for t in starts]
    out = np.sort(np.concatenate([times, *extra])) if extra else times
    keep = np.r_[True, np.diff(out) >= 2e-3] & (out < duration_s)
    return out[keep]


def _modulation(times: np.ndarray, bursting: bool, duration_s: float) -> np.ndarray:
    """MEArec's amplitude of each spike: a burst's later spikes shrink (``exp`` 0.2, up to 10
    spikes within 100 ms); every spike jittered by 5 %."""
    import neo
    import quantities as pq
    from MEArec.tools import compute_modulation

    if len(times) == 0:
        return np.zeros(0)
    st = neo.SpikeTrain(times * pq.s, t_stop=duration_s * pq.s)
    mod, _ = compute_modulation(st, n_el=1, mrand=1, sdrand=0.05, n_spikes=10 if bursting else 1, exp=0.2,
                                max_burst_duration=100 * pq.ms)
    return np.asarray(mod, float)


def _add(out: np.ndarray, start: int, at: np.ndarray, phase: np.ndarray, amps: np.ndarray, shapes: np.ndarray,
         trough: int) -> None:
    """Add each ``amps[i] * shapes[i]`` (samples, phases) at sub-sample ``phase[i]`` (of ``UPSAMPLE``),
    its trough at sample ``at[i]``, into ``out`` (which begins at sample ``start``)."""
    if len(at) == 0:
        return
    idx = (at - start - trough)[:, None] + np.arange(shapes.shape[1])
    ok = (idx >= 0) & (idx < len(out))
    out += np.bincount(idx[ok], weights=(amps[:, None] * shapes[np.arange(len(at)), :, phase])[ok],
                       minlength=len(out))[: len(out)]


def simulate_mearec(path, cfg: MEArecUtahConfig, library: dict, chunk_s: float = 1.0) -> GroundTruth:
    """Write a recording of this family to ``path`` (.ns6) and its ground truth beside it."""
    rng = np.random.default_rng(cfg.seed)
    n_el = cfg.n_electrodes
    eap = _aligned(library["eap"], int(library["trough"]))
    depth = -eap.min(axis=1)
    units_pool = np.flatnonzero((depth >= UNIT_MIN_UV) & (eap.max(axis=1) < depth))   # trough-led cells
    hash_pool = np.flatnonzero(depth < HASH_MAX_UV)
    # (templates, samples, phases) on the 30 kHz grid: phase p puts the trough p / UPSAMPLE of a
    # sample after sample ``nbefore``
    trough = int(library["trough"])
    padded = np.pad(eap, ((0, 0), (UPSAMPLE, UPSAMPLE)))
    length = (eap.shape[1] - UPSAMPLE) // UPSAMPLE
    phases = np.stack([padded[:, trough % UPSAMPLE - p + UPSAMPLE::UPSAMPLE][:, :length] for p in range(UPSAMPLE)],
                      axis=2)
    nbefore = trough // UPSAMPLE

    probs = np.asarray(cfg.units_per_electrode, float)
    home = np.repeat(np.arange(n_el), rng.choice(len(probs), size=n_el, p=probs / probs.sum()))
    n_units = len(home)
    pick = rng.choice(units_pool, n_units)
    amp = np.exp(rng.uniform(*np.log(cfg.amplitude_uv), n_units))
    for e in range(n_el):  # look-alike: the same cell model at the nearest other position, smaller
        on = np.flatnonzero(home == e)
        if len(on) >= 2 and cfg.lookalike_prob > 0 and rng.random() < cfg.lookalike_prob:
            cell = library["cell"][pick[on[0]]]
            same = units_pool[(library["cell"][units_pool] == cell) & (units_pool != pick[on[0]])]
            if len(same):
                pick[on[1]] = same[np.argmin(np.abs(library["distance"][same] - library["distance"][pick[on[0]]]))]
                amp[on[1]] = amp[on[0]] * rng.uniform(*cfg.lookalike_ratio)
    similar_neighbours(rng, home, amp, cfg.neighbour_prob, cfg.neighbour_ratio)
    rates = np.exp(rng.uniform(*np.log(cfg.rate_hz), n_units))
    slow_beside_fast(rng, home, amp, rates, cfg)
    shapes = phases[pick] / depth[pick][:, None, None] * amp[:, None, None]
    bursting = rng.random(n_units) < cfg.burst_fraction

    n_seg = int(round(cfg.duration_s * FS / cfg.n_segments))
    seg_s = n_seg / FS
    trains = []
    for seg in range(cfg.n_segments):
        times = _spike_trains(rates, seg_s, int(rng.integers(2**31)))
        per_unit = []
        for u, t in enumerate(times):
            t = _bursts(t, cfg, seg_s, rng) if bursting[u] else t
            per_unit.append((t, _modulation(t, bool(bursting[u]), seg_s)))
        trains.append(per_unit)

    noise_sd = np.exp(rng.uniform(*np.log(cfg.noise_uv), n_el))
    hash_shapes = phases[hash_pool] / depth[hash_pool][:, None, None]
    art_t = np.arange(int(0.006 * FS)) / FS
    art_shape = np.exp(-art_t / 0.0015) * np.cos(2 * np.pi * 900 * art_t)
    art_gain = rng.uniform(0.5, 1.5, n_el)
    sos = signal.butter(4, (250, 750), btype="bandpass", fs=FS, output="sos")
    chunk, gap = int(chunk_s * FS), int(round(cfg.pause_s * FS))
    band_sd, ticks, units = None, [], []
    with NsxWriter(path, utah_channels(n_el), spec="2.3") as writer:
        for seg in range(cfg.n_segments):
            seg_start = seg * (n_seg + gap)
            writer.begin_segment(seg_start)
            fine = [np.round(t * FS * UPSAMPLE).astype(np.int64) for t, _ in trains[seg]]
            at = [np.divmod(f, UPSAMPLE) for f in fine]  # (sample, sub-sample phase) of each unit's spikes
            for u, f in enumerate(fine):
                ticks.append((f + UPSAMPLE // 2) // UPSAMPLE + seg_start)
                units.append(np.full(len(f), u))
            art_at = np.sort(rng.integers(0, n_seg, rng.poisson(cfg.artifact_rate_hz * seg_s)))
            for c0 in range(0, n_seg, chunk):
                c1 = min(c0 + chunk, n_seg)
                noise = noise_sd[:, None] * rng.standard_normal((n_el, c1 - c0))
                hashed = np.zeros_like(noise)
                for e in range(n_el):
                    k = rng.poisson(cfg.hash_rate_hz * (c1 - c0 + 2 * length) / FS)
                    _add(hashed[e], c0, rng.integers(c0 - length, c1 + length, k), rng.integers(0, UPSAMPLE, k),
                         np.exp(rng.uniform(*np.log(cfg.hash_amplitude_uv), k)),
                         hash_shapes[rng.integers(0, len(hash_shapes), k)], nbefore)
                data = noise + hashed
                if band_sd is None:
                    band_sd = np.median(np.abs(signal.sosfiltfilt(sos, data, axis=1)), axis=1) / MAD_TO_SD
                for u in range(n_units):
                    sample, phase = at[u]
                    near = slice(*np.searchsorted(sample, (c0 - length + 1, c1 + length)))
                    _add(data[home[u]], c0, sample[near], phase[near], trains[seg][u][1][near],
                         np.broadcast_to(shapes[u], (len(sample[near]), *shapes[u].shape)), nbefore)
                for t in art_at[(art_at > c0 - len(art_shape)) & (art_at < c1)]:
                    i0, i1 = max(t - c0, 0), min(t - c0 + len(art_shape), c1 - c0)
                    data[:, i0:i1] += cfg.artifact_uv * art_gain[:, None] * art_shape[i0 - (t - c0): i1 - (t - c0)]
                writer.write(np.clip(np.round(data.T / 0.25), -32767, 32767).astype(np.int16))

    tick, unit = np.concatenate(ticks), np.concatenate(units)
    order = np.argsort(tick, kind="stable")
    wide = shapes[:, :, 0]
    # MEArec cuts 2 ms before the peak, so the stored template's window lies within the shape
    template = wide[:, nbefore - TEMPLATE_TROUGH: nbefore - TEMPLATE_TROUGH + TEMPLATE_SAMPLES]
    peak = np.array([np.abs(signal.sosfiltfilt(sos, np.pad(w, 200))).max() for w in wide])
    gt = GroundTruth(timestamp=tick[order], unit=unit[order], unit_electrode=home + 1, unit_amplitude_uv=amp,
                     unit_rate_hz=rates, unit_snr=peak / band_sd[home], unit_template=template)
    gt.save(ground_truth_path(path))
    return gt
