"""Utah-array geometry: 10 × 10 electrodes at 400 µm pitch, 96 wired (the corners are not)."""
from __future__ import annotations

import numpy as np

PITCH_UM = 400.0
_SITES = [(r, c) for r in range(10) for c in range(10) if (r, c) not in {(0, 0), (0, 9), (9, 0), (9, 9)}]


def grid_positions(electrode_ids) -> np.ndarray:
    """(x, y) in µm of each electrode, ids 1–96 placed row by row on the grid's 96 wired sites.

    Real arrays come with a map file that wires ids to sites differently; this default keeps
    every position distinct and the pitch right. Ids above 96 (a second array) continue on a
    grid beside the first."""
    pos = []
    for e in np.asarray(electrode_ids, int):
        bank, i = divmod(int(e) - 1, 96)
        r, c = _SITES[i]
        pos.append((c * PITCH_UM + bank * 12 * PITCH_UM, r * PITCH_UM))
    return np.array(pos, float).reshape(-1, 2)
