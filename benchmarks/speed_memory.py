"""Speed (× real time per step) and peak memory of `spikevae sort` on a 96-electrode recording,
against the fastest peer (Tridesclous2) timed on the same file in the same run.

Simulates the recording, then sorts it in a child process so that its peak RSS is measured
alone (wait4 of that child). Anchors in the same run: the raw read of the file (neo,
int16 → µV), the floor for any sorter that reads the data; and the peer, run through
SpikeInterface in its own child process with as many jobs as this machine has cores.

    python benchmarks/speed_memory.py --duration 300 600 1200 3600 --peer-at 600
    python benchmarks/speed_memory.py --device cuda cpu     # on a GPU machine: both, same file
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from spikevae.reader import open_recording
from spikevae.simulate import SimulationConfig, simulate


def timed_child(cmd: list[str]) -> tuple[float, float, str]:
    """Seconds, peak RSS (MB) and stdout of a child process; RSS is that child's own."""
    t0 = time.perf_counter()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as p:
        out = p.stdout.read()
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
    if p.returncode:
        raise SystemExit(f"{cmd[:4]} failed with exit code {p.returncode}")
    return time.perf_counter() - t0, usage.ru_maxrss / 1024, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--electrodes", type=int, default=96)
    ap.add_argument("--duration", type=float, nargs="+", default=[600.0])
    ap.add_argument("--peer", default="tridesclous2", help="peer timed as the anchor ('none' to skip)")
    ap.add_argument("--peer-at", type=float, nargs="*", default=[600.0],
                    help="durations at which the peer is timed as well")
    ap.add_argument("--device", nargs="+", choices=["cpu", "cuda"], default=["cpu"],
                    help="sort the same file once on each (training and encoding run there)")
    ap.add_argument("--json", default="benchmarks/out/speed_memory.json")
    args = ap.parse_args()
    here = Path(__file__).parent
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
        sorts = []
        for i, device in enumerate(args.device):
            out_dir = tmp / f"bench-{i}-{device}.spikevae"
            total, peak_mb, _ = timed_child([sys.executable, "-m", "spikevae", "sort", str(rec_path), "--quiet",
                                             "--device", device, "-o", str(out_dir)])
            run = json.loads((out_dir / "run.json").read_text())
            sorts.append({"device": device, "end_to_end_s": total, "end_to_end_x_realtime": duration / total,
                          "peak_rss_mb": peak_mb,
                          **{f"{k}_x_realtime": duration / max(v, 1e-9) for k, v in run["seconds"].items()},
                          "seconds": run["seconds"], "counts": run["counts"]})
        total = sorts[0]["end_to_end_s"]
        row = {"electrodes": args.electrodes, "duration_s": duration, "file_mb": rec_path.stat().st_size / 2**20,
               "raw_read_x_realtime": duration / read_s, "cpu_cores": os.cpu_count(), **sorts[0]}
        if len(sorts) > 1:
            row["other_devices"] = sorts[1:]
        if args.peer != "none" and duration in args.peer_at:
            sec, mb, out = timed_child([sys.executable, str(here / "peers.py"), args.peer, str(rec_path),
                                        "--band", *map(str, run["config"]["band_hz"]),
                                        "--n-jobs", str(os.cpu_count())])
            inner = json.loads(out.strip().splitlines()[-1])
            row["peer"] = {"sorter": args.peer, "units": inner["units"], "sort_s": inner["seconds"], "seconds": sec,
                           "x_realtime": duration / sec, "peak_rss_mb": mb, "n_jobs": os.cpu_count()}
            for r in [row, *row.get("other_devices", [])]:
                r["speedup_over_peer"] = sec / r["end_to_end_s"]
        rows.append(row)
        print(json.dumps(row, indent=1), flush=True)
        shutil.rmtree(tmp, ignore_errors=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
