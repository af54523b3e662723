"""Sorting a `.nev`: the waveforms a recording system cut online, scored against ground truth.

Each simulated recording (each of --settings and --seeds) is cut as Blackrock's Central cuts
spikes online (``simulate.cut_online``: causal 250 Hz – 5 kHz band-pass, −4.5 × noise, 48
samples from 10 before the crossing) and the `.nev` is sorted by spikevae with the β-VAE and
with PCA features. The anchor in the same run is the same recording's `.ns6` sorted in the
same band, so the table shows what sorting the online cut costs against the continuous data
(--bands is not used: both are sorted in the online cut's band). Prints a table and writes
JSON.

    python benchmarks/accuracy_nev.py --seeds 1 2
"""
from __future__ import annotations

import argparse
import time

import spikevae
from spikevae.simulators.groundtruth import score
from spikevae.simulators.simulation import cut_online

from harness import add_recording_options, recordings, write_json

BAND = (250.0, 5000.0)  # the band of Central's online cut; the .ns6 anchor is sorted in it too


def main():
    ap = argparse.ArgumentParser()
    add_recording_options(ap, families=["spikevae"], seeds=[1, 2], electrodes=32, name="accuracy_nev")
    args = ap.parse_args()
    rows = []
    print(f"{'recording':<11} {'input':<5} {'features':<8} {'gt':>3} {'units':>5} {'well':>4} {'mean acc':>8} "
          f"{'fp units':>8} {'s':>6}", flush=True)
    for case in recordings(args):
        nev = case.work / f"{case.path.stem}.nev"
        n_cut = cut_online(case.path, nev)
        for source in (nev, case.path):
            for features in ("vae", "pca"):
                t0 = time.perf_counter()
                r = spikevae.sort(source, spikevae.SortConfig(band_hz=BAND, features=features, device=args.device),
                                  out=case.work / f"{source.suffix[1:]}-{features}")
                sp = spikevae.load_result(r.out)["spikes"]
                s = score(case.gt, sp["timestamp"], sp["unit"])
                row = {**case.key, "input": source.suffix[1:], "features": features,
                       "gt_units": len(case.gt.unit_electrode), "units": r.n_units, "spikes": len(sp["timestamp"]),
                       "cut_online": n_cut, "well_detected": s.well_detected,
                       "mean_accuracy": float(s.accuracy.mean()), "false_positive_units": s.false_positive_units,
                       "seconds": time.perf_counter() - t0}
                rows.append(row)
                print(f"{case.setting + str(case.seed):<11} {row['input']:<5} {features:<8} {row['gt_units']:>3} "
                      f"{row['units']:>5} {row['well_detected']:>4} {row['mean_accuracy']:>8.3f} "
                      f"{row['false_positive_units']:>8} {row['seconds']:>6.1f}", flush=True)
    write_json(args.json, rows)


if __name__ == "__main__":
    main()
