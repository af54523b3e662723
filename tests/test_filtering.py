import numpy as np
import pytest
from scipy import signal

from spikevae.errors import SpikevaeError
from spikevae.sorting.filtering import BandpassFilter, design_bandpass
from spikevae.io.nsx_writer import write_nsx
from spikevae.io.reader import open_recording


@pytest.fixture
def two_segments(tmp_path):
    rng = np.random.default_rng(1)
    t = np.arange(70_000)[:, None] / 30_000
    a = 30 * rng.standard_normal((70_000, 3)) + 200 * np.sin(2 * np.pi * 3 * t) + 20 * np.sin(2 * np.pi * 60 * t)
    b = 30 * rng.standard_normal((20_000, 3)) + 500  # a DC jump after the pause
    path = tmp_path / "f.ns6"
    write_nsx(path, [(0, a), (120_000, b)])
    return open_recording(path)


@pytest.mark.parametrize("band,order", [((250, 750), 4), ((250, 7500), 3), ((300, 3000), 2)])
def test_chunked_filter_matches_whole_segment_and_filtfilt(two_segments, band, order):
    rec = two_segments
    filt = BandpassFilter(rec, *band, order)
    for seg in rec.segments:
        whole = filt.filter_range(seg.index, 0, seg.n_samples)
        pieces = np.concatenate([c.data for c in filt.chunks(6_000) if c.segment == seg.index], axis=1)
        assert pieces.shape == whole.shape
        assert np.abs(pieces - whole).max() < 0.01  # µV: float32 rounding; one ADC bit is 0.25 µV
        # away from the segment's ends (where each pads in its own way) it is filtfilt's output
        want = signal.sosfiltfilt(filt.sos, rec.read(seg.index, 0, seg.n_samples), axis=1)
        inner = slice(filt.margin, -filt.margin)
        assert np.abs(whole[:, inner] - want[:, inner]).max() < 0.01


def test_chunks_carry_context_and_never_cross_a_pause(two_segments):
    filt = BandpassFilter(two_segments, 250, 750, 4)
    chunks = list(filt.chunks(30_000, context=100))
    assert [(c.segment, c.start, c.stop) for c in chunks] == [
        (0, 0, 30_000), (0, 30_000, 60_000), (0, 60_000, 70_000), (1, 0, 20_000)]
    assert chunks[1].lo == 29_900 and chunks[1].data.shape[1] == 30_200
    # the second segment filters as if it were alone: its DC jump leaves no trace in it
    seg1 = filt.filter_range(1, 0, 20_000)
    assert abs(float(np.median(seg1))) < 1.0


def test_bad_band_is_a_user_error():
    with pytest.raises(SpikevaeError, match="--band"):
        design_bandpass(750, 250, 4, 30_000)
    with pytest.raises(SpikevaeError, match="--band"):
        design_bandpass(250, 16_000, 4, 30_000)
