"""``sort``: a Blackrock recording in, a result folder out. Each step lives in its own module:
reader → filtering → detection → features (β-VAE or a baseline) → clustering → splitting →
curation → output.
``embed`` and ``label_units`` are the steps after detection; they take a ``spikes.Spikes``,
which ``compare`` rebuilds from a result folder."""
from __future__ import annotations

import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import __version__
from .clustering import cluster_recording
from .config import MIN_TRAIN_SPIKES, SortConfig
from .curation import curate
from .detection import detect, from_waveforms
from .errors import SpikevaeError
from .features import make_features
from .filtering import BandpassFilter
from .geometry import Geometry, check_spacing, recording_geometry
from .metrics import UnitTable, unit_table
from .nev import cut_short_warning, read_nev_spikes
from .output import check_free_space, default_out, staged_folder, write_json, write_result
from .parallel import pool_size, torch_threads
from .progress import Reporter
from .quality import qualify
from .params import DetectionParams
from .reader import TICKS_PER_SECOND, file_checksum, open_recording
from .si_recording import describe_input, is_si_recording, open_si_recording, probe_positions
from .spikes import Spikes
from .splitting import split_units
from .train import TrainedModel, cpu_threads, pick_device


@dataclass
class Source:
    """What ``sort`` reads, described before any work, and how to get its spikes."""

    path: Path | None             # None: a recording object with no file SpikeInterface knows
    electrode_ids: np.ndarray
    info: dict                    # the "input" section of run.json
    describe: str
    acquire: Callable             # (work folder, reporter) -> Detection
    geometry: Geometry
    warnings: list[str] = field(default_factory=list)  # what reading it found doubtful

    @property
    def segments(self) -> list[tuple[int, int]]:
        return [(s["start_tick"], s["n_samples"]) for s in self.info["segments"]]


@dataclass
class SortResult:
    out: Path
    n_units: int
    counts: dict
    seconds: dict


def embed(extractor, spikes: Spikes, out: np.ndarray, rep: Reporter) -> dict:
    """Fit the feature extractor (unless it comes trained) and write every spike's features."""
    waveforms, electrode, noise = spikes.waveform, spikes.electrode, spikes.noise
    seconds = {}
    t0 = time.perf_counter()
    if not extractor.trained and len(waveforms):
        net = getattr(extractor, "cfg", None)
        with rep.bar(f"train {extractor.name}", net.steps if net else 1, unit="step" if net else "fit") as up:
            extractor.fit(waveforms, electrode, noise, progress=up)
    seconds["train"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if len(waveforms):
        with rep.bar(f"encode ({extractor.name})", len(waveforms), unit="spikes") as up:
            extractor.transform(waveforms, electrode, noise, out, progress=up)
    seconds["encode"] = time.perf_counter() - t0
    return seconds


def label_units(spikes: Spikes, features, cfg: SortConfig, rep: Reporter, space_out: np.ndarray | None = None
                ) -> tuple[np.ndarray, UnitTable]:
    """Cluster every electrode in ``features``, split look-alikes, curate the units, label
    their quality (``noise`` left unsorted) and describe them."""
    electrode = spikes.electrode
    n_el = len(np.unique(electrode)) if len(electrode) else 0
    workers = pool_size(cfg.workers, n_el)
    # the clustering space of every spike, for the units' isolation (20 bytes a spike)
    space = space_out if space_out is not None else np.zeros((len(electrode), cfg.cluster.n_dims), np.float32)
    with rep.bar("cluster", n_el, unit="electrode") as up:
        unit = cluster_recording(features, electrode, cfg.cluster, cfg.seed, progress=up, space_out=space,
                                 workers=workers)
    if cfg.split.enabled:
        with rep.bar("split", n_el, unit="electrode") as up:
            unit = split_units(unit, spikes, cfg.split, cfg.seed, progress=up, workers=workers)
    unit = curate(unit, spikes, cfg.curation)
    table = unit_table(unit, spikes, cfg.detection.align_sample, cfg.detection.dead_time_ms)
    unit, kept, quality = qualify(unit, electrode, spikes.timestamp, spikes.amplitude, space, spikes.segments,
                                  described=table.rows, params=cfg.quality)
    table = table.subset(kept)
    for row, q in zip(table.rows, quality):
        row.update(q)
    return unit, table


def sort(path, config: SortConfig | None = None, out=None, model=None, overwrite: bool = False,
         reporter: Reporter | None = None) -> SortResult:
    """Sort one recording; returns where the result went and what it holds.

    ``path`` is a .nsX or .nev file, or a SpikeInterface ``BaseRecording`` (any format
    SpikeInterface reads, 30 kHz, each channel sorted on its own; ``out`` is then needed
    unless SpikeInterface knows the recording's file). ``model`` is a saved ``model.pt`` to
    embed with instead of training a new one.
    """
    cfg = config or SortConfig()
    rep = reporter or Reporter(quiet=True)
    det = cfg.detection
    device = pick_device(cfg.device)
    source = open_source(path, cfg)
    dense = check_spacing(source.geometry, det.cell_reach_um, cfg.allow_dense, source.info["name"])
    warnings = source.warnings + ([dense] if dense else [])
    if out is None and source.path is None:
        raise SpikevaeError("sorting a recording object needs out=, the result folder")
    out = Path(out) if out is not None else default_out(source.path)
    pretrained = TrainedModel.load(model, device) if model is not None else None
    if pretrained is not None:
        pretrained.check_compatible(cfg.waveform_settings(), f"--model {model}")
    extractor = make_features(cfg.features, cfg.vae, device, cfg.seed, cfg.pca_components, pretrained)
    electrode_ids = source.electrode_ids
    seconds: dict[str, float] = {}
    with staged_folder(out, overwrite) as tmp:
        rep.info(source.describe)
        for w in warnings:
            rep.warn(w)
        t0 = time.perf_counter()
        found = source.acquire(tmp / "work", rep)
        seconds["read_filter_detect"] = time.perf_counter() - t0
        for w in rejection_warnings(found.counts, det, source.info["name"]):
            rep.warn(w)
            warnings.append(w)
        for ch, why in found.noise.skipped.items():
            rep.warn(f"electrode {electrode_ids[ch]} skipped: {why}")
        store, noise = found.store, found.noise.noise_uv
        spikes = Spikes.detected(found, electrode_ids, source.segments)
        n = store.n
        if n == 0:
            rep.warn("no spikes were detected; the result is empty")
        elif not extractor.trained and cfg.features != "pca" and n < MIN_TRAIN_SPIKES:
            raise SpikevaeError(f"{source.info['name']}: only {n} spikes detected, too few to train the β-VAE "
                                f"(need {MIN_TRAIN_SPIKES}); record longer or pass --model")
        # the features and electrode ids in the work folder, then spikes.npz and spike_waveforms.npy
        check_free_space(out.parent, n * (2 * 4 * extractor.dim + 44 + 4 * det.n_samples) + (1 << 20))

        features = store.create("features", np.float32, (extractor.dim,))
        threads = torch_threads(cfg.threads)
        with cpu_threads(threads):
            seconds.update(embed(extractor, spikes, features, rep))
        t0 = time.perf_counter()
        unit, table = label_units(spikes, features, cfg, rep)
        seconds["cluster"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        write_result(tmp, spikes, unit, features, table, align_sample=det.align_sample, scratch=store)
        if cfg.features != "pca" and extractor.trained:
            extractor.model.trained_on = extractor.model.trained_on or cfg.waveform_settings()
            extractor.model.save(tmp / "model.pt")
        seconds["write"] = time.perf_counter() - t0
        sorted_n = int((unit >= 0).sum())
        counts = dict(found.counts, sorted=sorted_n, unsorted=n - sorted_n, units=len(table.rows))
        shutil.rmtree(tmp / "work", ignore_errors=True)
        write_json(tmp / "run.json", {
            "spikevae_version": __version__, "versions": _versions(),
            "input": source.info,
            "config": cfg.to_dict(), "features": cfg.features,
            "model": str(model) if model is not None else ("trained" if cfg.features != "pca" else None),
            "model_checksum": file_checksum(model) if model is not None else None,
            "device": str(device), "threads": threads, "platform": platform.platform(),
            # unrounded, so that `compare` labels the units from the same numbers as this run
            "noise_uv": dict(zip(electrode_ids.tolist(), noise.tolist())),
            "threshold_uv": dict(zip(electrode_ids.tolist(), found.threshold_uv.tolist())),
            "noise_autocorr": {int(electrode_ids[c]): a.tolist() for c, a in spikes.autocorr.items()},
            "skipped_electrodes": {int(electrode_ids[c]): w for c, w in found.noise.skipped.items()},
            "warnings": warnings,
            "seconds": seconds, "counts": counts, "training_history": extractor.history,
        })
    rep.info(f"{counts['units']} units, {counts['sorted']} of {counts['kept']} spikes sorted "
             f"({counts['rejected_common_mode']} common-mode and {counts['rejected_amplitude']} "
             f"too-large events rejected) → {out}")
    return SortResult(out=out, n_units=len(table.rows), counts=counts, seconds=seconds)


def rejection_warnings(counts: dict, det: DetectionParams, name: str, most: float = 1 / 3) -> list[str]:
    """A rejection rule that removed more than ``most`` of the detected events is named: on an
    array it was not built for, it is likely removing spikes, not artifacts."""
    rules = {"rejected_common_mode": f"common-mode artifacts (seen on ≥ {det.artifact_fraction:.0%} of the "
                                     f"electrodes more than {det.cell_reach_um:g} µm apart within "
                                     f"{det.artifact_window_ms:g} ms)",
             "rejected_amplitude": f"too large (over {det.max_amplitude_uv:g} µV)"}
    n = counts.get("detected", 0)
    return [f"{name}: {counts[key]} of {n} detected events ({counts[key] / n:.0%}) were rejected as {why}; "
            "check that the recording is a Utah-like array and its geometry (--map)"
            for key, why in rules.items() if n and counts.get(key, 0) > most * n]


def open_source(path, cfg: SortConfig) -> Source:
    """What ``sort`` reads: a continuous .nsX or a SpikeInterface ``BaseRecording`` (filtered
    and detected here), or a .nev whose waveforms the recording system already cut (sorted as
    they are, no filtering)."""
    det = cfg.detection
    if is_si_recording(path):
        rec = open_si_recording(path, cfg.channels)
        info = describe_input(rec)
        geometry = recording_geometry(rec.electrode_ids, cfg.electrode_map, cfg.pitch_um, probe_positions(rec))
        return _continuous_source(rec, Path(info["path"]) if info["path"] else None, info, cfg,
                                  f"{info['name']}: {rec.n_channels} electrodes, {rec.duration_s:.1f} s in "
                                  f"{len(rec.segments)} segment(s), {info['file_spec']}", geometry)
    path = Path(path)
    if path.suffix.lower() == ".nev":
        spikes = read_nev_spikes(path, cfg.channels)
        ids = np.unique(spikes["electrode_id"])
        segments = spikes["segments"]
        info = {"path": str(path.resolve()), "name": path.name, "bytes": path.stat().st_size,
                "checksum": file_checksum(path), "file_spec": "nev", "electrodes": ids, "segments": segments,
                "duration_s": sum(s["n_samples"] for s in segments) / TICKS_PER_SECOND}
        geometry = recording_geometry(ids, cfg.electrode_map, cfg.pitch_um)
        info["geometry"] = geometry.describe()
        return Source(path, ids, info,
                      f"{path.name}: {len(spikes['timestamp'])} cut waveforms on {len(ids)} electrodes (.nev)",
                      lambda folder, rep: from_waveforms(spikes, ids, det, folder), geometry,
                      [w for w in [cut_short_warning(path, spikes)] if w])

    rec = open_recording(path, cfg.channels, cfg.gap_tolerance_ms)
    info = {"path": str(rec.path.resolve()), "name": rec.path.name, "bytes": rec.path.stat().st_size,
            "checksum": file_checksum(rec.path), "file_spec": rec.file_spec, "electrodes": rec.electrode_ids,
            "segments": [{"start_tick": s.start_tick, "n_samples": s.n_samples} for s in rec.segments],
            "duration_s": rec.duration_s, "start_time": rec.start_time}
    return _continuous_source(rec, rec.path, info, cfg,
                              f"{rec.path.name}: {rec.n_channels} electrodes, {rec.duration_s:.1f} s in "
                              f"{len(rec.segments)} segment(s), NSx {rec.file_spec}",
                              recording_geometry(rec.electrode_ids, cfg.electrode_map, cfg.pitch_um))


def _continuous_source(rec, path: Path | None, info: dict, cfg: SortConfig, describe: str,
                       geometry: Geometry) -> Source:
    filt = BandpassFilter(rec, *cfg.band_hz, cfg.filter_order)
    info["geometry"] = geometry.describe()

    def acquire(folder, rep):
        with rep.bar("read+filter+detect", rec.duration_s, unit="s", scale=1 / TICKS_PER_SECOND) as up:
            return detect(filt, cfg.detection, folder, progress=up, apart=geometry.apart(cfg.detection.cell_reach_um))

    return Source(path, rec.electrode_ids, info, describe, acquire, geometry)


def _versions() -> dict:
    import neo
    import scipy
    import sklearn
    import torch

    return {"spikevae": __version__, "torch": torch.__version__, "neo": neo.__version__,
            "numpy": np.__version__, "scipy": scipy.__version__, "scikit-learn": sklearn.__version__,
            "python": platform.python_version()}
