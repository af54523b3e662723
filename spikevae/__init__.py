"""spikevae: spike sorting of Blackrock Utah-array recordings with a capacity-annealed β-VAE.

The command line (``spikevae sort``) is a thin layer over these functions::

    import spikevae
    result = spikevae.sort("session.ns6", spikevae.SortConfig(band_hz=(250, 750)))
    spikes = spikevae.load_result(result.out)["spikes"]
"""
__version__ = "0.1.0"

from .batch import batch, train_shared  # noqa: E402
from .compare import compare  # noqa: E402
from .config import SortConfig  # noqa: E402
from .errors import SpikevaeError  # noqa: E402
from .output import load_result  # noqa: E402
from .pipeline import SortResult, sort  # noqa: E402
from .export import export, to_spikeinterface  # noqa: E402
from .simulate import SimulationConfig, simulate  # noqa: E402

__all__ = ["SortConfig", "SortResult", "SpikevaeError", "SimulationConfig", "batch", "compare", "export",
           "load_result", "simulate", "sort", "to_spikeinterface", "train_shared", "__version__"]
