"""Accuracy against ground truth: spikevae (VAE and PCA) and peers run through SpikeInterface.

Each simulated recording (each of --settings and --seeds, each band) is sorted by spikevae
with the β-VAE and with PCA features, once per --sort-seeds (how far the counts move with
the network's and the mixtures' initialisation), and by MountainSort5 and Tridesclous2 (when
installed; see peers.py) with one job each. Every sorting is scored by the same code
(SpikeInterface's conventions; tests/test_compare.py checks it against
spikeinterface.comparison). Prints a table and writes JSON.

    python benchmarks/accuracy_peers.py --electrodes 32 --duration 60 --seeds 1 2 --bands 250 750 250 7500
    python benchmarks/accuracy_peers.py --peers --sort-seeds 0 1 2     # spikevae alone, three seeds
"""
from __future__ import annotations

import argparse
import time

from spikevae.config import SortConfig
from spikevae.simulators.groundtruth import score

from harness import add_recording_options, bands, recordings, sort_spikes, variant, write_json
from peers import run_peer


def main():
    ap = argparse.ArgumentParser()
    add_recording_options(ap, families=["spikevae"], seeds=[1, 2], electrodes=32, name="accuracy_peers")
    ap.add_argument("--peers", nargs="*", default=["mountainsort5", "tridesclous2"])
    ap.add_argument("--sort-seeds", type=int, nargs="+", default=[0],
                    help="spikevae sorts each recording once per seed (network and mixture initialisation)")
    args = ap.parse_args()
    import spikeinterface.sorters as ss

    peers = [p for p in args.peers if p in ss.installed_sorters()]
    for p in set(args.peers) - set(peers):
        print(f"{p} is not installed and is left out (pip install -e \".[peers]\")", flush=True)
    rows = []
    for case in recordings(args):
        for band in bands(args):
            runs = {}
            for features in ("vae", "pca"):
                for sort_seed in args.sort_seeds:
                    t0 = time.perf_counter()
                    cfg = variant(SortConfig(band_hz=band, device=args.device), features, sort_seed)
                    sp = sort_spikes(case.path, cfg, case.work)
                    runs[f"spikevae ({features})", sort_seed] = (sp["timestamp"], sp["unit"], time.perf_counter() - t0)
            for peer in peers:
                t0 = time.perf_counter()
                try:
                    ts, un = run_peer(peer, case.path, band, case.work)
                    runs[peer, None] = (ts, un, time.perf_counter() - t0)
                except Exception as exc:  # a peer that fails is reported, not fatal
                    print(f"  {peer} failed: {type(exc).__name__}: {str(exc)[:200]}", flush=True)
            for (name, sort_seed), (ts, un, sec) in runs.items():
                s = score(case.gt, ts, un).summary(case.gt.unit_snr)
                row = {**case.key, "band_hz": list(band), "sorter": name,
                       "sort_seed": sort_seed, "seconds": round(sec, 1), **s}
                rows.append(row)
                label = name if sort_seed is None else f"{name} s{sort_seed}"
                print(f"{case.family} {case.setting:8s} seed {case.seed} {band[0]:g}-{band[1]:g} Hz  {label:22s} "
                      f"true={s['true_units']:3d} well={s['well_detected']:3d} acc={s['mean_accuracy']:.3f} "
                      f"prec={s['mean_precision']:.3f} rec={s['mean_recall']:.3f} "
                      f"fp_units={s['false_positive_units']:3d} {sec:6.1f}s", flush=True)
    write_json(args.json, rows)
    print("well detected over all runs:")
    for name in dict.fromkeys(r["sorter"] for r in rows):
        for sort_seed in dict.fromkeys(r["sort_seed"] for r in rows if r["sorter"] == name):
            total = sum(r["well_detected"] for r in rows if r["sorter"] == name and r["sort_seed"] == sort_seed)
            print(f"  {name}{'' if sort_seed is None else f' (sort seed {sort_seed})'}: {total}")


if __name__ == "__main__":
    main()
