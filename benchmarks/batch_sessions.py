"""Many sessions: shared model vs training per session, interruption and resume, latent stability.

Simulates N sessions of the same units (amplitudes drifting by --drift per session) and one
truncated file, then:
1. runs `spikevae batch` and interrupts it (SIGTERM, as a scheduler's kill) after the model is trained and a few
   sessions are sorted, then restarts the same command and times the resume;
2. sorts every session on its own (each training its own model) for the comparison;
3. for every true unit paired with a sorted unit on all days, measures how far its centroid
   in the shared latent space moves between days, against the distance to the nearest other
   unit on its electrode and the median distance between any two units.

    python benchmarks/batch_sessions.py --sessions 6 --electrodes 32 --duration 60
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import spikevae
from spikevae.simulators.groundtruth import GroundTruth, score
from spikevae.simulators.simulation import SimulationConfig, simulate

from harness import OUT, write_json


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=6)
    ap.add_argument("--electrodes", type=int, default=32)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--drift", type=float, default=0.03)
    ap.add_argument("--json", type=Path, default=OUT / "batch_sessions.json")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    data = tmp / "data"
    data.mkdir()
    for day in range(args.sessions):
        simulate(data / f"day{day}.ns6", SimulationConfig(
            n_electrodes=args.electrodes, duration_s=args.duration, seed=200 + day, unit_seed=3,
            amplitude_scale=1 + args.drift * day))
    (data / "day9-corrupt.ns6").write_bytes((data / "day0.ns6").read_bytes()[:50_000])

    cmd = [sys.executable, "-m", "spikevae", "batch", str(data / "*.ns6"), "-o", str(tmp / "results"), "-q"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    while len(list((tmp / "results").glob("day*.spikevae"))) < 2 and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    proc.wait()
    first = time.perf_counter() - t0
    done_before = len(list((tmp / "results").glob("day*.spikevae")))
    t0 = time.perf_counter()
    rc = subprocess.run(cmd).returncode
    resume = time.perf_counter() - t0
    with open(tmp / "results" / "sessions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    sorted_rows = [r for r in rows if r["status"] in ("sorted", "skipped")]
    shared = [json.loads((tmp / "results" / f"day{d}.spikevae" / "run.json").read_text())["seconds"]
              for d in range(args.sessions)]
    shared_per_session = np.mean([sum(s.values()) for s in shared])

    t0 = time.perf_counter()
    (tmp / "own").mkdir()
    own = []
    for day in range(args.sessions):
        r = spikevae.sort(data / f"day{day}.ns6", spikevae.SortConfig(device="cpu"), out=tmp / "own" / f"day{day}")
        own.append(sum(r.seconds.values()))
    own_total = time.perf_counter() - t0

    centroids = []
    for day in range(args.sessions):
        gt = GroundTruth.load(data / f"day{day}.gt.npz")
        spikes = spikevae.load_result(tmp / "results" / f"day{day}.spikevae")["spikes"]
        s = score(gt, spikes["timestamp"], spikes["unit"])
        centroids.append({u: spikes["latent"][spikes["unit"] == s.matched_unit[u]].mean(axis=0)
                          for u in np.flatnonzero(s.matched_unit >= 0)})
    electrode = GroundTruth.load(data / "day0.gt.npz").unit_electrode
    common = sorted(set.intersection(*(set(c) for c in centroids)))
    moves, gaps, kept_identity = [], [], 0
    for u in common:
        rivals = [v for v in common if v != u and electrode[v] == electrode[u]]
        move = max(np.linalg.norm(c[u] - centroids[0][u]) for c in centroids[1:])
        moves.append(move)
        if rivals:
            gap = min(np.linalg.norm(centroids[0][v] - centroids[0][u]) for v in rivals)
            gaps.append(gap)
            kept_identity += all(np.linalg.norm(c[u] - centroids[0][u]) < min(
                np.linalg.norm(c[u] - centroids[0][v]) for v in rivals) for c in centroids[1:])
    report = {
        "sessions": args.sessions, "electrodes": args.electrodes, "duration_s": args.duration,
        "interrupted_after_s": round(first, 1), "sessions_done_before_interrupt": done_before,
        "resume_s": round(resume, 1), "resume_exit_code": rc,
        "statuses": {r["session"]: r["status"] for r in rows},
        "shared_model_seconds_per_session": round(float(shared_per_session), 2),
        "shared_model_train_seconds_in_session": round(float(np.mean([s["train"] for s in shared])), 2),
        "own_model_seconds_per_session": round(float(np.mean(own)), 2), "own_model_total_s": round(own_total, 1),
        "units_paired_every_day": len(common),
        "median_distance_between_units": float(np.median([np.linalg.norm(centroids[0][a] - centroids[0][b])
                                                          for i, a in enumerate(common) for b in common[i + 1:]]))
        if len(common) > 1 else None,
        "median_max_centroid_move": float(np.median(moves)) if moves else None,
        "median_gap_to_nearest_unit_same_electrode": float(np.median(gaps)) if gaps else None,
        "units_with_a_rival_keeping_identity": f"{kept_identity}/{len(gaps)}",
        "sorted_sessions": len(sorted_rows),
    }
    print(json.dumps(report, indent=1))
    shutil.rmtree(tmp, ignore_errors=True)
    write_json(args.json, report)


if __name__ == "__main__":
    main()
