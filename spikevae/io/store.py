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


class Column:
    """One on-disk column, read and written by slices like an array, that keeps none of its
    pages resident: the pages of a memory map stay in the process's resident memory while it
    is mapped, so this maps only what one access needs, for as long as it takes. Rows picked
    by an index array are gathered window by window, since one electrode's spikes are spread
    over the whole (time-ordered) file."""

    window_rows = 1 << 16

    def __init__(self, path: Path, dtype: np.dtype, shape: tuple[int, ...]):
        self.path, self.dtype, self.shape = path, dtype, shape

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def _map(self, mode: str, start: int = 0, stop: int | None = None) -> np.memmap:
        stop = self.shape[0] if stop is None else stop
        row_bytes = self.dtype.itemsize * int(np.prod(self.shape[1:], dtype=np.int64))
        return np.memmap(self.path, dtype=self.dtype, mode=mode, offset=start * row_bytes,
                         shape=(stop - start, *self.shape[1:]))

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (list, np.ndarray)) and np.asarray(key).ndim == 1:
            return self._gather(np.asarray(key))
        mapped = self._map("r")
        out = np.array(mapped[key])
        del mapped  # unmapped here, its pages with it
        return out

    def _gather(self, index: np.ndarray) -> np.ndarray:
        rows = np.flatnonzero(index) if index.dtype == bool else np.where(index < 0, index + len(self), index)
        if len(rows) and not 0 <= rows.min() <= rows.max() < len(self):
            raise IndexError(f"row index out of range for a column of {len(self)} rows")
        order = np.argsort(rows, kind="stable")
        out = np.empty((len(rows), *self.shape[1:]), self.dtype)
        bounds = np.searchsorted(rows[order], np.arange(0, len(self) + self.window_rows, self.window_rows))
        for w, (i, j) in enumerate(zip(bounds[:-1], bounds[1:])):
            if i < j:
                start = w * self.window_rows
                mapped = self._map("r", start, min(start + self.window_rows, len(self)))
                out[order[i:j]] = mapped[rows[order[i:j]] - start]
                del mapped
        return out

    def __setitem__(self, key, value) -> None:
        mapped = self._map("r+")
        mapped[key] = value
        del mapped

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self[:] if dtype is None else self[:].astype(dtype)


class SpikeStore:
    """Columns of equal length appended chunk by chunk to raw files in ``folder``;
    ``column(name)`` gives one back as a ``Column`` once writing is done."""

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

    def column(self, name: str) -> Column | np.ndarray:
        dtype, shape = self.columns[name]
        if self.n == 0:
            return np.zeros((0, *shape), dtype)
        return Column(self.folder / f"{name}.bin", dtype, (self.n, *shape))

    def create(self, name: str, dtype, shape: tuple[int, ...] = ()) -> Column | np.ndarray:
        """A new writable column of ``n`` rows (results computed after detection)."""
        self.columns[name] = (np.dtype(dtype), tuple(shape))
        if self.n > 0:
            with open(self.folder / f"{name}.bin", "wb") as f:
                f.truncate(self.n * np.dtype(dtype).itemsize * int(np.prod(shape, dtype=np.int64)))
        return self.column(name)
