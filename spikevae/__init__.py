"""spikevae: spike sorting of Blackrock Utah-array recordings with a capacity-annealed β-VAE.

The command line (``spikevae sort``) is a thin layer over these functions::

    import spikevae
    result = spikevae.sort("session.ns6", spikevae.SortConfig(band_hz=(250, 750)))
    spikes = spikevae.load_result(result.out)["spikes"]

The names below load on first use, so that ``spikevae --help`` and the clustering workers
(which import ``spikevae.clustering``) do not import PyTorch, which would slow both and
double a worker's memory (benchmarks/RESULTS.md, "Timings behind the code's design").
"""
import importlib

__version__ = "0.1.0"

_API = {"SortConfig": "config", "SortResult": "pipeline", "SpikevaeError": "errors",
        "SimulationConfig": "simulation", "batch": "sessions", "compare": "comparison", "export": "exports",
        "load_result": "output", "Result": "output", "simulate": "simulation", "sort": "pipeline",
        "to_spikeinterface": "exports", "utah_probe": "exports", "utah_recording": "exports",
        "train_shared": "sessions", "track": "tracking", "simulate_series": "chronic",
        "register_sorter": "si_sorter"}
__all__ = [*_API, "__version__"]


def __getattr__(name):
    if name not in _API:
        raise AttributeError(f"module 'spikevae' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_API))

