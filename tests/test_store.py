"""On-disk spike columns and the streamed .npy/.npz writers of the result folder."""
import numpy as np
import pytest

from spikevae.io.output import save_npy, save_npz
from spikevae.io.store import Column, SpikeStore


def filled_store(tmp_path, n_chunks=3, rows=7):
    rng = np.random.default_rng(0)
    store = SpikeStore(tmp_path / "store", {"t": (np.int64, ()), "w": (np.float32, (5,))})
    t = np.arange(n_chunks * rows, dtype=np.int64) * 3
    w = rng.standard_normal((len(t), 5)).astype(np.float32)
    for i in range(0, len(t), rows):
        store.append(t=t[i:i + rows], w=w[i:i + rows])
    store.close()
    return store, t, w


def test_column_reads_and_writes_like_an_array(tmp_path):
    store, t, w = filled_store(tmp_path)
    col = store.column("w")
    assert isinstance(col, Column) and col.shape == w.shape and len(col) == len(w)
    idx = np.array([0, 4, 5, 19])
    np.testing.assert_array_equal(col[idx], w[idx])
    col.window_rows = 4  # rows gathered window by window, in any order, by position or mask
    for pick in (idx, np.array([19, 2, 2, 7, 0, -1]), w[:, 0] > 0, np.zeros(0, np.int64)):
        np.testing.assert_array_equal(col[pick], w[pick])
    with pytest.raises(IndexError):
        col[np.array([3, len(w)])]
    np.testing.assert_array_equal(col[3:9], w[3:9])
    assert int(store.column("t")[10]) == t[10]
    np.testing.assert_array_equal(np.asarray(store.column("t")), t)

    out = store.create("labels", np.int64)
    out[:] = -1
    out[idx] = np.arange(4)
    expect = np.full(len(t), -1)
    expect[idx] = np.arange(4)
    np.testing.assert_array_equal(store.column("labels")[:], expect)  # a fresh handle reads what was written


def test_empty_store_gives_empty_arrays(tmp_path):
    store = SpikeStore(tmp_path / "store", {"w": (np.float32, (5,))})
    store.close()
    assert store.column("w").shape == (0, 5)
    assert store.create("f", np.float32, (3,)).shape == (0, 3)


def test_streamed_writers_read_back_with_numpy(tmp_path):
    store, t, w = filled_store(tmp_path)
    with open(tmp_path / "w.npy", "wb") as f:
        save_npy(f, store.column("w"), chunk_rows=4)  # 21 rows: five chunks, the last short
    np.testing.assert_array_equal(np.load(tmp_path / "w.npy"), w)
    labels = np.arange(len(t)) % 3 - 1
    save_npz(tmp_path / "s.npz", timestamp=store.column("t"), unit=labels, empty=np.zeros((0, 2), np.float32))
    with np.load(tmp_path / "s.npz") as z:
        assert sorted(z.files) == ["empty", "timestamp", "unit"]
        np.testing.assert_array_equal(z["timestamp"], t)
        np.testing.assert_array_equal(z["unit"], labels)
        assert z["empty"].shape == (0, 2) and z["empty"].dtype == np.float32
