"""The band-pass filter: spikevae's frequency-domain zero-phase filter against scipy's
``sosfiltfilt`` (float32, channels split over as many threads as cores: the filter spikevae
used before), on the same chunks of a simulated 96-electrode recording, in the same run.

Prints seconds per recorded minute for each and their error against float64 ``sosfiltfilt``
of the whole stretch (µV; both away from the stretch's ends, where each pads in its own way).
Then the ends: 1-s windows of the same recording written as segments of their own (pauses
between them) and filtered by each, against the whole recording's filtered signal, which
knows what came before and after: the mean error over each segment's first and last
``--edge-ms``, and how far into a segment the error stays above 1 % of the signal's RMS.

    python benchmarks/filter_speed.py --duration 60 --bands 250 750 250 7500
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from scipy import signal

from spikevae.sorting.filtering import BandpassFilter
from spikevae.io.nsx_writer import write_nsx
from spikevae.io.reader import TICKS_PER_SECOND, open_recording
from spikevae.simulators.simulation import SimulationConfig, simulate

from harness import OUT, write_json


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--electrodes", type=int, default=96)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--bands", type=float, nargs="+", default=[250, 750, 250, 7500])
    ap.add_argument("--order", type=int, default=4)
    ap.add_argument("--windows", type=int, default=20, help="1-s windows written as segments for the ends")
    ap.add_argument("--edge-ms", type=float, default=50.0)
    ap.add_argument("--json", type=Path, default=OUT / "filter_speed.json")
    args = ap.parse_args()
    path = Path(tempfile.mkdtemp()) / "filter.ns6"
    simulate(path, SimulationConfig(n_electrodes=args.electrodes, duration_s=args.duration, seed=11))
    rec = open_recording(path)
    seg = rec.segments[0]
    cores = os.cpu_count() or 1
    pool = ThreadPoolExecutor(cores)
    starts = np.linspace(TICKS_PER_SECOND, seg.n_samples - 2 * TICKS_PER_SECOND, args.windows).astype(int)
    write_nsx(path.with_name("ends.ns6"), [(2 * a, rec.read(0, a, a + TICKS_PER_SECOND).T) for a in starts])
    ends = open_recording(path.with_name("ends.ns6"))
    edge = int(args.edge_ms * TICKS_PER_SECOND / 1000)
    rows = []
    for lo, hi in zip(args.bands[::2], args.bands[1::2]):
        filt = BandpassFilter(rec, lo, hi, args.order)
        sos32, m = filt.sos.astype(np.float32), 2 * filt.margin  # margin as the old filter had it

        def sosfiltfilt_range(a, b):
            a0, b0 = max(a - m, 0), min(b + m, seg.n_samples)
            parts = np.array_split(rec.read(0, a0, b0, np.float32), cores)
            y = np.concatenate(list(pool.map(lambda p: signal.sosfiltfilt(sos32, p, axis=1), parts)))
            return y[:, a - a0: b - a0]

        whole = signal.sosfiltfilt(filt.sos, rec.read(0, 0, seg.n_samples), axis=1)
        truth, rms = whole[:, 2 * m:-2 * m], float(np.sqrt((whole ** 2).mean()))
        row = {"band_hz": [lo, hi], "electrodes": args.electrodes, "cpu_cores": cores}
        print(f"{lo:g}–{hi:g} Hz, {args.electrodes} electrodes, {cores} cores:")
        for name, filter_range in [("spikevae (fft)", lambda a, b: filt.filter_range(0, a, b)),
                                   ("sosfiltfilt float32", sosfiltfilt_range)]:
            t0 = time.perf_counter()
            out = np.concatenate([filter_range(a, min(a + 60_000, seg.n_samples))
                                  for a in range(0, seg.n_samples, 60_000)], axis=1)
            sec = time.perf_counter() - t0
            err = np.abs(out[:, 2 * m:-2 * m] - truth)
            r = row[name] = {"s_per_min": 60 * sec / seg.duration_s, "x_realtime": seg.duration_s / sec,
                             "max_err_uv": float(err.max()), "rms_err_uv": float(np.sqrt((err ** 2).mean()))}
            print(f"  {name:20s} {r['s_per_min']:6.2f} s per minute ({r['x_realtime']:5.1f}× real time), "
                  f"error max {r['max_err_uv']:.2g} µV, rms {r['rms_err_uv']:.2g} µV", flush=True)
        alone = BandpassFilter(ends, lo, hi, args.order)
        for name, filter_segment in [("spikevae (fft)", lambda s: alone.filter_range(s.index, 0, s.n_samples)),
                                     ("sosfiltfilt float32", lambda s: signal.sosfiltfilt(
                                         sos32, ends.read(s.index, 0, s.n_samples, np.float32), axis=1))]:
            err = np.stack([np.abs(filter_segment(s) - whole[:, a:a + s.n_samples])
                            for s, a in zip(ends.segments, starts)])        # (windows, channels, samples)
            half = err.shape[-1] // 2                                       # by distance from the nearer end:
            from_end = np.maximum(err[..., :half], err[..., ::-1][..., :half]).max(axis=(0, 1))
            r = row[name]
            r["edge_mean_err_uv"] = float(np.concatenate([err[..., :edge], err[..., -edge:]]).mean())
            r["edge_settled_samples"] = int(np.flatnonzero(from_end > 0.01 * rms).max(initial=-1) + 1)
            print(f"  {name:20s} segment ends: mean error {r['edge_mean_err_uv']:.3f} µV over the first and last "
                  f"{args.edge_ms:g} ms; below 1 % of the RMS ({rms:.1f} µV) after "
                  f"{r['edge_settled_samples']} samples", flush=True)
        rows.append(row)
    write_json(args.json, rows)
    path.unlink()
    path.with_name("ends.ns6").unlink()


if __name__ == "__main__":
    main()
