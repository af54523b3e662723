"""Utah-array geometry: 10 × 10 electrodes at 400 µm pitch, 96 wired (the corners are not)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

PITCH_UM = 400.0
_PITCH = re.compile(r"(pitch|spacing)\D{0,20}?(\d+(?:\.\d+)?)\s*(um|µm|micron)", re.IGNORECASE)
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


def read_cmp(path) -> tuple[dict[int, tuple[int, int]], float | None]:
    """Electrode id → (column, row) from a Blackrock map file (.cmp): tab-separated rows of
    column, row, bank letter, pin and label after free-text header lines; the id is
    (bank − 1) × 32 + pin, as Central numbers channels. Also the sites' pitch in µm when a
    header line states it ("pitch 50 um", "electrode spacing: 50 µm"), else None."""
    from ..errors import SpikevaeError

    sites, pitch = {}, None
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError as exc:
        raise SpikevaeError(f"{path}: cannot read the map file ({exc.strerror})") from None
    for line in lines:
        parts = line.split()
        stated = _PITCH.search(line)
        if stated and pitch is None:
            pitch = float(stated.group(2))
        if len(parts) < 4 or not (parts[0].isdigit() and parts[1].isdigit() and parts[3].isdigit()) \
                or len(parts[2]) != 1 or not parts[2].isalpha():
            continue  # header and comment lines
        col, row, bank, pin = int(parts[0]), int(parts[1]), ord(parts[2].upper()) - ord("A"), int(parts[3])
        sites[bank * 32 + pin] = (col, row)
    if not sites:
        raise SpikevaeError(f"{path}: not a Blackrock map file (no 'column row bank pin label' rows)")
    return sites, pitch
