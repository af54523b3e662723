"""Choose the detection, β-VAE and clustering defaults by sorting accuracy on simulated ground truth.

For each recording (setting × seed) and detection threshold, detects once, then for each
variant (trained once per --fit-seeds, which also seed the mixtures) embeds, clusters per
electrode (for each --merge-overlaps), splits look-alikes (for each --split-ratios; 0 = no
split), curates (burst merge, threshold-noise floor, for each --floor-ratios; also scored
without) and scores against the ground truth (SpikeInterface conventions). A per-electrode
PCA(3) baseline runs in the same process on the same waveforms (--pca-whitened: also one on
the waveforms whitened as the β-VAE's input is). Prints a table and writes JSON.

    python benchmarks/tune_defaults.py --electrodes 32 --duration 60 --seeds 1 2 3 --settings standard hard
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
import torch
from sklearn.cluster import HDBSCAN
from sklearn.decomposition import PCA

from spikevae.clustering import ClusterParams, cluster_electrode, principal_space
from spikevae.curation import CurationParams, curate
from spikevae.detection import detect
from spikevae.params import DetectionParams, SplitParams, default_split_ratio, default_threshold
from spikevae.filtering import BandpassFilter
from spikevae.groundtruth import score
from spikevae.model import VAEConfig
from spikevae.reader import open_recording
from spikevae.simulation import SETTINGS, SimulationConfig, simulate
from spikevae.spikes import Spikes
from spikevae.splitting import split_units
from spikevae.train import encode, fit, pick_device
from spikevae.whitening import noise_transforms, to_noise_units

VARIANTS = {
    "default": {},
    "450 steps": dict(steps=450),
    "1000 steps": dict(steps=1000),
    "workshop (latent 2, C 2, lr 1e-2)": dict(latent_dim=2, c_max=2.0, lr=1e-2),
    "latent 4": dict(latent_dim=4),
    "latent 16": dict(latent_dim=16),
    "C_max 5": dict(c_max=5.0),
    "C_max 30": dict(c_max=30.0),
    "beta 5": dict(beta=5.0),
    "90 steps": dict(steps=90),
    "unwhitened": dict(whiten=False),
    "45 steps": dict(steps=45),
    "180 steps": dict(steps=180),
    "plain AE": dict(variational=False, beta=0.0),
    "latent 2, C 2": dict(latent_dim=2, c_max=2.0),
    "latent 2, C 4": dict(latent_dim=2, c_max=4.0),
    "latent 3, C 3": dict(latent_dim=3, c_max=3.0),
    "latent 4, C 4": dict(latent_dim=4, c_max=4.0),
    "latent 4, C 8": dict(latent_dim=4, c_max=8.0),
}


def hdbscan_electrode(features, params, seed=0):
    lab = np.full(len(features), -1)
    if len(features) >= params.min_spikes:
        space = principal_space(features, params.n_dims, seed)
        lab = HDBSCAN(min_cluster_size=params.min_spikes, copy=True).fit(space).labels_
    return lab


def cluster_all(features, electrode, params, seed=0, method="gmm"):
    unit = np.full(len(features), -1, np.int64)
    next_id = 0
    for e in np.unique(electrode):
        idx = np.flatnonzero(electrode == e)
        lab = cluster_electrode(features[idx], params, seed)[0] if method == "gmm" else \
            hdbscan_electrode(features[idx], params, seed)
        unit[idx[lab >= 0]] = lab[lab >= 0] + next_id
        next_id += lab.max(initial=-1) + 1
    return unit


def pca_features(waveforms, electrode, n=3):
    out = np.zeros((len(waveforms), n), np.float32)
    for e in np.unique(electrode):
        idx = np.flatnonzero(electrode == e)
        if len(idx) > n:
            out[idx] = PCA(n).fit_transform(waveforms[idx])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--electrodes", type=int, default=32)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=["standard"])
    ap.add_argument("--thresholds", type=float, nargs="+", help="[default: the band's default_threshold]")
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    ap.add_argument("--min-spikes", type=int, nargs="+", default=[ClusterParams().min_spikes])
    ap.add_argument("--band", type=float, nargs=2, default=(250.0, 750.0))
    ap.add_argument("--recon", action="store_true", help="cluster the decoder's reconstruction of the latent")
    ap.add_argument("--cluster", choices=["gmm", "hdbscan"], default="gmm")
    ap.add_argument("--n-dims", type=int, default=ClusterParams().n_dims)
    ap.add_argument("--merge-overlaps", type=float, nargs="+", default=[ClusterParams().merge_overlap],
                    help="overlap above which mixture components become one unit (1 = no merging)")
    ap.add_argument("--floor-ratios", type=float, nargs="+", default=[CurationParams().floor_ratio],
                    help="curation floors (× threshold) to score, each besides the uncurated clustering")
    ap.add_argument("--split-ratios", type=float, nargs="+",
                    help="min_amplitude_ratio of the look-alike split; 0 = no split [default: the band's]")
    ap.add_argument("--split-covariance", choices=["tied", "full"], default=SplitParams().covariance,
                    help="covariance of the look-alike split's two pieces")
    ap.add_argument("--scale", choices=["noise", "rms"], default="noise",
                    help="per-electrode scale of the network input: noise SD or the waveforms' RMS")
    ap.add_argument("--pca-whitened", action="store_true",
                    help="also score PCA(3) of the waveforms whitened as the β-VAE's input is")
    ap.add_argument("--fit-seeds", type=int, nargs="+", default=[0],
                    help="seeds of the network's training and the mixtures (as `sort --seed`), each run once")
    ap.add_argument("--json", default="benchmarks/out/tune_defaults.json")
    args = ap.parse_args()
    args.split_ratios = args.split_ratios or [default_split_ratio(args.band)]
    device = pick_device("auto")
    rows = []
    for setting in args.settings:
        for seed in args.seeds:
            tmp = Path(tempfile.mkdtemp())
            rec_path = tmp / f"sim{seed}.ns6"
            gt = simulate(rec_path, SimulationConfig(n_electrodes=args.electrodes, duration_s=args.duration, seed=seed,
                                                     **SETTINGS[setting]))
            rec = open_recording(rec_path)
            for threshold in args.thresholds or [default_threshold(args.band)]:
                found = detect(BandpassFilter(rec, *args.band, 4), DetectionParams(threshold=threshold),
                               tmp / f"work{threshold:g}")
                wf = np.asarray(found.store.column("waveform"))
                el = np.asarray(found.store.column("electrode"))
                ts = np.asarray(found.store.column("timestamp"))
                amp = np.asarray(found.store.column("amplitude"))
                noise = found.noise
                spikes = Spikes(ts, el, amp, wf, rec.electrode_ids, found.noise, found.threshold_uv,
                                [(s.start_tick, s.n_samples) for s in rec.segments])
                if args.scale == "rms":
                    noise = dataclasses.replace(noise, noise_uv=np.array(
                        [np.sqrt(np.mean(wf[el == c] ** 2)) if (el == c).any() else 1.0
                         for c in range(len(noise.noise_uv))]))
                print(f"{setting} seed {seed}, threshold {threshold:g}: {len(gt.unit_electrode)} true units "
                      f"({(gt.unit_snr >= 5).sum()} with SNR ≥ 5), {len(wf)} spikes", flush=True)

                def record(name, feats, seconds, ms, fit_seed):
                    for mo in args.merge_overlaps:
                        params = dataclasses.replace(ClusterParams(), min_spikes=ms, n_dims=args.n_dims,
                                                     merge_overlap=mo)
                        clustered = cluster_all(feats, el, params, fit_seed, method=args.cluster)
                        split = {r: split_units(clustered, spikes,
                                                SplitParams(min_amplitude_ratio=r, covariance=args.split_covariance,
                                                            enabled=r > 0), fit_seed)
                                 for r in {0, *args.split_ratios}}
                        combos = [(r, f) for r in args.split_ratios for f in args.floor_ratios]
                        for ratio, floor in [(0, None)] + combos:
                            curated = floor is not None
                            raw = split[ratio]
                            unit = curate(raw, spikes, CurationParams(floor_ratio=floor)) if curated else raw
                            s = score(gt, ts, unit)
                            row = {"setting": setting, "seed": seed, "band_hz": list(args.band),
                                   "threshold": threshold, "variant": name, "curated": curated, "floor_ratio": floor,
                                   "split_ratio": ratio, "split_covariance": args.split_covariance,
                                   "fit_seed": fit_seed,
                                   "min_spikes": ms, "merge_overlap": mo, "seconds": round(seconds, 1),
                                   **s.summary(gt.unit_snr)}
                            rows.append(row)
                            how = f"split {ratio:<4g} floor {floor:<4g}" if curated else "raw"
                            print(f"  {name:34s} s{fit_seed} {how:21s} ms={ms:<3d} overlap={mo:<4g} "
                                  f"well={row['well_detected']:3d}/{row['true_units']}  "
                                  f"acc={row['mean_accuracy']:.3f}  "
                                  f"well(snr≥5)={row['well_detected_snr_ge_5']}/{row['true_units_snr_ge_5']}  "
                                  f"units={row['sorted_units']}  fp_units={row['false_positive_units']}  "
                                  f"{seconds:.0f}s", flush=True)

                t0 = time.perf_counter()
                pf = pca_features(wf, el)
                pca_s = time.perf_counter() - t0
                pwf = None
                if args.pca_whitened:
                    white = noise_transforms(noise.noise_uv, noise.autocorr, wf.shape[1])
                    pwf = pca_features(to_noise_units(wf, el, white), el)
                for fit_seed in args.fit_seeds:
                    for ms in args.min_spikes:
                        record("PCA(3) per electrode", pf, pca_s, ms, fit_seed)
                        if pwf is not None:
                            record("PCA(3) of whitened waveforms", pwf, pca_s, ms, fit_seed)
                    for name in args.variants:
                        cfg = dataclasses.replace(VAEConfig(), **VARIANTS[name])
                        t0 = time.perf_counter()
                        model = fit(wf, el, noise, cfg, device, seed=fit_seed)
                        lat = encode(model, wf, el, noise, np.zeros((len(wf), cfg.latent_dim), np.float32))
                        if args.recon:
                            with torch.no_grad():
                                lat = model.net.decoder(torch.as_tensor(lat)).numpy()
                        for ms in args.min_spikes:
                            record(name, lat, time.perf_counter() - t0, ms, fit_seed)
            shutil.rmtree(tmp, ignore_errors=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
