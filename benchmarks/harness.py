"""What every accuracy benchmark shares: the simulated recordings (independent families,
cached), the options that name them, variants of the sort's defaults, spikevae's own sort of
a recording, and the JSON each script writes.

Scripts import it from beside themselves (``python benchmarks/<script>.py`` puts this folder
on the path).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import spikevae
from spikevae.comparison import baseline_settings
from spikevae.config import SortConfig
from spikevae.simulators.groundtruth import GroundTruth, ground_truth_path

OUT = Path(__file__).parent / "out"
FAMILIES = ("spikevae", "spikeinterface")  # the package's simulator; one from SpikeInterface's generators
THIRD_FAMILY = "mearec"  # MEArec's biophysical cells (simulate_mearec.py): only when named, as it needs the extra
SETTINGS = ("standard", "hard", "stress")


def add_recording_options(ap: argparse.ArgumentParser, *, families=FAMILIES, seeds=(101,), electrodes=96,
                          name: str) -> None:
    """--families --settings --seeds --electrodes --duration --bands --device --cache --json, with
    this script's defaults; the JSON goes to benchmarks/out/<name>.json."""
    ap.add_argument("--families", nargs="+", choices=FAMILIES + (THIRD_FAMILY,), default=list(families))
    ap.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    ap.add_argument("--seeds", type=int, nargs="+", default=list(seeds),
                    help="simulation seeds: 101 tunes, pairs 202 203 to 712 713 are the held-out report's")
    ap.add_argument("--electrodes", type=int, default=electrodes)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds")
    ap.add_argument("--bands", type=float, nargs="+", default=[250, 750, 250, 7500], help="pairs of band edges in Hz")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where spikevae trains and encodes")
    ap.add_argument("--cache", type=Path, default=OUT / "recordings", help="simulated recordings are kept here")
    ap.add_argument("--json", type=Path, default=OUT / f"{name}.json")


def bands(args: argparse.Namespace) -> list[tuple[float, float]]:
    return list(zip(args.bands[::2], args.bands[1::2]))


def recording(family: str, setting: str, seed: int, electrodes: int, duration: float, cache: Path) -> Path:
    """The cached recording's path, simulated first when missing. Every family draws each spike
    at its exact time between two samples, as a real recording samples it."""
    path = cache / f"{family}-{setting}-{seed}-{electrodes}el-{duration:g}s-v1.ns6"
    if path.exists() and ground_truth_path(path).exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    if family == "spikevae":
        from spikevae.simulators.simulation import SETTINGS as KNOBS, SimulationConfig, simulate

        simulate(path, SimulationConfig(n_electrodes=electrodes, duration_s=duration, seed=seed, subsample_timing=True,
                                        **KNOBS[setting]))
    elif family == "spikeinterface":
        from spikevae.simulators.simulate_si import SETTINGS as KNOBS, SIUtahConfig, simulate_si

        simulate_si(path, SIUtahConfig(n_electrodes=electrodes, duration_s=duration, seed=seed, **KNOBS[setting]))
    elif family == THIRD_FAMILY:
        from simulate_mearec import SETTINGS as KNOBS, MEArecUtahConfig, simulate_mearec, template_library

        simulate_mearec(path, MEArecUtahConfig(n_electrodes=electrodes, duration_s=duration, seed=seed,
                                               **KNOBS[setting]), template_library(cache))
    else:
        raise ValueError(f"no simulator family {family!r}")
    return path


def series(family: str, seed: int, sessions: int, electrodes: int, duration: float, cache: Path,
           setting: str = "standard") -> Path:
    """The cached folder of a simulated chronic series (``spikevae.simulators.chronic``: the same neurons over
    ``sessions`` sessions), simulated first when missing."""
    folder = cache / (f"{family}-{seed}-{sessions}x{electrodes}el-{duration:g}s"
                      + ("" if setting == "standard" else f"-{setting}"))
    if (folder / "series.json").exists():
        return folder
    from spikevae.simulators.chronic import SeriesConfig, simulate_series

    if family == "spikevae":
        from spikevae.simulators.simulation import SETTINGS as KNOBS, SimulationConfig

        cfg = SimulationConfig(n_electrodes=electrodes, duration_s=duration, subsample_timing=True, **KNOBS[setting])
    else:
        from spikevae.simulators.simulate_si import SETTINGS as KNOBS, SIUtahConfig

        cfg = SIUtahConfig(n_electrodes=electrodes, duration_s=duration, **KNOBS[setting])
    simulate_series(folder, family, cfg, SeriesConfig(n_sessions=sessions, seed=seed))
    return folder


@dataclass
class Case:
    """One simulated recording, its ground truth and a scratch folder removed after it."""
    family: str
    setting: str
    seed: int
    path: Path
    gt: GroundTruth
    work: Path

    @property
    def key(self) -> dict:
        return {"family": self.family, "setting": self.setting, "seed": self.seed}


def recordings(args: argparse.Namespace) -> Iterator[Case]:
    """Each of --families × --settings × --seeds."""
    for family in args.families:
        for setting in args.settings:
            for seed in args.seeds:
                path = recording(family, setting, seed, args.electrodes, args.duration, args.cache)
                with tempfile.TemporaryDirectory() as work:
                    yield Case(family, setting, seed, path, GroundTruth.load(ground_truth_path(path)), Path(work))


def variant(base: SortConfig, spec: str, seed: int = 0) -> SortConfig:
    """``vae``, ``pca``, ... with changed settings of the network or of another section of
    ``SortConfig``: ``vae+latent_dim=12+steps=180``, ``pca+quality.noise_l_ratio=inf``,
    ``vae+detection.threshold=4.5``, ``vae+split.min_alike_spikes=none``, ``vae+curation.refractory_ms=1.5:2``
    (a pair). Another feature space than ``base``'s takes the clustering and training steps a sort with it
    would (``baseline_settings``)."""
    name, *changes = spec.split("+")
    cfg = dataclasses.replace(baseline_settings(dataclasses.replace(base, seed=seed), name), features=name)
    for change in changes:
        key, value = change.split("=")
        section, key = key.split(".") if "." in key else ("vae", key)
        old = getattr(cfg, section)
        current = getattr(old, key)
        if isinstance(current, bool):
            new = value.lower() in ("1", "true")
        elif isinstance(current, tuple):
            new = tuple(type(x)(v) for x, v in zip(current, value.split(":"), strict=True))
        elif value.lower() == "none":
            new = None
        else:
            new = float(value) if current is None else type(current)(value)
        cfg = dataclasses.replace(cfg, **{section: dataclasses.replace(old, **{key: new})})
    return cfg


def sort_spikes(path: Path, cfg: SortConfig, work: Path) -> dict:
    """``spikevae sort`` of ``path`` with ``cfg``: the result's ``spikes`` table."""
    out = work / f"sv-{cfg.features}-{cfg.band_hz[1]:g}-{cfg.seed}"
    spikevae.sort(path, cfg, out=out, overwrite=True)
    return spikevae.load_result(out)["spikes"]


def write_json(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=1, default=str))
