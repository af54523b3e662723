"""Candidate noise rules of the quality label, scored on the tuning seed: each recording is
sorted once with every noise limit off, each unit is scored against ground truth, and each
rule is applied to the units' metrics (units.csv), so that rules are compared on the same
units. Prints false-positive units / kept units and well-detected units per rule, and
writes every unit's metrics and scores to --json for trying further rules.

    python benchmarks/quality_rules.py --families spikeinterface spikevae --seeds 101
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import spikevae
from spikevae.config import SortConfig
from spikevae.groundtruth import (CHANCE_SCORE, WELL_DETECTED, GroundTruth, ground_truth_path, match_counts,
                                  pair_units)
from spikevae.quality import QualityParams

from harness import add_recording_options, bands, recordings, write_json

OFF = QualityParams(noise_l_ratio=np.inf, noise_presence=0.0, noise_rate_hz=np.inf, noise_weak_snr=0.0,
                    noise_faint_snr=0.0, noise_mixed_snr=0.0)
BASE = "l_ratio > 1 or presence < 0.7 or (cutoff >= 0.5 and rate > 30) or (snr < 5 and l_ratio > 0.2)"


def mixed(snr: float, violations: int, ratio: float):
    """Several cells near the threshold: refractory violations one neuron does not have."""
    return lambda u: u["snr"] < snr and u["isi_violations"] >= violations and u["isi_violations_ratio"] > ratio


def faint(snr: float, l_ratio: float, min_spikes: int = 100):
    return lambda u: u["snr"] < snr and u["l_ratio"] > l_ratio and u["n_spikes"] >= min_spikes


MIXED = mixed(6, 3, 0.05)
RULES = {  # each on top of BASE
    "base": lambda u: False,
    "mixed: snr < 6, >= 3 violations, ratio > 0.05": MIXED,  # with the first faint rule: the default
    "mixed: snr < 6, >= 1 violation, ratio > 0.05": mixed(6, 1, 0.05),
    "mixed: snr < 6, >= 3 violations, ratio > 0.1": mixed(6, 3, 0.1),
    "mixed: snr < 7, >= 3 violations, ratio > 0.05": mixed(7, 3, 0.05),
    "mixed: snr < 5.5, >= 3 violations, ratio > 0.05": mixed(5.5, 3, 0.05),
    **{f"mixed + faint: snr < {s:g}, l_ratio > {lr:g}, >= {n} spikes": (lambda f: lambda u: MIXED(u) or f(u))(
        faint(s, lr, n)) for s, lr, n in ((7, 0.5, 100), (7, 0.5, 0), (6, 0.5, 100), (8, 0.5, 100), (7, 0.4, 100))},
    "snr < 5.5": lambda u: u["snr"] < 5.5,
}


def base_noise(u: dict) -> bool:
    return (u["l_ratio"] > 1 or u["presence_ratio"] < 0.7
            or (u["amplitude_cutoff"] >= 0.5 and u["firing_rate_hz"] > 30) or (u["snr"] < 5 and u["l_ratio"] > 0.2))


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
        kept0 = [u for u in rows if not base_noise(u)]
        print(f"{family} {band[0]:g}-{band[1]:g} Hz, seeds {args.seeds}, base rule: {BASE}")
        for name, rule in RULES.items():
            kept = [u for u in kept0 if not rule(u)]
            fp = sum(u["best"] < CHANCE_SCORE for u in kept)
            well = sum(u["accuracy"] >= WELL_DETECTED for u in kept)
            print(f"  {name:50s} false-positive {fp:3d} of {len(kept):4d} "
                  f"({100 * fp / max(len(kept), 1):4.1f} %), well detected {well}")
    write_json(args.json, [u for rows in units.values() for u in rows])


if __name__ == "__main__":
    main()
