"""The β-VAE against PCA on independent ground-truth families: the package's simulator
(``spikevae.simulators.simulation``), one built from SpikeInterface's generators (``spikevae.simulators.simulate_si``)
and, named with ``--families mearec``, one of MEArec's biophysical cells (``simulate_mearec.py``), on which
nothing is tuned.

Defaults are tuned on one family and seeds and reported on the other family and fresh seeds;
this script scores each, so a gain that holds on one family alone shows. All draw each spike
at its exact time between two samples, as a real recording samples it. Each recording
(family × setting × seed, 96 electrodes × 60 s by default) is detected once per band and
detection setting; then every variant in --features sees the same waveforms and the same
clustering, split and curation as ``spikevae sort`` (``pipeline.embed`` and
``pipeline.label_units``), once per --sort-seeds. A variant changes any default of the sort,
so this is also the tool that tunes them. Prints a table and writes JSON.

    python benchmarks/heldout.py --seeds 202 203 304 305 406 407 508 509 610 611 712 713 \
        --settings standard hard --no-ceiling  # held out
    python benchmarks/heldout.py --families spikevae --seeds 101 \
        --features vae vae+steps=180 vae+detection.threshold=4.5 vae+cluster.merge_overlap=1  # tuning
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np

from spikevae.config import SortConfig
from spikevae.sorting.clustering import cluster_recording
from spikevae.sorting.detection import detect
from spikevae.sorting.features import make_features
from spikevae.sorting.filtering import BandpassFilter
from spikevae.simulators.groundtruth import MATCH_SCORE, GroundTruth, match_counts, score
from spikevae.pipeline import embed, label_units, refine_units
from spikevae.progress import Reporter
from spikevae.io.reader import open_recording
from spikevae.sorting.spikes import Spikes
from spikevae.sorting.train import pick_device

from ceiling import NOISE, ceiling, spike_truth, truth_started_units
from harness import add_recording_options, bands, recordings, variant, write_json


def sort_features(spikes: Spikes, cfg: SortConfig, rep: Reporter, embedded: dict
                  ) -> tuple[np.ndarray, list[str], dict, np.ndarray, np.ndarray]:
    """Unit of every detected spike with ``cfg.features``, each unit's quality label, seconds of
    training and clustering, the features and the clustering space. Features are made once per
    feature setting and kept in ``embedded``, so variants of the later steps share them."""
    key = (cfg.features, repr(cfg.vae), cfg.pca_components, cfg.seed)
    if key not in embedded:
        extractor = make_features(cfg.features, cfg.vae, pick_device(cfg.device), cfg.seed, cfg.pca_components)
        features = np.zeros((spikes.n, extractor.dim), np.float32)
        embedded[key] = features, embed(extractor, spikes, features, rep)
    features, seconds = embedded[key]
    seconds = dict(seconds)
    unit, table, space = label_units(spikes, features, cfg, rep, seconds=seconds)
    return unit, [r["quality"] for r in table.rows], seconds, features, space


def sorted_from_truth(spikes: Spikes, features: np.ndarray, space: np.ndarray, el: np.ndarray, truth: np.ndarray,
                      cfg: SortConfig, gt: GroundTruth, rep: Reporter) -> dict:
    """Well-detected units of the sort's later steps after a mixture started from the true units
    (``from_truth``), and of the whole sort without the detected events that are no true unit's
    (``without_non_unit``; isolation still measured against them in ``space``)."""
    ts = spikes.timestamp
    start = truth_started_units(space, el, truth, cfg.cluster.min_spikes)
    out = {"from_truth": score(gt, ts, refine_units(start, space, spikes, cfg, rep)[0]).well_detected}
    keep = np.flatnonzero(truth != NOISE)
    start = np.full(spikes.n, -1, np.int64)
    start[keep] = cluster_recording(features[keep], spikes.electrode[keep], cfg.cluster, cfg.seed)[0]
    out["without_non_unit"] = score(gt, ts, refine_units(start, space, spikes, cfg, rep)[0]).well_detected
    return out


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
    add_recording_options(ap, name="heldout")
    ap.add_argument("--features", nargs="+", default=["vae", "pca"],
                    help="feature spaces, each with any settings changed: vae+latent_dim=12+steps=180, "
                         "pca+cluster.merge_overlap=0.5, vae+detection.threshold=4.5")
    ap.add_argument("--sort-seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--no-ceiling", dest="ceiling", action="store_false",
                    help="skip each feature space's ceilings (ceiling.py: label-knowing kNN and QDA, and "
                         "the sort started from the true units)")
    args = ap.parse_args()
    rep = Reporter(quiet=True)
    rows = []
    for case in recordings(args):
        rec = open_recording(case.path)
        for band in bands(args):
            base = SortConfig(band_hz=band, device=args.device)
            cfgs = [(spec, sort_seed, variant(base, spec, sort_seed))
                    for spec in args.features for sort_seed in args.sort_seeds]
            detections = []  # detect once per detection setting among the variants
            for _, _, cfg in cfgs:
                if cfg.detection not in detections:
                    detections.append(cfg.detection)
            for detection in detections:
                work = Path(tempfile.mkdtemp(dir=case.work))
                try:
                    found = detect(BandpassFilter(rec, *band, base.filter_order), detection, work)
                    spikes = Spikes.detected(found, rec.electrode_ids,
                                             [(s.start_tick, s.n_samples) for s in rec.segments])
                    ts = found.store.column("timestamp")
                    el = rec.electrode_ids[np.asarray(found.store.column("electrode"))]
                    truth = spike_truth(case.gt, ts, el) if args.ceiling else None
                    embedded = {}
                    for spec, sort_seed, cfg in cfgs:
                        if cfg.detection != detection:
                            continue
                        unit, quality, sec, features, space = sort_features(spikes, cfg, rep, embedded)
                        s = {**score(case.gt, ts, unit).summary(case.gt.unit_snr),
                             **good_units(case.gt, ts, unit, quality)}
                        if args.ceiling:
                            s.update(ceiling(features, el, truth, case.gt, seed=sort_seed))
                            s.update(sorted_from_truth(spikes, features, space, el, truth, cfg, case.gt, rep))
                        rows.append({**case.key, "band_hz": list(band), "features": spec, "sort_seed": sort_seed,
                                     "seconds": {k: round(v, 2) for k, v in sec.items()}, **s})
                        print(f"{case.family:14s} {case.setting:8s} {case.seed:4d} {band[0]:g}-{band[1]:g} Hz "
                              f"{spec:24s} s{sort_seed} true={s['true_units']:3d} well={s['well_detected']:3d} "
                              f"acc={s['mean_accuracy']:.3f} fp={s['false_positive_units']:3d} "
                              f"units={s['sorted_units']:3d} good={s['good_matching']}/{s['good_units']} "
                              + (f"ceiling knn={s['knn']} qda={s['qda']} from-truth={s['from_truth']} "
                                 f"without-non-unit={s['without_non_unit']} " if args.ceiling else "")
                              + f"{sum(sec.values()):6.1f}s", flush=True)
                finally:
                    shutil.rmtree(work, ignore_errors=True)
    write_json(args.json, rows)
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
