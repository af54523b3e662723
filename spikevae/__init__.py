"""spikevae: spike sorting of Blackrock Utah-array recordings with a capacity-annealed β-VAE.

The command line (``spikevae sort``) is a thin layer over these functions::

    import spikevae
    result = spikevae.sort("session.ns6", spikevae.SortConfig(band_hz=(250, 750)))
    spikes = spikevae.load_result(result.out)["spikes"]

The package is laid out as the sort runs: ``io/`` reads and writes files (Blackrock NSx
and .nev, SpikeInterface recordings, the result folder), ``sorting/`` holds the steps
(filtering, detection, the feature spaces, clustering, split, curation, metrics, quality),
``formats/`` the exports to other tools, ``simulators/`` the two ground-truth families and
chronic series, ``tracking/`` the matching of units across sessions; ``pipeline.py`` (with
``sources.py``), ``sessions.py``, ``comparison.py`` and ``cli.py`` compose them. Modules of
a subpackage import only from below (the root's settings and errors, ``io`` under
``sorting``) or beside them.

The names below load on first use, so that ``spikevae --help`` and the clustering workers
(which import ``spikevae.sorting.clustering``) do not import PyTorch, which would slow both and
double a worker's memory (benchmarks/RESULTS.md, "Timings behind the code's design").
"""
import importlib

__version__ = "0.1.0"

_API = {"SortConfig": "config", "SortResult": "pipeline", "SpikevaeError": "errors",
        "SimulationConfig": "simulators.simulation", "batch": "sessions", "compare": "comparison",
        "export": "formats.exports", "load_result": "io.output", "Result": "io.output",
        "simulate": "simulators.simulation", "sort": "pipeline", "to_spikeinterface": "formats.exports",
        "utah_probe": "formats.exports", "utah_recording": "formats.exports", "train_shared": "sessions",
        "track": "tracking.track", "simulate_series": "simulators.chronic", "register_sorter": "si_sorter"}
__all__ = [*_API, "__version__"]


def __getattr__(name):
    if name not in _API:
        raise AttributeError(f"module 'spikevae' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_API))

