"""Tracking units across sessions against the classic practice, on simulated chronic series.

Each series (``spikevae.simulators.chronic``: the same neurons over --sessions sessions of --electrodes
electrodes, with amplitude drift, slow shape change, rate change, turnover and look-alike
newcomers) is sorted as ``spikevae batch`` sorts it (one shared β-VAE) and cached. Then:

- ``--fit`` fits the logistic model's weights (``params.TRACK_WEIGHTS``, and without the
  latent ``TRACK_WAVEFORM_WEIGHTS``) on the candidate pairs of the series given, and the
  baseline's correlation threshold (best F1), and prints them;
- otherwise it scores ``tracking.match`` with the package's weights, matching on the
  waveform-only weights, and the baseline (mean-waveform correlation alone, same Hungarian
  matching, threshold --baseline-threshold): pairwise precision and recall over the units
  well detected (accuracy ≥ 0.8) in both sessions, over all pairs of sessions and over
  consecutive ones, and how often a track holds two units of one session (never, by
  construction), and the time and peak memory of tracking alone.

    python benchmarks/tracking.py --fit --family spikevae --seeds 1            # tuning
    python benchmarks/tracking.py --family spikeinterface --seeds 2            # held out
"""
from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from spikevae.simulators.chronic import load_series
from spikevae.config import SortConfig
from spikevae.simulators.groundtruth import WELL_DETECTED, GroundTruth, ground_truth_path, score
from spikevae.io.output import load_result
from spikevae.params import TrackParams
from spikevae.sessions import batch
from spikevae.tracking.track import FEATURES, distances, match, probability, summarise, waveform_correlation

from harness import OUT, SETTINGS, series, write_json


def series_folder(family: str, seed: int, args) -> Path:
    """The simulated series (harness.series) and its batch sort, made once and cached."""
    folder = series(family, seed, args.sessions, args.electrodes, args.duration, args.cache, args.setting)
    sorted_ = folder / "sorted"
    if not (sorted_ / "sessions.csv").exists():
        batch(sorted(folder.glob("day*.ns6")), sorted_, SortConfig(band_hz=tuple(args.band)))
    return folder


def truth_of(folder: Path) -> list[dict[int, int]]:
    """Per session: sorted unit id → true neuron, for the units that sort a neuron well."""
    info = load_series(folder)
    out = []
    for s in info["sessions"]:
        rec = folder / s["recording"]
        gt = GroundTruth.load(ground_truth_path(rec))
        spikes = load_result(folder / "sorted" / f"{rec.stem}.spikevae")["spikes"]
        sc = score(gt, spikes["timestamp"], spikes["unit"])
        out.append({int(sc.matched_unit[k]): int(s["neurons"][k]) for k in range(len(sc.accuracy))
                    if sc.accuracy[k] >= WELL_DETECTED})
    return out


def candidate_pairs(sessions, truth, max_gap: int):
    """Distances and labels of every same-electrode pair of well-detected units at most
    ``max_gap`` sessions apart."""
    x, y = [], []
    for s, a in enumerate(sessions):
        for t in range(s + 1, min(s + max_gap, len(sessions) - 1) + 1):
            b = sessions[t]
            for i in range(len(a)):
                j = np.flatnonzero(b.electrode == a.electrode[i])
                na = truth[s].get(int(a.unit[i]))
                nb = [truth[t].get(int(b.unit[k])) for k in j]
                keep = np.array([na is not None and n is not None for n in nb], bool)
                if not keep.any():
                    continue
                j = j[keep]
                x.append(distances(a, np.full(len(j), i), b, j, np.full(len(j), t - s)))
                y += [na == n for n in np.array(nb, dtype=object)[keep]]
    return np.concatenate(x), np.array(y, bool)


def pair_scores(tracks, truth) -> dict:
    """Pairwise precision / recall over units well detected in both sessions, all pairs and
    consecutive sessions, and tracks holding two units of one session."""
    rows = [(s, int(tracks.track[s][k]), truth[s][int(u)])
            for s, sess in enumerate(tracks.sessions) for k, u in enumerate(sess.unit) if int(u) in truth[s]]
    s_, tr, ne = (np.array(v) for v in zip(*rows))
    out = {}
    for name, ok in (("all", lambda d: d > 0), ("consecutive", lambda d: d == 1)):
        d = s_[None, :] - s_[:, None]
        sel = ok(d)
        same_n, same_t = (ne[:, None] == ne[None, :]) & sel, (tr[:, None] == tr[None, :]) & sel
        tp = (same_n & same_t).sum()
        out[name] = {"precision": float(tp / max(same_t.sum(), 1)), "recall": float(tp / max(same_n.sum(), 1)),
                     "true_pairs": int(same_n.sum()), "linked_pairs": int(same_t.sum())}
    placed = [(int(t), s) for s, tt in enumerate(tracks.track) for t in tt]
    out["units_sharing_a_session_in_a_track"] = len(placed) - len(set(placed))
    return out


def scale(args) -> None:
    """Track N copies of the series' sessions end to end (read, match, write), each N in a fresh
    process so that its peak memory is its own."""
    import os
    import subprocess
    import sys

    results = sorted((series_folder(args.family, args.seeds[0], args) / "sorted").glob("day*.spikevae"))
    rows = []
    for n in args.scale:
        copies = args.cache / f"scale-{n}"
        if not copies.exists():
            for k in range(n):
                dst = copies / f"s{k:04d}.spikevae"
                dst.mkdir(parents=True)
                for f in results[k % len(results)].iterdir():
                    if f.is_file():
                        os.link(f, dst / f.name)
        code = ("import resource, time, sys, spikevae; from pathlib import Path; t = time.perf_counter(); "
                f"tr = spikevae.track(sorted(Path({str(copies)!r}).glob('s*.spikevae')), {str(copies / 'tracks')!r}, "
                "overwrite=True); print(time.perf_counter() - t, "
                "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3, tr.n_tracks)")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
        rows.append({"sessions": n, "seconds": round(float(out[0]), 2), "peak_rss_mb": round(float(out[1])),
                     "tracks": int(out[2])})
        print(f"{n:4d} sessions × {args.electrodes} electrodes: tracked in {float(out[0]):.1f} s, peak RSS "
              f"{float(out[1]):.0f} MB, {out[2]} tracks", flush=True)
    write_json(args.json.with_name("tracking-scale.json"), rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--family", choices=["spikevae", "spikeinterface"], default="spikeinterface")
    ap.add_argument("--seeds", type=int, nargs="+", default=[2])
    ap.add_argument("--setting", choices=SETTINGS, default="standard",
                    help="the neurons' setting (simulation.SETTINGS): stress adds same-electrode neighbours of "
                         "similar amplitude, slow units, bursts and dense hash")
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--electrodes", type=int, default=96)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--band", type=float, nargs=2, default=[250, 750])
    ap.add_argument("--fit", action="store_true", help="fit the model's weights and the baseline's threshold")
    ap.add_argument("--baseline-threshold", type=float, default=0.995,
                    help="the least mean-waveform correlation of a link [default: best F1 on spikevae seed 1]")
    ap.add_argument("--scale", type=int, nargs="+",
                    help="instead: time `spikevae.track` over this many sessions (the series' results repeated, "
                         "each as its own folder), each count in a fresh process, with its peak memory")
    ap.add_argument("--cache", type=Path, default=OUT / "tracking")
    ap.add_argument("--json", type=Path, default=OUT / "tracking.json")
    args = ap.parse_args()
    p = TrackParams()
    if args.scale:
        return scale(args)
    rows = []
    fit_x, fit_y = [], []
    for seed in args.seeds:
        folder = series_folder(args.family, seed, args)
        truth = truth_of(folder)
        results = sorted((folder / "sorted").glob("day*.spikevae"))
        t0, m0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        sessions = [summarise(r) for r in results]
        t_read = time.perf_counter() - t0
        if args.fit:
            x, y = candidate_pairs(sessions, truth, p.max_gap)
            fit_x.append(x)
            fit_y.append(y)
            continue
        x, y = candidate_pairs(sessions, truth, p.max_gap)
        prob = probability(x, p.weights)
        bins = [(0.0, 0.5), (0.5, 0.9), (0.9, 0.99), (0.99, 1.0)]
        calib = [{"predicted": [lo, hi], "pairs": int(((prob >= lo) & (prob < hi + (hi == 1))).sum()),
                  "one_neuron": round(float(y[(prob >= lo) & (prob < hi + (hi == 1))].mean()), 3)
                  if ((prob >= lo) & (prob < hi + (hi == 1))).any() else None} for lo, hi in bins]
        print(f"{args.family} {seed} calibration over {len(y)} candidate pairs (predicted → share of one neuron): "
              + ", ".join(f"{c['predicted'][0]:g}-{c['predicted'][1]:g}: {c['one_neuron']} of {c['pairs']}"
                          for c in calib) + f"; Brier {np.mean((prob - y) ** 2):.4f}")
        rows.append({"family": args.family, "seed": seed, "calibration": calib,
                     "brier": float(np.mean((prob - y) ** 2))})
        for name, kw in (("spikevae", {}), ("spikevae, waveforms only", {"waveforms_only": True}),
                         ("baseline: waveform correlation",
                          {"scorer": lambda a, i, b, j, gap: waveform_correlation(a, i, b, j),
                           "params": TrackParams(min_probability=args.baseline_threshold, max_gap=p.max_gap)})):
            t0 = time.perf_counter()
            tracks = match(sessions, kw.pop("params", p), **kw)
            sec = time.perf_counter() - t0
            sc = pair_scores(tracks, truth)
            rows.append({"family": args.family, "seed": seed, "method": name, "seconds_match": round(sec, 3),
                         "seconds_read": round(t_read, 2), **sc})
            print(f"{args.family} {seed} {name:32s} all pairs P={sc['all']['precision']:.3f} "
                  f"R={sc['all']['recall']:.3f} ({sc['all']['true_pairs']} true) · consecutive "
                  f"P={sc['consecutive']['precision']:.3f} R={sc['consecutive']['recall']:.3f} · doubled "
                  f"{sc['units_sharing_a_session_in_a_track']} · match {sec:.2f} s (read {t_read:.1f} s, "
                  f"peak RSS +{(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - m0) / 1e3:.0f} MB)", flush=True)
    if args.fit:
        x, y = np.concatenate(fit_x), np.concatenate(fit_y)
        print(f"{len(y)} candidate pairs, {y.sum()} of one neuron")
        for name, cols in (("TRACK_WEIGHTS", list(range(len(FEATURES)))),
                           ("TRACK_WAVEFORM_WEIGHTS", [k for k, f in enumerate(FEATURES) if f != "latent"])):
            # fitted on standardised distances (so that one ridge weighs each alike), given back in raw units
            mu, sd = x[:, cols].mean(axis=0), x[:, cols].std(axis=0) + 1e-12
            lr = LogisticRegression(C=1.0, max_iter=2000).fit((x[:, cols] - mu) / sd, y)
            coef = lr.coef_[0] / sd
            w = {"intercept": round(float(lr.intercept_[0] - (coef * mu).sum()), 3),
                 **{FEATURES[c]: round(float(v), 3) for c, v in zip(cols, coef)}}
            print(f"{name} = {w}")
        corr = 1 - x[:, 1]
        best = max(((2 * ((corr >= t) & y).sum() / max((corr >= t).sum() + y.sum(), 1)), t)
                   for t in np.arange(0.80, 0.996, 0.005))
        print(f"baseline threshold (best F1 {best[0]:.3f} over candidate pairs): {best[1]:.3f}")
        return
    write_json(args.json, rows)


if __name__ == "__main__":
    main()
