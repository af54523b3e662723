"""``sort``: a Blackrock recording in, a result folder out, as one chain of steps, each in its
own module and each timed in run.json's "seconds":

    open the source (sources) → read, filter, detect (reader, filtering, detection)
    → embed (features: β-VAE or a baseline) → cluster (clustering) → split, join (splitting)
    → curate (curation) → measure (metrics) → label (quality) → write (output)

``embed`` and ``label_units`` (cluster, then ``refine_units``: split to label) are the steps
after detection; they take a ``spikes.Spikes``, which ``compare`` rebuilds from a result folder."""
from __future__ import annotations

import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .sorting.clustering import cluster_recording
from .config import SortConfig, default_config
from .sorting.curation import curate
from .errors import SpikevaeError
from .sorting.features import make_features
from .io.geometry import check_spacing
from .sorting.metrics import UnitTable, unit_table
from .io.output import check_free_space, default_out, staged_folder, write_json, write_result
from .sorting.parallel import pool_size, torch_threads
from .progress import Reporter
from .sorting.quality import qualify
from .params import MIN_TRAIN_SPIKES, DetectionParams
from .io.reader import file_checksum
from .sources import open_source
from .sorting.spikes import Spikes
from .sorting.splitting import join_units, split_units
from .sorting.train import TrainedModel, cpu_threads, pick_device


@dataclass
class SortResult:
    out: Path
    n_units: int
    counts: dict
    seconds: dict


def embed(extractor, spikes: Spikes, out: np.ndarray, rep: Reporter) -> dict:
    """Fit the feature extractor (unless it comes trained) and write every spike's features."""
    seconds = {}
    t0 = time.perf_counter()
    if not extractor.trained and spikes.n:
        net = getattr(extractor, "cfg", None)
        with rep.bar(f"train {extractor.name}", net.steps if net else 1, unit="step" if net else "fit") as up:
            extractor.fit(spikes, progress=up)
    seconds["train"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if spikes.n:
        with rep.bar(f"encode ({extractor.name})", spikes.n, unit="spikes") as up:
            extractor.transform(spikes, out, progress=up)
    seconds["encode"] = time.perf_counter() - t0
    return seconds


def label_units(spikes: Spikes, features, cfg: SortConfig, rep: Reporter, *, seconds: dict | None = None
                ) -> tuple[np.ndarray, UnitTable, np.ndarray]:
    """Cluster every electrode in ``features``, then ``refine_units``; each step's time into
    ``seconds``. Returns the units, their table and every spike's clustering-space coordinates."""
    seconds = {} if seconds is None else seconds
    n_el = len(np.unique(spikes.electrode)) if spikes.n else 0
    t0 = time.perf_counter()
    with rep.bar("cluster", n_el, unit="electrode") as up:
        unit, space = cluster_recording(features, spikes.electrode, cfg.cluster, cfg.seed, progress=up,
                                        workers=pool_size(cfg.workers, n_el))
    _timed(seconds, "cluster", t0)
    unit, table = refine_units(unit, space, spikes, cfg, rep, seconds=seconds)
    return unit, table, space


def refine_units(unit: np.ndarray, space: np.ndarray, spikes: Spikes, cfg: SortConfig, rep: Reporter, *,
                 seconds: dict | None = None) -> tuple[np.ndarray, UnitTable]:
    """Split look-alikes among clustered ``unit``s, join the pieces of one neuron, curate them,
    measure them and label their quality (``noise`` left unsorted, isolation measured in
    ``space``); each step's time into ``seconds``. Apart from ``label_units`` so that a benchmark
    can start it from known units."""
    seconds = {} if seconds is None else seconds
    n_el = len(np.unique(spikes.electrode)) if spikes.n else 0
    t0 = time.perf_counter()
    if cfg.split.enabled:
        with rep.bar("split", n_el, unit="electrode") as up:
            unit = split_units(unit, spikes, cfg.split, cfg.seed, progress=up, workers=pool_size(cfg.workers, n_el))
    t0 = _timed(seconds, "split", t0)
    if cfg.split.enabled and cfg.split.join_valley <= 1:
        with rep.bar("join", n_el, unit="electrode") as up:
            unit = join_units(unit, spikes, cfg.split, cfg.seed, progress=up, workers=pool_size(cfg.workers, n_el))
    t0 = _timed(seconds, "join", t0)
    unit = curate(unit, spikes, cfg.curation, cfg.detection.dead_time_ms)
    t0 = _timed(seconds, "curate", t0)
    table = unit_table(unit, spikes, cfg.detection.align_sample, cfg.detection.dead_time_ms)
    t0 = _timed(seconds, "measure", t0)
    unit, kept, quality = qualify(unit, spikes, space, table.rows, cfg.quality)
    table = table.subset(kept)
    for row, q in zip(table.rows, quality):
        row.update(q)
    _timed(seconds, "label", t0)
    return unit, table


def _timed(seconds: dict, step: str, since: float) -> float:
    """Record the seconds of ``step`` since ``since``; returns now, the next step's start."""
    now = time.perf_counter()
    seconds[step] = now - since
    return now


def sort(path, config: SortConfig | None = None, out=None, model=None, overwrite: bool = False,
         reporter: Reporter | None = None) -> SortResult:
    """Sort one recording; returns where the result went and what it holds.

    ``path`` is a .nsX or .nev file, or a SpikeInterface ``BaseRecording`` (any format
    SpikeInterface reads, 30 kHz, each channel sorted on its own; ``out`` is then needed
    unless SpikeInterface knows the recording's file). ``model`` is a saved ``model.pt`` to
    embed with instead of training a new one. Without ``config``, ``config.default_config``: a
    .nev takes the defaults of its online filter's band.
    """
    cfg = config or default_config(path)
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
        unit, table, _ = label_units(spikes, features, cfg, rep, seconds=seconds)

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


def _versions() -> dict:
    import neo
    import scipy
    import sklearn
    import torch

    return {"spikevae": __version__, "torch": torch.__version__, "neo": neo.__version__,
            "numpy": np.__version__, "scipy": scipy.__version__, "scikit-learn": sklearn.__version__,
            "python": platform.python_version()}
