import dataclasses
from pathlib import Path

import numpy as np
import pytest

from spikevae.config import SortConfig
from spikevae.sorting.detection import estimate_noise
from spikevae.sorting.filtering import BandpassFilter
from spikevae.io.reader import open_recording
from spikevae.sorting.splitting import _two_groups, join_units, split_units
from spikevae.sorting.whitening import whitener

from .conftest import as_spikes, band_noise

SAMPLE = Path(__file__).parent.parent / "sample_data" / "sample16.ns6"
N = 48


def test_the_noise_autocorrelation_is_measured_from_the_file_and_follows_the_band():
    rec = open_recording(SAMPLE)
    narrow = estimate_noise(BandpassFilter(rec, 250, 750, 4)).autocorr
    wide = estimate_noise(BandpassFilter(rec, 250, 7500, 4)).autocorr
    assert narrow.shape == wide.shape == (rec.n_channels, N)
    np.testing.assert_allclose(narrow[:, 0], 1.0)
    # A 500 Hz-wide band keeps neighbouring samples far more alike than a 7 kHz-wide one.
    assert (narrow[:, 5] > 0.8).all() and (wide[:, 5] < 0.7).all()


def _template(stretch=1.0, shift=0.0):
    t = (np.arange(N) - 16 - shift) / stretch
    return -np.exp(-0.5 * (t / 2.0) ** 2) + 0.35 * np.exp(-0.5 * ((t - 9) / 4.0) ** 2)


@pytest.mark.parametrize("band", [(250, 750), (250, 7500)])
def test_two_lookalikes_in_one_unit_are_split_but_one_jittered_neuron_is_not(band):
    params = SortConfig(band_hz=band).split
    rng = np.random.default_rng(0)
    big, small = 400, 200
    noise, ac = band_noise(rng, big + small)
    autocorr = {0: ac}
    wf = np.concatenate([10 * _template() * rng.lognormal(0, 0.05, (big, 1)),
                         7.5 * _template(1.1) * rng.lognormal(0, 0.05, (small, 1))]) + noise
    truth = np.r_[np.zeros(big), np.ones(small)]
    unit = split_units(np.zeros(len(wf), int), as_spikes(wf, autocorr=autocorr), params)
    assert len(np.unique(unit)) == 2
    assert max(np.mean(unit == truth), np.mean(unit != truth)) > 0.85

    # Trough alignment off by up to a sample either way: BIC alone cuts this neuron in three
    # pieces (289, 143 and 168 spikes with min_amplitude_ratio=1); their equal troughs, and
    # shapes that differ only along the mean's time derivative, keep it whole.
    one = np.stack([10 * _template(shift=s) for s in rng.uniform(-1, 1, big + small)]) + noise
    kept = split_units(np.zeros(len(one), int), as_spikes(one, autocorr=autocorr), params)
    assert (kept == 0).all()
    off = split_units(np.zeros(len(wf), int), as_spikes(wf, autocorr=autocorr),
                      dataclasses.replace(params, enabled=False))
    assert (off == 0).all()


def test_a_broad_neuron_cut_at_whole_samples_either_way_is_not_split():
    # A broad trough (seen from afar) is cut wherever the noise makes it deepest: here up to two
    # samples either way. Its shifted copies differ beyond the mean's time derivative, and the
    # shape test cut it in four; moved back to its mean first, it stays whole.
    params = SortConfig(band_hz=(250, 7500)).split
    rng = np.random.default_rng(0)
    noise, ac = band_noise(rng, 600)
    one = np.stack([20 * _template(stretch=2.0, shift=s) for s in rng.integers(-2, 3, 600)]) \
        * rng.lognormal(0, 0.05, (600, 1)) + noise
    spikes = as_spikes(one, autocorr={0: ac})
    assert (split_units(np.zeros(600, int), spikes, params) == 0).all()
    assert len(np.unique(split_units(np.zeros(600, int), spikes, dataclasses.replace(params, max_shift=0)))) == 4


def test_a_broad_neuron_with_a_sharp_flank_cut_anywhere_between_samples_is_not_split():
    # A sharp peak before the broad trough: moved to its mean by whole samples only, a spike's
    # peak stays up to half a sample off, and the shape test cuts the neuron in four; moved in
    # quarter samples, it stays whole.
    params = SortConfig(band_hz=(250, 7500)).split
    rng = np.random.default_rng(0)
    noise, ac = band_noise(rng, 600)
    t = np.arange(N) - 16 - rng.uniform(-2, 2, (600, 1))
    one = 20 * (-np.exp(-0.5 * (t / 4.0) ** 2) + np.exp(-0.5 * ((t + 7) / 1.2) ** 2)
                + 0.35 * np.exp(-0.5 * ((t - 12) / 5.0) ** 2)) * rng.lognormal(0, 0.05, (600, 1)) + noise
    spikes = as_spikes(one, autocorr={0: ac})
    assert params.shift_step == 0.25 and (split_units(np.zeros(600, int), spikes, params) == 0).all()
    whole = dataclasses.replace(params, shift_step=1.0)
    assert len(np.unique(split_units(np.zeros(600, int), spikes, whole))) == 4


@pytest.mark.parametrize("band", [(250, 750), (250, 7500)])
def test_two_neurons_of_equal_trough_and_different_shape_are_split_when_both_have_the_spikes(band):
    params = SortConfig(band_hz=band).split
    rng = np.random.default_rng(1)
    noise, ac = band_noise(rng, 600)
    wf = np.concatenate([10 * _template() * rng.lognormal(0, 0.05, (300, 1)),
                         10 * _template(1.3) * rng.lognormal(0, 0.05, (300, 1))]) + noise
    truth = np.r_[np.zeros(300), np.ones(300)]
    unit = split_units(np.zeros(600, int), as_spikes(wf, autocorr={0: ac}), params)
    assert len(np.unique(unit)) == 2 and max(np.mean(unit == truth), np.mean(unit != truth)) > 0.9
    # equal troughs alone never split them (the rule before min_alike_spikes)
    alike = dataclasses.replace(params, min_alike_spikes=10**9)
    assert (split_units(np.zeros(600, int), as_spikes(wf, autocorr={0: ac}), alike) == 0).all()
    # nor do they when one piece has fewer spikes than min_alike_spikes
    few = np.r_[np.arange(300), 300 + np.arange(params.min_alike_spikes - 10)]
    unit = split_units(np.zeros(len(few), int), as_spikes(wf[few], autocorr={0: ac}), params)
    assert (unit == 0).all()


def test_a_piece_of_a_split_unit_loses_no_small_fragment_to_the_trough_ratio():
    # 300 spikes and 30 of twice their size: a unit's first test splits them off by the trough
    # ratio; a piece of a unit split before keeps them (a large unit's outliers, mostly)
    params = SortConfig(band_hz=(250, 750)).split
    rng = np.random.default_rng(0)
    noise, ac = band_noise(rng, 330)
    raw = np.concatenate([10 * _template() * rng.lognormal(0, 0.05, (300, 1)),
                          20 * _template() * rng.lognormal(0, 0.05, (30, 1))]) + noise
    w = whitener(ac, N, params.shrinkage)
    mean = raw.mean(axis=0)
    args = (raw @ w, np.abs(raw[:, 16]), np.stack([mean, np.gradient(mean)]) @ w, params, 0)
    first = _two_groups(*args)
    assert first is not None and sorted([first.sum(), (~first).sum()]) == [30, 300]
    assert _two_groups(*args, again=True) is None


def test_a_small_lookalike_pair_is_split_with_the_pieces_sharing_a_covariance():
    # 60 and 40 spikes, troughs 6 and 8.5 noise SD: BIC charges two full covariances more than
    # so few spikes repay; two look-alikes share their electrode's noise, so one covariance
    params = SortConfig(band_hz=(250, 7500)).split
    splits = {"tied": 0, "full": 0}
    for seed in range(10):
        rng = np.random.default_rng(seed)
        noise, ac = band_noise(rng, 100)
        wf = np.concatenate([6 * _template() * rng.lognormal(0, 0.05, (60, 1)),
                             8.5 * _template(1.1) * rng.lognormal(0, 0.05, (40, 1))]) + noise
        for cov in splits:
            unit = split_units(np.zeros(100, int), as_spikes(wf, autocorr={0: ac}),
                               dataclasses.replace(params, covariance=cov))
            splits[cov] += len(np.unique(unit)) == 2
    assert params.covariance == "tied"
    assert splits["tied"] >= 7 and splits["full"] <= 3


def test_electrodes_split_on_two_processes_as_on_one_and_new_units_follow_the_old():
    params = SortConfig(band_hz=(250, 7500)).split
    rng = np.random.default_rng(0)
    wf, electrode, autocorr = [], [], {}
    for ch in range(3):  # a look-alike pair, one neuron, a look-alike pair
        noise, autocorr[ch] = band_noise(rng, 600)
        if ch == 1:
            x = 10 * _template() * rng.lognormal(0, 0.05, (600, 1))
        else:
            x = np.concatenate([10 * _template() * rng.lognormal(0, 0.05, (400, 1)),
                                7.5 * _template(1.1) * rng.lognormal(0, 0.05, (200, 1))])
        wf.append(x + noise)
        electrode.append(np.full(600, ch))
    wf, electrode = np.concatenate(wf), np.concatenate(electrode)
    unit = electrode.copy()  # one unit per electrode, ids 0-2
    one, two = (split_units(unit, as_spikes(wf, electrode, autocorr=autocorr), params, workers=w) for w in (1, 2))
    np.testing.assert_array_equal(one, two)
    assert sorted(np.unique(two[electrode == 0])) == [0, 3]
    assert sorted(np.unique(two[electrode == 1])) == [1]
    assert sorted(np.unique(two[electrode == 2])) == [2, 4]


def test_a_broad_neuron_cut_by_where_its_trough_fell_is_joined_but_two_neurons_are_not():
    # The mixture cuts a broad neuron by where the noise put its trough: here the spikes whose
    # trough fell early apart from those whose trough fell late. Realigned together they show no
    # valley and join; two neurons of equal trough and different shape, or of one shape and
    # troughs 25 % apart, stay two.
    params = SortConfig(band_hz=(250, 7500)).split
    rng = np.random.default_rng(0)
    noise, ac = band_noise(rng, 600)
    shift = rng.integers(-2, 3, 600)
    broad = np.stack([20 * _template(stretch=2.0, shift=s) for s in shift]) * rng.lognormal(0, 0.05, (600, 1)) + noise
    cut = (shift > 0).astype(int)
    joined = join_units(cut, as_spikes(broad, autocorr={0: ac}), params)
    assert len(np.unique(joined)) == 1
    off = join_units(cut, as_spikes(broad, autocorr={0: ac}), dataclasses.replace(params, join_valley=2.0))
    np.testing.assert_array_equal(off, cut)

    truth = np.r_[np.zeros(300, int), np.ones(300, int)]
    shapes = np.concatenate([10 * _template() * rng.lognormal(0, 0.05, (300, 1)),
                             10 * _template(1.3) * rng.lognormal(0, 0.05, (300, 1))]) + noise
    sizes = np.concatenate([10 * _template() * rng.lognormal(0, 0.05, (300, 1)),
                            7.5 * _template() * rng.lognormal(0, 0.05, (300, 1))]) + noise
    for wf in (shapes, sizes):
        np.testing.assert_array_equal(join_units(truth, as_spikes(wf, autocorr={0: ac}), params), truth)


def test_results_written_before_the_join_read_back_without_it():
    wide = SortConfig(band_hz=(250, 7500))
    assert wide.split.join_valley == 0.95 and SortConfig().split.join_valley > 1
    before = wide.to_dict()
    del before["split"]["join_valley"]
    assert SortConfig.from_dict(before).split.join_valley > 1
