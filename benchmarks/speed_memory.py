"""Speed (× real time per step) and peak memory of `spikevae sort` on a 96-electrode recording,
against the fastest peer (Tridesclous2) timed on the same file in the same run.

Simulates the recording, then sorts it in a child process so that its peak RSS is measured
alone: the process's own (wait4 of that child) and, sampled every 0.1 s, that of the process
and its clustering workers together (psutil; RSS counts the shared library pages in each
process, so the sum errs high). Anchors in the same run: the raw read of the file (neo,
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
import threading
import time
from pathlib import Path

import psutil

from spikevae.io.reader import open_recording
from spikevae.simulators.simulation import SimulationConfig, simulate

from harness import OUT, write_json


def _tree_rss(proc: psutil.Process) -> int:
    """Bytes resident in a process and all its descendants (workers that end meanwhile count 0)."""
    total = 0
    for q in [proc, *proc.children(recursive=True)]:
        try:
            total += q.memory_info().rss
        except psutil.Error:
            pass
    return total


def timed_child(cmd: list[str]) -> tuple[float, float, float, str]:
    """Seconds, peak RSS (MB) of the child itself (wait4), peak RSS (MB) of the child and its
    worker processes together (sampled every 0.1 s), and stdout."""
    t0 = time.perf_counter()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as p:
        out: list[str] = []
        reader = threading.Thread(target=lambda: out.append(p.stdout.read()))
        reader.start()
        proc, tree_peak = psutil.Process(p.pid), 0
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            tree_peak = max(tree_peak, _tree_rss(proc))
            time.sleep(0.1)
        p.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
        reader.join()
    if p.returncode:
        raise SystemExit(f"{cmd[:4]} failed with exit code {p.returncode}")
    own = usage.ru_maxrss / 1024
    return time.perf_counter() - t0, own, max(tree_peak / 2**20, own), out[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--electrodes", type=int, default=96)
    ap.add_argument("--duration", type=float, nargs="+", default=[600.0])
    ap.add_argument("--peer", default="tridesclous2", help="peer timed as the anchor ('none' to skip)")
    ap.add_argument("--peer-at", type=float, nargs="*", default=[600.0],
                    help="durations at which the peer is timed as well")
    ap.add_argument("--device", nargs="+", choices=["cpu", "cuda"], default=["cpu"],
                    help="sort the same file once on each (training and encoding run there)")
    ap.add_argument("--json", type=Path, default=OUT / "speed_memory.json")
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
            total, peak_mb, all_mb, _ = timed_child([sys.executable, "-m", "spikevae", "sort", str(rec_path), "--quiet",
                                             "--device", device, "-o", str(out_dir)])
            run = json.loads((out_dir / "run.json").read_text())
            sorts.append({"device": device, "end_to_end_s": total, "end_to_end_x_realtime": duration / total,
                          "peak_rss_mb": peak_mb, "peak_rss_with_workers_mb": all_mb,
                          **{f"{k}_x_realtime": duration / max(v, 1e-9) for k, v in run["seconds"].items()},
                          "seconds": run["seconds"], "counts": run["counts"]})
        total = sorts[0]["end_to_end_s"]
        row = {"electrodes": args.electrodes, "duration_s": duration, "file_mb": rec_path.stat().st_size / 2**20,
               "raw_read_x_realtime": duration / read_s, "cpu_cores": os.cpu_count(), **sorts[0]}
        if len(sorts) > 1:
            row["other_devices"] = sorts[1:]
        if args.peer != "none" and duration in args.peer_at:
            sec, mb, all_mb, out = timed_child([sys.executable, str(here / "peers.py"), args.peer, str(rec_path),
                                        "--band", *map(str, run["config"]["band_hz"]),
                                        "--n-jobs", str(os.cpu_count())])
            inner = json.loads(out.strip().splitlines()[-1])
            row["peer"] = {"sorter": args.peer, "units": inner["units"], "sort_s": inner["seconds"], "seconds": sec,
                           "x_realtime": duration / sec, "peak_rss_mb": mb, "peak_rss_with_workers_mb": all_mb,
                           "n_jobs": os.cpu_count()}
            for r in [row, *row.get("other_devices", [])]:
                r["speedup_over_peer"] = sec / r["end_to_end_s"]
        rows.append(row)
        print(json.dumps(row, indent=1), flush=True)
        shutil.rmtree(tmp, ignore_errors=True)
    write_json(args.json, rows)


if __name__ == "__main__":
    main()
