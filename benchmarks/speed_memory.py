"""Speed (× real time per step) and peak memory of `spikevae sort` on a 96-electrode recording.

Simulates the recording, then sorts it in a child process so that its peak RSS is measured
alone. The anchor in the same run is the raw read of the file (neo, int16 → µV), the floor
for any sorter that reads the data.

    python benchmarks/speed_memory.py --duration 300
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from spikevae.reader import open_recording
from spikevae.simulate import SimulationConfig, simulate


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--electrodes", type=int, default=96)
    ap.add_argument("--duration", type=float, nargs="+", default=[300.0])
    ap.add_argument("--json", default="benchmarks/out/speed_memory.json")
    args = ap.parse_args()
    rows = []
    for duration in args.duration:
        tmp = Path(tempfile.mkdtemp())
        rec_path = tmp / "bench.ns6"
        simulate(rec_path, SimulationConfig(n_electrodes=args.electrodes, duration_s=duration, seed=11))
        rec = open_recording(rec_path)
        t0 = time.perf_counter()
        for seg in rec.segments:
            for a in range(0, seg.n_samples, 60_000):
                rec.read(seg.index, a, min(a + 60_000, seg.n_samples))
        read_s = time.perf_counter() - t0
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "spikevae", "sort", str(rec_path), "--quiet", "--device", "cpu"],
                       check=True)
        total = time.perf_counter() - t0
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        run = json.loads((tmp / "bench.spikevae" / "run.json").read_text())
        row = {"electrodes": args.electrodes, "duration_s": duration, "file_mb": rec_path.stat().st_size / 2**20,
               "raw_read_x_realtime": duration / read_s, "end_to_end_s": total,
               "end_to_end_x_realtime": duration / total, "peak_rss_mb": peak_mb,
               "peak_rss_note": "max over child processes so far" if before else "",
               **{f"{k}_x_realtime": duration / max(v, 1e-9) for k, v in run["seconds"].items()},
               "seconds": run["seconds"], "counts": run["counts"]}
        rows.append(row)
        print(json.dumps(row, indent=1), flush=True)
        shutil.rmtree(tmp, ignore_errors=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
