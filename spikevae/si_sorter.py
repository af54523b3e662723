"""spikevae as a SpikeInterface sorter, so that it is benchmarked against every other sorter
in one line::

    import spikevae, spikeinterface.sorters as ss
    spikevae.register_sorter()
    sorting = ss.run_sorter("spikevae", recording, folder="sorted", features="pca")

Parameters are ``SortConfig``'s: its plain fields by name, its sections (detection, vae,
cluster, split, curation, quality) as dicts of the fields to change. Each channel is
sorted on its own, as an electrode of a Utah array is, so no grouping is needed; the
spikevae result folder (units.csv, run.json, exports) is kept in ``sorter_output/spikevae``.
"""
from __future__ import annotations

import dataclasses

from . import __version__
from .config import SortConfig
from .errors import SpikevaeError
from .formats.exports import require_extra, to_spikeinterface
from .io.geometry import check_spacing

BaseSorter = require_extra("spikeinterface.sorters", "spikeinterface", "the spikevae sorter").BaseSorter
sorterlist = require_extra("spikeinterface.sorters.sorterlist", "spikeinterface", "the spikevae sorter")

SECTIONS = ("detection", "vae", "cluster", "split", "curation", "quality")
RESULT = "spikevae"


def _defaults() -> dict:
    plain = {f.name: f.default for f in dataclasses.fields(SortConfig) if f.name not in SECTIONS}
    plain["band_hz"] = list(plain["band_hz"])
    return {**plain, **{s: {} for s in SECTIONS}}


def config_from_params(params: dict) -> SortConfig:
    """The ``SortConfig`` that sorter parameters ask for; a section's unknown field is named."""
    try:
        return SortConfig.from_dict({**params, "split": params.get("split") or {}}, result=False)
    except TypeError as e:
        raise SpikevaeError(f"spikevae sorter parameters: {e}") from None


class SpikevaeSorter(BaseSorter):
    """spikevae: per-electrode spike sorting with a capacity-annealed β-VAE embedding."""

    sorter_name = "spikevae"
    handle_multi_segment = True
    requires_locations = False
    gpu_capability = "nvidia-optional"
    _default_params = _defaults()
    _params_description = {
        "channels": "electrode ids to sort, e.g. '1-32,40'; None = all",
        "band_hz": "band-pass edges in Hz",
        "features": "vae, pca, ae or vae-plain",
        "device": "auto, cpu or cuda (the β-VAE's training)",
        "seed": "random seed; the same seed gives the same sort",
        "workers": "processes for clustering; None = one per core",
        "threads": "PyTorch CPU threads; None = the cores this process may use",
        "electrode_map": "Blackrock .cmp placing the electrodes; None = the recording's probe, else a Utah grid",
        "pitch_um": "site spacing of electrode_map in µm; None = as the map states, else 400",
        "allow_dense": "sort channels closer than one cell's reach each alone (warned) instead of refusing",
        **{s: f"SortConfig.{s} fields to change, as a dict" for s in SECTIONS},
    }
    sorter_description = __doc__.split("\n\n")[0]
    installation_mesg = "pip install spikevae"

    @classmethod
    def is_installed(cls):
        return True

    @classmethod
    def get_sorter_version(cls):
        return __version__

    @classmethod
    def use_gpu(cls, params):
        return params.get("device") != "cpu"

    @classmethod
    def _check_params(cls, recording, output_folder, params):
        """Settings, and a probe too dense to sort channel by channel, refused before any work."""
        from .sources import open_source

        cfg = config_from_params(params)
        check_spacing(open_source(recording, cfg).geometry, cfg.detection.cell_reach_um, cfg.allow_dense,
                      "the recording")
        return params

    @classmethod
    def _setup_recording(cls, recording, sorter_output_folder, params, verbose):
        """Nothing to copy: spikevae reads the recording through SpikeInterface, chunk by chunk."""

    @classmethod
    def _run_from_folder(cls, sorter_output_folder, params, verbose):
        from .pipeline import sort
        from .progress import Reporter

        recording = cls.load_recording_from_folder(sorter_output_folder.parent, with_warnings=False)
        sort(recording, config_from_params(params), out=sorter_output_folder / RESULT, overwrite=True,
             reporter=Reporter(quiet=not verbose))

    @classmethod
    def _get_result_from_folder(cls, sorter_output_folder):
        return to_spikeinterface(sorter_output_folder / RESULT)


def register_sorter() -> None:
    """Make ``run_sorter("spikevae", ...)`` and ``available_sorters()`` know spikevae."""
    if SpikevaeSorter.sorter_name not in sorterlist.sorter_dict:
        sorterlist.sorter_full_list.append(SpikevaeSorter)
    sorterlist.sorter_dict[SpikevaeSorter.sorter_name] = SpikevaeSorter
