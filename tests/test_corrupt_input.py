"""Corrupt recordings end in one SpikevaeError naming what is wrong (or in a valid result),
never in another exception and never in a half-written result folder."""
import struct

import numpy as np
import pytest

import spikevae
from spikevae.io.nsx_writer import NsxWriter
from spikevae.simulators.simulation import SimulationConfig, cut_online, simulate

HEADER = 314 + 66 * 3        # basic + extended header of a 3-electrode spec 2.3 file
NEV_HEADER = 336 + 32 * 9    # basic header + the extended packets cut_online writes for 3 electrodes


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    ns6 = folder / "tiny.ns6"
    simulate(ns6, SimulationConfig(n_electrodes=3, duration_s=2.0, n_segments=2, pause_s=0.5, seed=1))
    cut_online(ns6, folder / "tiny.nev")
    return {"ns6": ns6.read_bytes(), "nev": (folder / "tiny.nev").read_bytes()}


def outcome(path, out):
    """'ok' for a result, the message for a SpikevaeError; any other exception fails the test."""
    try:
        spikevae.sort(path, spikevae.SortConfig(features="pca", workers=1), out=out)
        assert (out / "run.json").is_file()
        return "ok"
    except spikevae.SpikevaeError as exc:
        assert not out.exists() and not list(out.parent.glob(f".{out.name}.partial-*"))
        assert "\n" not in str(exc)
        return str(exc)


def put(data: bytes, fmt: str, offset: int, value) -> bytes:
    b = bytearray(data)
    struct.pack_into(fmt, b, offset, value)
    return bytes(b)


@pytest.mark.parametrize("change, message", [
    (lambda d: put(d, "<I", 286, 0), "sample period is 0"),
    (lambda d: put(d, "<I", 290, 0), "timestamp resolution is 0"),
    (lambda d: put(d, "<B", 8, 9), "file spec 9.3"),
    (lambda d: put(d, "<16s", 314 + 4, b"\xff\xfe" * 8), "not text"),
    (lambda d: put(d, "<h", 314 + 22, 32764), "digital range is empty"),
    (lambda d: d[:100], "too short for an NSx header"),
])
def test_each_broken_header_field_is_named(tiny, tmp_path, change, message):
    path = tmp_path / "bad.ns6"
    path.write_bytes(change(tiny["ns6"]))
    assert message in outcome(path, tmp_path / "out")


def test_a_file_without_electrodes(tmp_path):
    path = tmp_path / "none.ns6"
    with NsxWriter(path, [], spec="2.3") as w:
        w.begin_segment(0)
        w.write(np.zeros((100, 0), np.int16))
    assert "channel count is 0" in outcome(path, tmp_path / "out")


@pytest.mark.parametrize("kind", ["ns6", "nev"])
def test_fuzzed_headers_and_truncations(tiny, tmp_path, kind):
    """150 seeded cases per format: bytes flipped, zeroed or set to 0xff in the headers, or the file cut short."""
    rng = np.random.default_rng(0 if kind == "ns6" else 1)
    data, header = tiny[kind], HEADER if kind == "ns6" else NEV_HEADER
    results = []
    for case in range(150):
        b = bytearray(data)
        op = rng.integers(4)
        if op == 0:
            for i in rng.integers(0, header, rng.integers(1, 4)):
                b[i] ^= int(rng.integers(1, 256))
        elif op == 1:
            i, k = int(rng.integers(0, header - 8)), int(rng.choice([1, 2, 4, 8]))
            b[i:i + k] = bytes(k)
        elif op == 2:
            b = b[:int(rng.integers(0, len(b)))]
        else:
            i = int(rng.integers(0, header - 4))
            b[i:i + 4] = b"\xff" * 4
        path = tmp_path / f"case{case}.{kind}"
        path.write_bytes(bytes(b))
        results.append(outcome(path, tmp_path / f"out{case}"))
    assert "ok" in results and sum(r != "ok" for r in results) >= 10  # both outcomes were exercised


def _edit_json(raw: bytes, change) -> bytes:
    import json

    run = json.loads(raw)
    change(run)
    return json.dumps(run).encode()


def _edit_npz(raw: bytes, key: str, change) -> bytes:
    import io

    with np.load(io.BytesIO(raw)) as f:
        arrays = {k: f[k] for k in f.files}
    arrays[key] = change(arrays[key])
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


@pytest.mark.parametrize("name, damage", [
    ("run.json", lambda b: b""),
    ("run.json", lambda b: b[: len(b) // 2]),
    ("run.json", lambda b: b"[1, 2]"),
    ("spikes.npz", lambda b: b[: len(b) // 2]),
    ("spike_waveforms.npy", lambda b: b[: len(b) // 2]),
    ("waveforms.npz", lambda b: b"not a zip"),
    ("run.json", lambda b: _edit_json(b, lambda r: r["config"].pop("band_hz"))),        # another version's
    ("run.json", lambda b: _edit_json(b, lambda r: r["config"].update(smoothing=3))),   # an unknown setting
    ("spikes.npz", lambda b: _edit_npz(b, "amplitude_uv", lambda a: np.where(np.arange(len(a)) == 5, np.nan, a))),
    ("spikes.npz", lambda b: _edit_npz(b, "unit", lambda u: np.where(u == u.max(), u.max() + 7, u))),
    ("units.csv", lambda b: b"\n".join(b.splitlines()[:-1]) + b"\n"),                  # a unit's row gone
])
def test_damaged_results_are_reported_by_export_and_compare_in_one_line(sorted_small, tmp_path, name, damage):
    import shutil

    from click.testing import CliRunner

    from spikevae.cli import main

    result, _ = sorted_small
    copy = tmp_path / "result"
    shutil.copytree(result.out, copy)
    (copy / name).write_bytes(damage((copy / name).read_bytes()))
    for args in (["export", str(copy), "--to", "nev"], ["compare", str(copy), "--baseline", "pca", "--quiet"]):
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 1 and isinstance(r.exception, SystemExit), r.output  # a ClickException, not a crash
        assert len(r.output.strip().splitlines()) == 1 and ("ort the recording again" in r.output), r.output
    assert not (copy / "compare").exists() and not (copy / "sorting.nev").exists()
