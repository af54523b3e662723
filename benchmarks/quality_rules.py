"""Candidate noise rules of the quality label, scored on the tuning seed: each recording is
sorted once with every noise limit off, each unit is scored against ground truth, and each
limit set (a `QualityParams`) labels the units by their metrics (units.csv) through the
package's own `quality.label`, so that the sets are compared on the same
units. Prints false-positive units / kept units and well-detected units per rule, and
writes every unit's metrics and scores to --json for trying further rules.

    python benchmarks/quality_rules.py --families spikeinterface spikevae --seeds 101
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np

import spikevae
from spikevae.config import SortConfig
from spikevae.simulators.groundtruth import (CHANCE_SCORE, WELL_DETECTED, GroundTruth, ground_truth_path, match_counts,
                                  pair_units)
from spikevae.sorting.quality import QualityParams, label

from harness import add_recording_options, bands, recordings, write_json

OFF = QualityParams(noise_l_ratio=np.inf, noise_large_l_ratio=np.inf, noise_presence=0.0, noise_rate_hz=np.inf,
                    noise_weak_snr=0.0, noise_faint_snr=0.0, noise_mixed_snr=0.0)
DEFAULT = QualityParams()  # the mixed rule's ratio (None) is the band's, resolved by SortConfig
BASE = replace(DEFAULT, noise_faint_snr=0.0, noise_mixed_snr=0.0)  # the rule before these two limits
RULES = {  # candidates, each scored by the package's own quality.label
    "base: L-ratio, presence, hash, weak": BASE,
    "the default with one L-ratio limit (1) for every unit": replace(DEFAULT, noise_large_snr=np.inf),
    "+ mixed: snr < 6, >= 3 violations, the band's ratio": replace(DEFAULT, noise_faint_snr=0.0),
    "+ mixed: snr < 6, >= 3 violations, ratio > 0.05": replace(BASE, noise_mixed_snr=6.0, noise_mixed_ratio=0.05),
    "+ mixed: snr < 6, >= 3 violations, ratio > 0.2": replace(BASE, noise_mixed_snr=6.0, noise_mixed_ratio=0.2),
    "+ mixed: snr < 6, >= 1 violation, the band's ratio": replace(BASE, noise_mixed_snr=6.0, noise_mixed_violations=1),
    "+ mixed: snr < 6, >= 3 violations, ratio > 0.1": replace(BASE, noise_mixed_snr=6.0, noise_mixed_ratio=0.1),
    "+ mixed: snr < 7, >= 3 violations, the band's ratio": replace(BASE, noise_mixed_snr=7.0),
    "+ mixed: snr < 5.5, >= 3 violations, the band's ratio": replace(BASE, noise_mixed_snr=5.5),
    **{f"+ mixed + faint: snr < {snr:g}, l_ratio > {lr:g}, >= {n} spikes{' (default)' if i == 0 else ''}":
       replace(DEFAULT, noise_faint_snr=snr, noise_faint_l_ratio=lr, noise_faint_min_spikes=n)
       for i, (snr, lr, n) in enumerate(((7.0, 0.5, 100), (7.0, 0.5, 0), (6.0, 0.5, 100), (8.0, 0.5, 100),
                                         (7.0, 0.4, 100)))},
    "snr < 5.5 alone (with L-ratio, presence, hash)": replace(BASE, noise_weak_snr=5.5, noise_weak_l_ratio=-np.inf),
}


def scored_units(path: Path, band: tuple[float, float], work: Path) -> list[dict]:
    """units.csv rows of a sort with no noise limit, each with its best agreement with any
    true unit and its accuracy in the Hungarian pairing."""
    out = work / f"{path.stem}-{band[1]:g}"
    spikevae.sort(path, SortConfig(band_hz=band, quality=OFF), out=out, overwrite=True)
    res = spikevae.load_result(out)
    gt = GroundTruth.load(ground_truth_path(path))
    sp = res["spikes"]
    keep = sp["unit"] >= 0
    ids, n_sorted = np.unique(sp["unit"][keep], return_counts=True)
    n_true = np.bincount(gt.unit, minlength=len(gt.unit_electrode))
    m = match_counts(gt.timestamp, gt.unit, len(n_true), sp["timestamp"][keep], sp["unit"][keep], ids)
    agreement, pairs = pair_units(m, n_true, n_sorted)
    partner = {c: r for r, c in pairs}
    rows = []
    for u in res["units"]:
        c = int(np.searchsorted(ids, u["unit"]))
        rows.append({**u, "best": float(agreement[:, c].max(initial=0.0)),
                     "accuracy": float(agreement[partner[c], c]) if c in partner else 0.0})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_recording_options(ap, name="quality_rules")
    args = ap.parse_args()
    units = {}
    for case in recordings(args):
        for band in bands(args):
            for u in scored_units(case.path, band, case.work):
                units.setdefault((case.family, band), []).append({**case.key, "band_hz": list(band), **u})
    for (family, band), rows in units.items():
        print(f"{family} {band[0]:g}-{band[1]:g} Hz, seeds {args.seeds}")
        for name, params in RULES.items():
            params = SortConfig(band_hz=band, quality=params).quality  # the band's defaults, as a sort takes them
            kept = [u for u in rows if label(u, params) != "noise"]
            fp = sum(u["best"] < CHANCE_SCORE for u in kept)
            well = sum(u["accuracy"] >= WELL_DETECTED for u in kept)
            print(f"  {name:50s} false-positive {fp:3d} of {len(kept):4d} "
                  f"({100 * fp / max(len(kept), 1):4.1f} %), well detected {well}")
    write_json(args.json, [u for rows in units.values() for u in rows])


if __name__ == "__main__":
    main()
