"""Where the electrodes sit, and what follows for a sorter that sorts each electrode alone.

spikevae is built for arrays whose electrodes lie further apart than one cell's reach (a Utah
array: 400 µm pitch), so that a unit shows on one electrode and an event seen on many at once is
an artifact. Positions come from a Blackrock map file (``--map``), a SpikeInterface probe, or,
with neither, the Utah grid is assumed (and ``run.json`` says so). Electrodes closer than the
reach (a linear probe, a tetrode) are refused unless the user asks to sort each channel anyway.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import SpikevaeError
from .utah import PITCH_UM, grid_positions, read_cmp


@dataclass
class Geometry:
    """(x, y) µm of each sorted electrode (in the order of the recording's electrode ids)."""

    electrode_ids: np.ndarray
    positions: np.ndarray
    source: str                   # where the positions came from, for run.json and messages

    def distances(self) -> np.ndarray:
        return np.linalg.norm(self.positions[:, None, :] - self.positions[None, :, :], axis=2)

    def apart(self, reach_um: float) -> np.ndarray:
        """(channels, channels): True where one cell cannot reach both electrodes (or on the
        diagonal): the pairs whose coincident events count as one common-mode artifact."""
        return (self.distances() > reach_um) | np.eye(len(self.positions), dtype=bool)

    def closest_pair(self) -> tuple[int, int, float] | None:
        """Electrode ids of the two closest electrodes and their distance (None for one electrode)."""
        if len(self.positions) < 2:
            return None
        d = self.distances() + np.diag(np.full(len(self.positions), np.inf))
        i, j = np.unravel_index(np.argmin(d), d.shape)
        return int(self.electrode_ids[i]), int(self.electrode_ids[j]), float(d[i, j])

    def describe(self) -> dict:
        pair = self.closest_pair()
        return {"source": self.source, "closest_um": None if pair is None else round(pair[2], 3)}


def map_geometry(electrode_ids, electrode_map, pitch_um: float | None = None) -> Geometry:
    """Positions from a Blackrock map file (.cmp), its sites ``pitch_um`` apart (None: as the
    file states, else a Utah array's 400 µm)."""
    sites, stated = read_cmp(electrode_map)
    pitch = pitch_um or stated or PITCH_UM
    missing = [int(e) for e in electrode_ids if int(e) not in sites]
    if missing:
        raise SpikevaeError(f"{electrode_map}: no position for electrode(s) {missing[:5]}")
    pos = np.array([sites[int(e)] for e in electrode_ids], float).reshape(-1, 2) * pitch
    return Geometry(np.asarray(electrode_ids), pos, f"map {electrode_map}, {pitch:g} µm pitch")


def recording_geometry(electrode_ids, electrode_map=None, pitch_um: float | None = None,
                       probe_positions: np.ndarray | None = None) -> Geometry:
    """The electrodes' positions: the map file, else the recording's probe, else the Utah grid."""
    ids = np.asarray(electrode_ids)
    if electrode_map is not None:
        return map_geometry(ids, electrode_map, pitch_um)
    if probe_positions is not None:
        return Geometry(ids, np.asarray(probe_positions, float)[:, :2], "SpikeInterface probe")
    return Geometry(ids, grid_positions(ids), "assumed Utah array (10 × 10, 400 µm pitch; --map to place them)")


def check_spacing(geometry: Geometry, reach_um: float, allow_dense: bool, name: str) -> str | None:
    """Refuse electrodes closer than one cell's reach (one neuron would show on several and be
    sorted several times); with ``allow_dense``, the warning to give instead. None when sparse."""
    pair = geometry.closest_pair()
    if pair is None or pair[2] > reach_um:
        return None
    a, b, d = pair
    what = f"{name}: electrodes {a} and {b} are {d:g} µm apart ({geometry.source}), closer than one cell's reach " \
           f"({reach_um:g} µm)"
    if not allow_dense:
        raise SpikevaeError(f"{what}; spikevae sorts each electrode alone, for arrays whose units each show on one "
                            "electrode (a Utah array): use a sorter for dense probes, or pass --allow-dense "
                            "(allow_dense=True) to sort each channel anyway")
    return f"{what}: each channel is sorted alone (--allow-dense), so one neuron may appear as units on several"
