"""The simulated recordings the accuracy benchmarks sort, and spikevae's sorting of them.

Shared by ``accuracy_peers.py`` and ``accuracy_losses.py`` so that both see the same
recordings (each of --settings × --seeds, each of --bands) from the same options.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import spikevae
from spikevae.simulation import SETTINGS, SimulationConfig, simulate


def add_recording_options(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--electrodes", type=int, default=32)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--bands", type=float, nargs="+", default=[250, 750, 250, 7500],
                    help="pairs of band edges in Hz")
    ap.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where spikevae trains and encodes")


def bands(args: argparse.Namespace) -> list[tuple[float, float]]:
    return list(zip(args.bands[::2], args.bands[1::2]))


def recordings(args: argparse.Namespace):
    """Yield (setting, seed, path, ground truth, work folder), each in a temporary folder removed afterwards."""
    for setting in args.settings:
        for seed in args.seeds:
            work = Path(tempfile.mkdtemp())
            try:
                path = work / f"{setting}{seed}.ns6"
                gt = simulate(path, SimulationConfig(n_electrodes=args.electrodes, duration_s=args.duration,
                                                     seed=seed, **SETTINGS[setting]))
                yield setting, seed, path, gt, work
            finally:
                shutil.rmtree(work, ignore_errors=True)


def sort_spikes(path: Path, band, features: str, work: Path, device: str = "cpu", seed: int = 0) -> dict:
    """spikevae's sorting of ``path`` with default settings on ``device``: its ``spikes`` table."""
    r = spikevae.sort(path, spikevae.SortConfig(band_hz=band, features=features, device=device, seed=seed),
                      out=work / f"sv-{features}-{band[1]:g}-{seed}")
    return spikevae.load_result(r.out)["spikes"]
