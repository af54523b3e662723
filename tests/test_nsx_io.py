"""Real .ns6 bytes from the package's writer, read back through neo and through spikevae."""
import numpy as np
import pytest
from neo.rawio import BlackrockRawIO

from spikevae.errors import SpikevaeError
from spikevae.io.nsx_writer import write_nsx
from spikevae.io.reader import open_recording, parse_channels


@pytest.mark.parametrize("spec", ["2.2", "2.3", "3.0", "3.0-ptp"])
def test_every_spec_round_trips_through_neo_with_a_pause(tmp_path, spec):
    rng = np.random.default_rng(0)
    a, b = 40 * rng.standard_normal((4000, 5)), 40 * rng.standard_normal((2500, 5))
    path = tmp_path / "rec.ns6"
    write_nsx(path, [(300, a), (30_000 * 7, b)], spec=spec)

    neo_reader = BlackrockRawIO(str(path), nsx_to_load=6, load_nev=False, gap_tolerance_ms=1.0)
    neo_reader.parse_header()
    assert neo_reader.segment_count(0) == 2

    rec = open_recording(path)
    assert rec.file_spec == spec
    assert [s.n_samples for s in rec.segments] == [4000, 2500]
    assert [s.start_tick for s in rec.segments] == [300, 210_000]
    assert list(rec.electrode_ids) == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(rec.read(0, 0, 4000).T, a, atol=0.125 + 1e-9)  # half of 0.25 µV/bit
    np.testing.assert_allclose(rec.read(1, 100, 2500).T, b[100:], atol=0.125 + 1e-9)


def test_channel_selection(tmp_path):
    path = tmp_path / "rec.ns6"
    x = 40 * np.random.default_rng(0).standard_normal((3000, 40))
    write_nsx(path, [(0, x)])
    rec = open_recording(path, channels="1-3,40")
    assert list(rec.electrode_ids) == [1, 2, 3, 40]
    np.testing.assert_allclose(rec.read(0, 5, 2900), x[5:2900, [0, 1, 2, 39]].T, atol=0.125 + 1e-9)
    every = open_recording(path)
    np.testing.assert_array_equal(rec.read_raw(0, 5, 2900), every.read_raw(0, 5, 2900)[[0, 1, 2, 39]])
    assert list(parse_channels("5, 2-3", np.arange(1, 9))) == [2, 3, 5]
    with pytest.raises(SpikevaeError, match="matches none"):
        open_recording(path, channels="97-100")
    with pytest.raises(SpikevaeError, match="cannot read"):
        open_recording(path, channels="a-b")


def test_bad_files_give_one_line_errors(tmp_path):
    with pytest.raises(SpikevaeError, match="no such file"):
        open_recording(tmp_path / "missing.ns6")
    text = tmp_path / "notes.ns6"
    text.write_text("hello, this is not a recording")
    with pytest.raises(SpikevaeError, match="not a Blackrock"):
        open_recording(text)
    good = tmp_path / "cut.ns6"
    write_nsx(good, [(0, np.zeros((3000, 8)))])
    good.write_bytes(good.read_bytes()[:-1000])
    with pytest.raises(SpikevaeError, match="truncated"):
        open_recording(good)
