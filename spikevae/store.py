"""Append-only on-disk arrays for per-spike data, so memory does not grow with the recording."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def groups(labels: np.ndarray) -> dict[int, np.ndarray]:
    """label → sorted indices of the rows with that label (negative labels, "unsorted", left
    out), from one stable sort instead of one pass over every spike per label."""
    labels = np.asarray(labels)
    order = np.argsort(labels, kind="stable")
    values, starts = np.unique(labels[order], return_index=True)
    bounds = np.r_[starts, len(labels)]
    return {int(v): order[bounds[i]:bounds[i + 1]] for i, v in enumerate(values) if v >= 0}


class SpikeStore:
    """Columns of equal length appended chunk by chunk to raw files in ``folder``;
    ``column(name)`` memory-maps one back once writing is done."""

    def __init__(self, folder, columns: dict[str, tuple[np.dtype, tuple[int, ...]]]):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.columns = {k: (np.dtype(d), tuple(s)) for k, (d, s) in columns.items()}
        self._files = {k: open(self.folder / f"{k}.bin", "wb") for k in columns}
        self.n = 0

    def append(self, **arrays: np.ndarray) -> None:
        n = {len(a) for a in arrays.values()}
        if set(arrays) != set(self.columns) or len(n) != 1:
            raise ValueError("append needs every column, all of one length")
        for k, a in arrays.items():
            dtype, shape = self.columns[k]
            self._files[k].write(np.ascontiguousarray(a, dtype=dtype).reshape(-1, *shape).tobytes())
        self.n += n.pop()

    def close(self) -> None:
        for f in self._files.values():
            f.close()

    def column(self, name: str, mode: str = "r") -> np.ndarray:
        dtype, shape = self.columns[name]
        if self.n == 0:
            return np.zeros((0, *shape), dtype)
        return np.memmap(self.folder / f"{name}.bin", dtype=dtype, mode=mode, shape=(self.n, *shape))

    def create(self, name: str, dtype, shape: tuple[int, ...] = ()) -> np.ndarray:
        """A new writable column of ``n`` rows (results computed after detection)."""
        self.columns[name] = (np.dtype(dtype), tuple(shape))
        if self.n == 0:
            return np.zeros((0, *shape), dtype)
        return np.memmap(self.folder / f"{name}.bin", dtype=dtype, mode="w+", shape=(self.n, *shape))
