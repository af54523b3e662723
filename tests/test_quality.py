"""The quality label's metrics on spikes whose answer is known, and the label on a real sort."""
import numpy as np
import pytest

import spikevae
from spikevae.config import SortConfig
from spikevae.simulators.groundtruth import match_counts
from spikevae.sorting.metrics import isi_violations, l_ratio
from spikevae.io.reader import TICKS_PER_SECOND
from spikevae.sorting.quality import QualityParams, amplitude_cutoff, label, presence_ratio, qualify

from .conftest import as_spikes


def test_amplitude_cutoff_measures_the_share_cut_by_the_threshold():
    rng = np.random.default_rng(0)
    a = rng.normal(100, 10, 20_000)
    assert amplitude_cutoff(a) < 0.01
    assert abs(amplitude_cutoff(a[a > 100]) - 0.5) < 0.01      # half cut away
    assert 0.1 < amplitude_cutoff(a[a > 90]) < 0.25            # 16 % cut away


def test_presence_ratio_leaves_pauses_out():
    segments = [(0, 30_000 * 10), (30_000 * 100, 30_000 * 10)]  # 10 s, a 90 s pause, 10 s
    ticks = np.r_[np.arange(0, 300_000, 3000), np.arange(3_000_000, 3_300_000, 3000)]
    assert presence_ratio(ticks, segments, 20) == 1.0
    assert presence_ratio(ticks[:100], segments, 20) == 0.5    # fires in the first segment only


def test_l_ratio_separates_an_isolated_cluster_from_one_inside_the_other_spikes():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, (100, 3)), rng.normal(0, 1, (300, 3))
    inside = np.r_[np.ones(100, bool), np.zeros(300, bool)]
    assert l_ratio(np.r_[a, b + 10], inside) < 1e-3
    assert 1.2 < l_ratio(np.r_[a, b], inside) < 1.8    # half of 3× as many other spikes


def test_label_rule():
    p = SortConfig(band_hz=(250.0, 750.0)).quality
    m = {"l_ratio": 0.01, "presence_ratio": 1.0, "amplitude_cutoff": 0.05, "isi_violation_fraction": 0.0,
         "isi_violations": 0, "isi_violations_ratio": 0.0, "firing_rate_hz": 12.0, "snr": 8.0, "n_spikes": 720}
    assert label(m, p) == "good"
    assert label({**m, "amplitude_cutoff": 0.3}, p) == "mua"
    assert label({**m, "isi_violation_fraction": 0.05}, p) == "mua"
    assert label({**m, "l_ratio": 3.0}, p) == "noise"
    large = {**m, "snr": 20.0, "l_ratio": 2.0}                                     # a large unit with the
    assert label(large, p) == "mua"                                                # electrode's hash inside
    assert label({**large, "n_spikes": 40}, p) == "noise"                          # too few to tell
    assert label({**large, "l_ratio": 4.0}, p) == "noise"
    assert label({**m, "presence_ratio": 0.5}, p) == "noise"
    assert label({**m, "amplitude_cutoff": 0.5}, p) == "mua"                        # a slow unit, half cut
    assert label({**m, "amplitude_cutoff": 0.5, "firing_rate_hz": 60.0}, p) == "noise"  # hash
    assert label({**m, "amplitude_cutoff": 0.3, "firing_rate_hz": 60.0}, p) == "mua"
    assert label({**m, "snr": 4.0, "l_ratio": 0.5}, p) == "noise"                  # weak and not isolated
    assert label({**m, "snr": 4.0}, p) == "good"                                   # weak but isolated
    assert label({**m, "snr": 6.0, "l_ratio": 0.6, "n_spikes": 500}, p) == "noise"  # faint and not isolated
    assert label({**m, "snr": 6.0, "l_ratio": 0.6, "n_spikes": 50}, p) == "mua"    # too few to tell
    assert label({**m, "snr": 6.0, "l_ratio": 0.3}, p) == "mua"
    assert label({**m, "l_ratio": 0.5}, p) == "mua"
    mixed = {**m, "snr": 5.5, "isi_violations": 4, "isi_violations_ratio": 0.2}
    assert label(mixed, p) == "noise"                                              # several cells at the threshold
    assert label({**mixed, "isi_violations": 2}, p) == "good"                      # too few to tell
    assert label({**mixed, "snr": 7.0}, p) == "good"                               # large enough to be one cell
    assert label({**mixed, "isi_violations_ratio": 0.02}, p) == "good"
    wide = SortConfig(band_hz=(250.0, 7500.0)).quality                            # the band's own limit:
    assert label({**mixed, "isi_violations_ratio": 0.15}, wide) == "good"          # one cell with noise in it
    assert label({**mixed, "isi_violations_ratio": 0.3}, wide) == "noise"          # several cells
    with pytest.raises(ValueError, match="default_mixed_ratio"):
        label(m, QualityParams())


def test_isi_violations_ratio_is_a_half_for_random_trains_and_zero_for_a_neuron():
    rng = np.random.default_rng(4)
    rate = 40.0
    dead = int(0.001 * TICKS_PER_SECOND)       # the detector's 1 ms dead time
    poisson = np.cumsum(dead + rng.exponential(TICKS_PER_SECOND / rate, 20_000)).astype(np.int64)
    found = isi_violations(poisson, poisson[-1] / TICKS_PER_SECOND, dead_time_ms=1.0)
    assert found["isi_violations"] > 100 and 0.4 < found["isi_violations_ratio"] < 0.6  # SpikeInterface's scale
    assert found["isi_violation_fraction"] == found["isi_violations"] / (len(poisson) - 1)
    neuron = poisson + np.arange(len(poisson)) * dead   # the same train with a 2 ms refractory period
    found = isi_violations(neuron, neuron[-1] / TICKS_PER_SECOND, dead_time_ms=1.0)
    assert (found["isi_violations"], found["isi_violations_ratio"]) == (0, 0.0)


def test_qualify_leaves_noise_unsorted_and_renumbers():
    rng = np.random.default_rng(2)
    n = 400
    electrode = np.repeat([0, 1], n)
    space = np.r_[rng.normal(0, 1, (n // 2, 2)), rng.normal(8, 1, (n // 2, 2)), rng.normal(0, 1, (n, 2))]
    unit = np.r_[np.zeros(n // 2, int), np.ones(n // 2, int), np.full(n, -1)]
    unit[n:n + n // 4] = 2                     # electrode 1: a cluster amid 3× as many unsorted alike spikes
    ts = rng.permutation(np.arange(0, 600_000, 750))  # 25 ms apart: no refractory violations
    amp = rng.normal(100, 10, 2 * n)
    described = [{"snr": 10.0, "firing_rate_hz": 5.0, "n_spikes": 200, "isi_violation_fraction": 0.0,
                  "isi_violations": 0, "isi_violations_ratio": 0.0}] * 3
    spikes = as_spikes(np.zeros((2 * n, 48)), electrode, amplitude=amp, timestamp=ts, duration_s=20.0)
    new, kept, rows = qualify(unit, spikes, space, described, SortConfig().quality)
    assert kept == [0, 1] and [r["quality"] for r in rows] == ["good", "good"]  # the cluster amid the others: noise
    assert set(new[:n]) == {0, 1} and set(new[n:]) == {-1}


def test_units_csv_has_a_label_and_good_units_match_true_units(sorted_small):
    result, gt = sorted_small
    res = spikevae.load_result(result.out)
    units, spikes = res["units"], res["spikes"]
    assert {u["quality"] for u in units} <= {"good", "mua"} and sum(u["quality"] == "good" for u in units) >= 5
    keep = spikes["unit"] >= 0
    ids, n_sorted = np.unique(spikes["unit"][keep], return_counts=True)
    n_true = np.bincount(gt.unit, minlength=len(gt.unit_electrode))
    m = match_counts(gt.timestamp, gt.unit, len(n_true), spikes["timestamp"][keep], spikes["unit"][keep], ids)
    best = (m / (n_true[:, None] + n_sorted[None, :] - m)).max(axis=0)
    good = np.array([units[u]["quality"] == "good" for u in ids])
    assert (best[good] >= 0.5).all()
