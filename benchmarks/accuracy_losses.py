"""Why true units are missed: for each one a threshold detector can see (SNR ≥ --min-snr) that
spikevae does not detect well, which of four losses costs its accuracy the most.

A true unit's spikes are either not detected (no event on its electrode within ±0.4 ms),
detected but left unsorted, or detected and sorted into another unit; and the unit it was
paired with (or, if unpaired, the one holding most of its spikes) also holds spikes that
are not its own. Accuracy = TP / (TP + FN + FP), so the largest of the four names the cause.
Prints one line per lost unit and a summary per band and feature space; writes JSON.

    python benchmarks/accuracy_losses.py --electrodes 32 --duration 60 --seeds 1 2
"""
from __future__ import annotations

import argparse
from collections import Counter

import numpy as np

from spikevae.config import SortConfig
from spikevae.simulators.groundtruth import MATCH_TICKS, WELL_DETECTED, score

from harness import add_recording_options, bands, recordings, sort_spikes, write_json

CAUSES = ("not detected", "left unsorted", "in another unit", "others' spikes in its unit")


def nearest_event(event_ts: np.ndarray, true_ts: np.ndarray) -> np.ndarray:
    """Index into the sorted ``event_ts`` of the event within ±MATCH_TICKS of each true spike, or −1."""
    if len(event_ts) == 0:
        return np.full(len(true_ts), -1)
    j = np.searchsorted(event_ts, true_ts)
    left = np.clip(j - 1, 0, len(event_ts) - 1)
    right = np.clip(j, 0, len(event_ts) - 1)
    k = np.where(np.abs(event_ts[right] - true_ts) < np.abs(event_ts[left] - true_ts), right, left)
    return np.where(np.abs(event_ts[k] - true_ts) <= MATCH_TICKS, k, -1)


def losses(gt, spikes: dict, min_snr: float) -> list[dict]:
    """One row per true unit of SNR ≥ ``min_snr`` below the well-detected line."""
    s = score(gt, spikes["timestamp"], spikes["unit"])
    rows = []
    for t in np.flatnonzero((gt.unit_snr >= min_snr) & (s.accuracy < WELL_DETECTED)):
        on = np.flatnonzero(spikes["electrode_id"] == gt.unit_electrode[t])
        on = on[np.argsort(spikes["timestamp"][on], kind="stable")]
        true_ts = gt.timestamp[gt.unit == t]
        k = nearest_event(spikes["timestamp"][on], true_ts)
        label = spikes["unit"][on[k[k >= 0]]]
        own = s.matched_unit[t]
        if own < 0 and (label >= 0).any():
            ids, n = np.unique(label[label >= 0], return_counts=True)
            own = ids[n.argmax()]
        held = int((label == own).sum()) if own >= 0 else 0
        cost = {"not detected": int((k < 0).sum()), "left unsorted": int((label < 0).sum()),
                "in another unit": int(((label >= 0) & (label != own)).sum()),
                "others' spikes in its unit": int((spikes["unit"] == own).sum()) - held if own >= 0 else 0}
        rows.append({"unit": int(t), "snr": round(float(gt.unit_snr[t]), 2), "spikes": len(true_ts),
                     "accuracy": round(float(s.accuracy[t]), 3), **cost, "cause": max(cost, key=cost.get)})
    return rows


def main():
    ap = argparse.ArgumentParser()
    add_recording_options(ap, families=["spikevae"], seeds=[1, 2], electrodes=32, name="accuracy_losses")
    ap.add_argument("--features", nargs="+", choices=["vae", "pca"], default=["vae", "pca"])
    ap.add_argument("--min-snr", type=float, default=4.0)
    args = ap.parse_args()
    rows = []
    for case in recordings(args):
        for band in bands(args):
            for features in args.features:
                spikes = sort_spikes(case.path, SortConfig(band_hz=band, features=features, device=args.device),
                                     case.work)
                for row in losses(case.gt, spikes, args.min_snr):
                    row = {**case.key, "band_hz": list(band), "features": features, **row}
                    rows.append(row)
                    print(f"{case.family} {case.setting:8s} seed {case.seed} {band[0]:g}-{band[1]:g} Hz {features:4s} "
                          f"unit {row['unit']:3d} "
                          f"SNR {row['snr']:5.1f} accuracy {row['accuracy']:.2f} of {row['spikes']:5d}: "
                          + ", ".join(f"{c} {row[c]}" for c in CAUSES) + f" → {row['cause']}", flush=True)
    print(f"\nunits of SNR ≥ {args.min_snr:g} below accuracy {WELL_DETECTED}, by their largest loss:")
    print("| band (Hz) | features | " + " | ".join(CAUSES) + " | lost |")
    print("|---" * (len(CAUSES) + 3) + "|")
    for band in bands(args):
        for features in args.features:
            mine = [r for r in rows if tuple(r["band_hz"]) == band and r["features"] == features]
            n = Counter(r["cause"] for r in mine)
            print(f"| {band[0]:g}–{band[1]:g} | {features} | " + " | ".join(str(n[c]) for c in CAUSES)
                  + f" | {len(mine)} |")
    write_json(args.json, rows)


if __name__ == "__main__":
    main()
