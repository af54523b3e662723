"""What ``sort`` reads, behind one interface: a continuous ``.nsX`` or a SpikeInterface
``BaseRecording`` (filtered and detected here), or a ``.nev`` whose waveforms the recording
system already cut (sorted as they are, no filtering). Each is described before any work
(run.json's "input" section) and hands ``sort`` its spikes through ``Source.acquire``."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .config import SortConfig, is_nev
from .sorting.detection import detect, from_waveforms
from .sorting.filtering import BandpassFilter
from .io.geometry import Geometry, recording_geometry
from .io.nev import cut_short_warning, read_nev_spikes
from .io.reader import TICKS_PER_SECOND, file_checksum, open_recording
from .io.si_recording import describe_input, is_si_recording, open_si_recording, probe_positions


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
    if is_nev(path):
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
