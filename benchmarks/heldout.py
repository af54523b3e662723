"""The β-VAE against PCA on two independent ground-truth families: the package's simulator
(``spikevae.simulation``) and one built from SpikeInterface's generators (``spikevae.simulate_si``).

Defaults are tuned on one family and seeds and reported on the other family and fresh seeds;
this script scores both, so a gain that holds on one family alone shows. Both draw each spike
at its exact time between two samples, as a real recording samples it. Each recording
(family × setting × seed, 96 electrodes × 60 s by default) is detected once per band; then
every feature space in --features sees the same waveforms and the same clustering, split and
curation as ``spikevae sort`` (``pipeline.embed`` and ``pipeline.label_units``), once per
--sort-seeds. Recordings are cached in --cache. Prints a table and writes JSON.

    python benchmarks/heldout.py --seeds 202 203                    # the held-out report
    python benchmarks/heldout.py --families spikevae --seeds 101 --features vae vae+steps=180  # tuning
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from spikevae.config import SortConfig
from spikevae.detection import detect
from spikevae.features import make_features
from spikevae.filtering import BandpassFilter
from spikevae.groundtruth import MATCH_SCORE, GroundTruth, ground_truth_path, match_counts, score
from spikevae.pipeline import embed, label_units
from spikevae.progress import Reporter
from spikevae.reader import open_recording
from spikevae.spikes import Spikes
from spikevae.train import pick_device

FAMILIES = ("spikevae", "spikeinterface")


def recording(family: str, setting: str, seed: int, electrodes: int, duration: float, cache: Path) -> Path:
    """The cached recording's path, simulated first when missing."""
    path = cache / f"{family}-{setting}-{seed}-{electrodes}el-{duration:g}s-v1.ns6"
    if path.exists() and ground_truth_path(path).exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    if family == "spikevae":
        from spikevae.simulation import SETTINGS, SimulationConfig, simulate

        simulate(path, SimulationConfig(n_electrodes=electrodes, duration_s=duration, seed=seed, subsample_timing=True,
                                        **SETTINGS[setting]))
    else:
        from spikevae.simulate_si import SETTINGS, SIUtahConfig, simulate_si

        simulate_si(path, SIUtahConfig(n_electrodes=electrodes, duration_s=duration, seed=seed, **SETTINGS[setting]))
    return path


def variant(base: SortConfig, spec: str, seed: int) -> SortConfig:
    """``vae``, ``pca``, ... with changed settings of the network or of another section of
    ``SortConfig``: ``vae+latent_dim=12+steps=180``, ``pca+quality.noise_l_ratio=inf``."""
    name, *changes = spec.split("+")
    cfg = dataclasses.replace(base, features=name, seed=seed)
    for change in changes:
        key, value = change.split("=")
        section, key = key.split(".") if "." in key else ("vae", key)
        old = getattr(cfg, section)
        kind = type(getattr(old, key))
        new = value.lower() in ("1", "true") if kind is bool else kind(value)
        cfg = dataclasses.replace(cfg, **{section: dataclasses.replace(old, **{key: new})})
    return cfg


def sort_features(found, rec, cfg: SortConfig, rep: Reporter) -> tuple[np.ndarray, list[str], dict]:
    """Unit of every detected spike with ``cfg.features``, each unit's quality label, and
    seconds of training and clustering."""
    spikes = Spikes.detected(found, rec.electrode_ids, [(s.start_tick, s.n_samples) for s in rec.segments])
    extractor = make_features(cfg.features, cfg.vae, pick_device(cfg.device), cfg.seed, cfg.pca_components)
    features = np.zeros((spikes.n, extractor.dim), np.float32)
    seconds = embed(extractor, spikes, features, rep)
    t0 = time.perf_counter()
    unit, table = label_units(spikes, features, cfg, rep)
    seconds["cluster"] = time.perf_counter() - t0
    return unit, [r["quality"] for r in table.rows], seconds


def good_units(gt: GroundTruth, timestamps: np.ndarray, unit: np.ndarray, quality: list[str]) -> dict:
    """How many units are labelled good, and how many of those match a true unit (agreement
    ≥ 0.5 with one, paired or not)."""
    keep = unit >= 0
    ids, n_sorted = np.unique(unit[keep], return_counts=True)
    n_true = np.bincount(gt.unit, minlength=len(gt.unit_electrode))
    m = match_counts(gt.timestamp, gt.unit, len(n_true), np.asarray(timestamps)[keep], unit[keep], ids)
    best = (m / np.maximum(n_true[:, None] + n_sorted[None, :] - m, 1)).max(axis=0, initial=0)
    good = np.array([quality[u] == "good" for u in ids], bool)
    return {"good_units": int(good.sum()), "good_matching": int((good & (best >= MATCH_SCORE)).sum())}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    ap.add_argument("--settings", nargs="+", choices=["standard", "hard"], default=["standard", "hard"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[101])
    ap.add_argument("--electrodes", type=int, default=96)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--bands", type=float, nargs="+", default=[250, 750, 250, 7500], help="pairs of band edges in Hz")
    ap.add_argument("--features", nargs="+", default=["vae", "pca"],
                    help="feature spaces; a network's settings can be changed: vae+latent_dim=12+steps=180")
    ap.add_argument("--sort-seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--cache", type=Path, default=Path("benchmarks/out/recordings"))
    ap.add_argument("--json", type=Path, default=Path("benchmarks/out/heldout.json"))
    args = ap.parse_args()
    rep = Reporter(quiet=True)
    rows = []
    for family in args.families:
        for setting in args.settings:
            for seed in args.seeds:
                path = recording(family, setting, seed, args.electrodes, args.duration, args.cache)
                gt = GroundTruth.load(ground_truth_path(path))
                rec = open_recording(path)
                for band in zip(args.bands[::2], args.bands[1::2]):
                    base = SortConfig(band_hz=band, device=args.device)
                    work = Path(tempfile.mkdtemp())
                    try:
                        found = detect(BandpassFilter(rec, *band, base.filter_order), base.detection, work)
                        for features in args.features:
                            for sort_seed in args.sort_seeds:
                                cfg = variant(base, features, sort_seed)
                                unit, quality, sec = sort_features(found, rec, cfg, rep)
                                ts = found.store.column("timestamp")
                                s = {**score(gt, ts, unit).summary(gt.unit_snr), **good_units(gt, ts, unit, quality)}
                                row = {"family": family, "setting": setting, "seed": seed, "band_hz": list(band),
                                       "features": features, "sort_seed": sort_seed,
                                       "seconds": {k: round(v, 2) for k, v in sec.items()}, **s}
                                rows.append(row)
                                print(f"{family:14s} {setting:8s} {seed:4d} {band[0]:g}-{band[1]:g} Hz {features:24s} "
                                      f"s{sort_seed} true={s['true_units']:3d} well={s['well_detected']:3d} "
                                      f"acc={s['mean_accuracy']:.3f} fp={s['false_positive_units']:3d} "
                                      f"units={s['sorted_units']:3d} good={s['good_matching']}/{s['good_units']} "
                                      f"{sum(sec.values()):6.1f}s", flush=True)
                    finally:
                        shutil.rmtree(work, ignore_errors=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=1))
    print("\nwell detected / mean accuracy / false-positive units of all units / good units matching a true "
          "unit, summed (accuracy averaged) over settings, seeds and sort seeds:")
    for family in args.families:
        for band in dict.fromkeys(tuple(r["band_hz"]) for r in rows if r["family"] == family):
            for features in args.features:
                sel = [r for r in rows if r["family"] == family and tuple(r["band_hz"]) == band
                       and r["features"] == features]
                n = len(args.sort_seeds)
                print(f"  {family:14s} {band[0]:g}-{band[1]:g} Hz {features:24s} "
                      f"{sum(r['well_detected'] for r in sel) / n:6.1f} / "
                      f"{np.mean([r['mean_accuracy'] for r in sel]):.3f} / "
                      f"{sum(r['false_positive_units'] for r in sel) / n:5.1f} of "
                      f"{sum(r['sorted_units'] for r in sel) / n:5.1f} / "
                      f"{sum(r['good_matching'] for r in sel) / n:5.1f} of {sum(r['good_units'] for r in sel) / n:5.1f}")


if __name__ == "__main__":
    main()
