"""spikevae: spike sorting of Blackrock Utah-array recordings with a capacity-annealed β-VAE.

The command line (``spikevae sort``) is a thin layer over these functions::

    import spikevae
    result = spikevae.sort("session.ns6", spikevae.SortConfig(band_hz=(250, 750)))
    spikes = spikevae.load_result(result.out)["spikes"]

The names below load on first use, so that ``spikevae --help`` and the clustering workers
(which import ``spikevae.clustering``) do not import PyTorch: the help takes 0.1 s instead
of 4.5 s, and a worker starts in 2 s with 160 MB instead of 3.7 s with 340 MB.
"""
import importlib
import sys
import types

__version__ = "0.1.0"

_API = {"SortConfig": "config", "SortResult": "pipeline", "SpikevaeError": "errors",
        "SimulationConfig": "simulate", "batch": "batch", "compare": "compare", "export": "export",
        "load_result": "output", "simulate": "simulate", "sort": "pipeline",
        "to_spikeinterface": "export", "utah_probe": "export", "train_shared": "batch",
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


class _Package(types.ModuleType):
    """``spikevae.batch``, ``.compare``, ``.export`` and ``.simulate`` stay the functions: a
    submodule of the same name, once loaded, would otherwise take the name over."""

    def __setattr__(self, name, value):
        if name in _API and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
