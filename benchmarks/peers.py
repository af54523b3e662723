"""Run a peer sorter (MountainSort5, Tridesclous2) through SpikeInterface on a .ns6 file.

The peer gets the same band as spikevae, the Utah geometry (400 µm pitch) and its own
defaults otherwise (MountainSort5 scheme 1). As a script it sorts one file and prints
the seconds and unit count, so that ``speed_memory.py`` can time it in a child process:

    python benchmarks/peers.py tridesclous2 recording.ns6 --band 250 750 --n-jobs 2

``pip install -e ".[peers]"`` installs both (Tridesclous2 comes with SpikeInterface but
needs hdbscan).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from spikevae.io.reader import open_recording
from spikevae.io.utah import grid_positions


def run_peer(name: str, path: Path, band, work: Path, n_jobs: int = 1):
    """Spike timestamps (ticks of the file's 30 kHz clock) and unit labels of one peer sort. A file
    with pauses is sorted as its segments joined end to end (MountainSort5 takes one segment
    only), and each spike is put back at its segment's start tick."""
    import probeinterface
    import spikeinterface as si
    import spikeinterface.extractors as se
    import spikeinterface.sorters as ss

    si.set_global_job_kwargs(n_jobs=n_jobs, progress_bar=False)
    rec = se.read_blackrock(str(path), stream_id="6")
    probe = probeinterface.Probe(ndim=2, si_units="um")
    ids = np.array([int(c) for c in rec.get_channel_ids()])
    probe.set_contacts(positions=grid_positions(ids), shapes="circle", shape_params={"radius": 20})
    probe.set_device_channel_indices(np.arange(len(ids)))
    rec.set_probe(probe)
    starts = [s.start_tick for s in open_recording(path).segments]
    lengths = [rec.get_num_samples(i) for i in range(rec.get_num_segments())]
    if len(lengths) != len(starts):
        raise RuntimeError(f"{path.name}: SpikeInterface reads {len(lengths)} segments, spikevae {len(starts)}")
    if len(lengths) > 1:
        rec = si.concatenate_recordings([rec.select_segments([i]) for i in range(len(lengths))])
    params = {"mountainsort5": dict(freq_min=band[0], freq_max=band[1], scheme="1"),
              "tridesclous2": dict(freq_min=band[0], freq_max=band[1])}[name]
    sorting = ss.run_sorter(name, rec, folder=work / name, remove_existing_folder=True, verbose=False, **params)
    ends = np.cumsum(lengths)  # of each segment, in the joined recording's samples
    shift = np.asarray(starts) - (ends - np.asarray(lengths))
    ts, units = [], []
    for u in sorting.get_unit_ids():
        st = sorting.get_unit_spike_train(u).astype(np.int64)
        ts.append(st + shift[np.searchsorted(ends, st, side="right")])
        units.append(np.full(len(st), len(units)))
    return (np.concatenate(ts) if ts else np.zeros(0, np.int64)), (np.concatenate(units) if units else np.zeros(0))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("sorter", choices=["mountainsort5", "tridesclous2"])
    ap.add_argument("recording", type=Path)
    ap.add_argument("--band", type=float, nargs=2, default=[250.0, 750.0])
    ap.add_argument("--n-jobs", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        t0 = time.perf_counter()
        _, units = run_peer(args.sorter, args.recording, args.band, Path(work), args.n_jobs)
        seconds = time.perf_counter() - t0
    print(json.dumps({"sorter": args.sorter, "seconds": seconds, "units": int(len(np.unique(units)))}))


if __name__ == "__main__":
    main()
