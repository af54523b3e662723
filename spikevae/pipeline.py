"""``sort``: a Blackrock recording in, a result folder out. Each step lives in its own module:
reader → filtering → detection → train (β-VAE features) → clustering → output."""
from __future__ import annotations

import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .clustering import UNSORTED, cluster_electrode
from .config import SortConfig
from .detection import detect
from .errors import SpikevaeError
from .filtering import BandpassFilter
from .metrics import isi_violation_fraction, waveform_stats
from .output import default_out, staged_folder, write_json, write_units_csv
from .progress import Reporter
from .reader import TICKS_PER_SECOND, open_recording
from .train import TrainedModel, encode, fit, pick_device

MIN_TRAIN_SPIKES = 200


@dataclass
class SortResult:
    out: Path
    n_units: int
    counts: dict
    seconds: dict


def sort(path, config: SortConfig | None = None, out=None, model=None, overwrite: bool = False,
         reporter: Reporter | None = None) -> SortResult:
    """Sort one recording; returns where the result went and what it holds.

    ``model`` is a saved ``model.pt`` to embed with instead of training a new one.
    """
    cfg = config or SortConfig()
    rep = reporter or Reporter(quiet=True)
    det = cfg.detection
    device = pick_device(cfg.device)
    rec = open_recording(path, cfg.channels, cfg.gap_tolerance_ms)
    out = Path(out) if out is not None else default_out(rec.path)
    trained = TrainedModel.load(model, device) if model is not None else None
    if trained is not None and trained.net.cfg.n_samples != det.n_samples:
        raise SpikevaeError(f"--model {model}: trained on {trained.net.cfg.n_samples}-sample waveforms, "
                            f"this sort cuts {det.n_samples}")
    filt = BandpassFilter(rec, *cfg.band_hz, cfg.filter_order)
    seconds: dict[str, float] = {}
    with staged_folder(out, overwrite) as tmp:
        rep.info(f"{rec.path.name}: {rec.n_channels} electrodes, {rec.duration_s:.1f} s in "
                 f"{len(rec.segments)} segment(s), NSx {rec.file_spec}")
        t0 = time.perf_counter()
        try:
            with rep.bar("read+filter+detect", rec.duration_s, unit="s", scale=1 / TICKS_PER_SECOND) as up:
                found = detect(filt, det, tmp / "work", progress=up)
        finally:
            filt.close()
        seconds["read_filter_detect"] = time.perf_counter() - t0
        for ch, why in found.noise.skipped.items():
            rep.warn(f"electrode {rec.electrode_ids[ch]} skipped: {why}")
        store = found.store
        n = store.n
        if n == 0:
            rep.warn("no spikes were detected; the result is empty")
        elif trained is None and n < MIN_TRAIN_SPIKES:
            raise SpikevaeError(f"{rec.path}: only {n} spikes detected, too few to train the β-VAE "
                                f"(need {MIN_TRAIN_SPIKES}); record longer or pass --model")
        waveforms, electrode = store.column("waveform"), store.column("electrode")
        noise = found.noise.noise_uv

        t0 = time.perf_counter()
        if trained is None and n > 0:
            with rep.bar("train β-VAE", cfg.vae.epochs, unit="epoch") as up:
                trained = fit(waveforms, electrode, noise, cfg.vae, device, cfg.seed, progress=up)
        seconds["train"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        latent_dim = trained.net.cfg.latent_dim if trained is not None else cfg.vae.latent_dim
        latent = store.create("latent", np.float32, (latent_dim,))
        if n > 0:
            with rep.bar("encode", n, unit="spikes") as up:
                encode(trained, waveforms, electrode, noise, latent, progress=up)
        seconds["encode"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        unit = store.create("unit", np.int64)
        if n > 0:
            unit[:] = UNSORTED
        rows, means, sds, unit_el = [], [], [], []
        timestamps, amplitude = store.column("timestamp"), store.column("amplitude")
        present = np.unique(electrode) if n else []
        with rep.bar("cluster", len(present), unit="electrode") as up:
            for e in present:
                idx = np.flatnonzero(electrode == e)
                local = cluster_electrode(np.asarray(latent[idx]), cfg.cluster, cfg.seed)
                for k in range(local.max(initial=-1) + 1):
                    members = idx[local == k]
                    gid = len(rows)
                    unit[members] = gid
                    mean, sd, peak = waveform_stats(waveforms[members], det.align_sample)
                    ts = np.asarray(timestamps[members])
                    rows.append({"unit": gid, "electrode_id": int(rec.electrode_ids[e]),
                                 "n_spikes": len(members),
                                 "firing_rate_hz": len(members) / rec.duration_s,
                                 "amplitude_uv": float(np.median(np.abs(amplitude[members]))),
                                 "snr": abs(peak) / float(noise[e]),
                                 "isi_violation_fraction": isi_violation_fraction(ts)})
                    means.append(mean)
                    sds.append(sd)
                    unit_el.append(int(rec.electrode_ids[e]))
                up(1)
        seconds["cluster"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        electrode_id = store.create("electrode_id", np.int32)
        time_s = store.create("time_s", np.float64)
        for i in range(0, n, 1 << 20):
            sl = slice(i, i + (1 << 20))
            electrode_id[sl] = rec.electrode_ids[np.asarray(electrode[sl])]
            time_s[sl] = timestamps[sl] / TICKS_PER_SECOND
        np.savez(tmp / "spikes.npz", timestamp=timestamps, time_s=time_s, electrode_id=electrode_id,
                 unit=unit, amplitude_uv=amplitude, latent=latent)
        n_samples = det.n_samples
        np.savez(tmp / "waveforms.npz", unit=np.arange(len(rows)), electrode_id=np.array(unit_el, np.int32),
                 mean=np.array(means).reshape(-1, n_samples), sd=np.array(sds).reshape(-1, n_samples),
                 align_sample=det.align_sample)
        write_units_csv(tmp / "units.csv", rows)
        if trained is not None:
            trained.save(tmp / "model.pt")
        seconds["write"] = time.perf_counter() - t0
        counts = dict(found.counts, sorted=int((np.asarray(unit) >= 0).sum()) if n else 0,
                      unsorted=int((np.asarray(unit) < 0).sum()) if n else 0, units=len(rows))
        del waveforms, electrode, latent, unit, timestamps, amplitude, electrode_id, time_s
        shutil.rmtree(tmp / "work", ignore_errors=True)
        write_json(tmp / "run.json", {
            "spikevae_version": __version__, "versions": _versions(),
            "input": {"path": str(rec.path.resolve()), "name": rec.path.name, "bytes": rec.path.stat().st_size,
                      "file_spec": rec.file_spec, "electrodes": rec.electrode_ids,
                      "segments": [{"start_tick": s.start_tick, "n_samples": s.n_samples} for s in rec.segments],
                      "duration_s": rec.duration_s},
            "config": cfg.to_dict(), "model": str(model) if model is not None else "trained",
            "device": str(device), "platform": platform.platform(),
            "noise_uv": dict(zip(rec.electrode_ids.tolist(), noise.round(3).tolist())),
            "skipped_electrodes": {int(rec.electrode_ids[c]): w for c, w in found.noise.skipped.items()},
            "seconds": seconds, "counts": counts,
            "training_history": trained.history if trained is not None else {},
        })
    rep.info(f"{counts['units']} units, {counts['sorted']} of {counts['kept']} spikes sorted "
             f"({counts['rejected_common_mode']} common-mode and {counts['rejected_amplitude']} "
             f"too-large events rejected) → {out}")
    return SortResult(out=out, n_units=len(rows), counts=counts, seconds=seconds)


def _versions() -> dict:
    import neo
    import scipy
    import sklearn
    import torch

    return {"spikevae": __version__, "torch": torch.__version__, "neo": neo.__version__,
            "numpy": np.__version__, "scipy": scipy.__version__, "scikit-learn": sklearn.__version__,
            "python": platform.python_version()}
