import numpy as np
from scipy import signal

from spikevae.sorting.detection import (DetectionParams, Detector, detect, estimate_noise, realign_waveforms,
                                subsample_waveforms)
from spikevae.sorting.filtering import BandpassFilter
from spikevae.io.nsx_writer import write_nsx
from spikevae.io.reader import open_recording

from .conftest import noise_with_spikes


def test_injected_spikes_are_found_at_their_times_and_aligned(tmp_path):
    x, ticks = noise_with_spikes()
    path = tmp_path / "inj.ns6"
    write_nsx(path, [(1000, x)])
    rec = open_recording(path)
    params = DetectionParams(threshold=5.0)
    found = detect(BandpassFilter(rec, 250, 7500, 3), params, tmp_path / "work")
    ts = np.asarray(found.store.column("timestamp")) - 1000
    el = np.asarray(found.store.column("electrode"))
    assert set(el) == {1}
    assert len(ts) == len(ticks)
    assert np.abs(ts - ticks).max() <= 2  # the filtered trough sits within 2 samples of the true one
    wf = np.asarray(found.store.column("waveform"))
    assert wf.shape == (len(ticks), 48)
    assert (wf.argmin(axis=1) == params.align_sample).all()
    assert np.all(np.diff(ts) > 0)  # stored in time order


def test_waveforms_are_aligned_to_a_fraction_of_a_sample():
    # one band-limited spike shape whose trough falls at a different fraction of a sample each
    # time: cut at the whole sample the copies differ, resampled they are the same waveform
    sos = signal.butter(4, (250, 7500), btype="bandpass", fs=30_000, output="sos")
    fine = signal.sosfiltfilt(sos, np.r_[np.zeros(800), -np.hanning(60), np.zeros(800)])  # 10× upsampled
    trough = int(fine.argmin())
    phases = np.arange(10)
    y = np.stack([fine[(trough + p) % 10::10] for p in phases]).astype(np.float32)
    pos = np.abs(y).argmax(axis=1)
    ch = np.arange(len(y))
    whole = y[ch[:, None], pos[:, None] - 11 + np.arange(48)]
    sub = subsample_waveforms(y, -y, ch, pos, 11, 48)
    scale = np.abs(whole).max()
    assert np.abs(whole - whole.mean(axis=0)).max() > 0.2 * scale
    assert np.abs(sub - sub.mean(axis=0)).max() < 0.05 * scale
    assert np.all(sub.argmin(axis=1) == 11)


def test_waveforms_cut_elsewhere_are_moved_to_their_trough():
    # one band-limited spike cut as a recording system cuts it: its trough 1-6 samples after
    # sample 10, at 10 phases between samples each
    sos = signal.butter(4, (250, 5000), btype="bandpass", fs=30_000, output="sos")
    fine = signal.sosfiltfilt(sos, np.r_[np.zeros(800), -np.hanning(60), np.zeros(800)])  # 10× upsampled
    trough = int(fine.argmin())
    cuts = np.stack([fine[trough - 10 * k - p:][::10][:48] for k in range(11, 16) for p in range(10)])
    assert set(cuts.argmin(axis=1)) == set(range(11, 17))
    moved = realign_waveforms(cuts.astype(np.float32), "neg", 11)
    scale = np.abs(cuts).max()
    assert np.all(moved.argmin(axis=1) == 11)
    assert np.abs(moved - moved.mean(axis=0)).max() < 0.05 * scale
    # the trough between two samples is found again, where a whole-sample cut misses up to 10 % of it
    assert cuts.min(axis=1).max() > 0.95 * fine.min()
    np.testing.assert_allclose(moved.min(axis=1), fine.min(), rtol=0.02)


def test_the_threshold_defaults_to_the_bands_own(tmp_path):
    x, _ = noise_with_spikes()
    path = tmp_path / "inj.ns6"
    write_nsx(path, [(0, x)])
    rec = open_recording(path)
    for band, want in (((250, 750), 3.25), ((250, 7500), 3.5)):
        found = detect(BandpassFilter(rec, *band, 3), DetectionParams(), tmp_path / f"work{band[1]}")
        np.testing.assert_allclose(found.threshold_uv, want * found.noise.noise_uv)


def test_common_mode_and_oversized_events_are_rejected_and_counted(tmp_path):
    x, ticks = noise_with_spikes()
    t = np.arange(60)
    transient = -400 * np.exp(-t / 8.0) * np.cos(2 * np.pi * t / 20)
    for k in (10_000, 40_000, 70_000):
        x[k:k + 60, :] += transient[:, None]
    x[20_000:20_050, 2] -= 5000 * np.hanning(50)  # one impossible event on one electrode
    path = tmp_path / "art.ns6"
    write_nsx(path, [(0, x)])
    rec = open_recording(path)
    found = detect(BandpassFilter(rec, 250, 7500, 3), DetectionParams(threshold=5.0), tmp_path / "work")
    c = found.counts
    assert c["rejected_common_mode"] >= 3 * 4  # every electrode, three transients
    assert c["rejected_amplitude"] >= 1
    assert c["kept"] == c["detected"] - c["rejected_common_mode"] - c["rejected_amplitude"]
    ts = np.asarray(found.store.column("timestamp"))
    assert not np.any(np.abs(ts[:, None] - np.array([10_000, 40_000, 70_000])[None]) < 30)


def test_flat_and_saturated_electrodes_are_skipped(tmp_path):
    x, _ = noise_with_spikes()
    x[:, 0] = 0.0
    x[::3, 3] = 9000.0  # a third of the samples on the rail
    path = tmp_path / "bad.ns6"
    write_nsx(path, [(0, x)])
    rec = open_recording(path)
    filt = BandpassFilter(rec, 250, 7500, 3)
    noise = estimate_noise(filt)
    assert set(noise.skipped) == {0, 3}
    assert "flat" in noise.skipped[0] and "saturated" in noise.skipped[3]
    det = Detector(DetectionParams(threshold=3.5), noise)
    events, _ = det.events(next(filt.chunks(90_000, det.context)))
    assert not np.isin(events["electrode"], [0, 3]).any()


def test_local_maxima_equal_a_maximum_filter_over_every_sample():
    from scipy import ndimage, signal

    from spikevae.sorting.detection import local_maxima

    rng = np.random.default_rng(0)
    sos = signal.butter(4, (250, 750), "bandpass", fs=30_000, output="sos")
    s = -signal.sosfiltfilt(sos, rng.standard_normal((6, 200_000)), axis=1).astype(np.float32)
    thr = np.full(6, 2.5 * np.median(np.abs(s)) / 0.6745, np.float32)
    for dead in (5, 30):
        want = np.nonzero((s >= thr[:, None]) & (s == ndimage.maximum_filter1d(s, 2 * dead + 1, axis=1)))
        got = local_maxima(s, thr, dead)
        assert len(got[0]) > 100
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
