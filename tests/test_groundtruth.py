import numpy as np

from spikevae.simulators.groundtruth import GroundTruth, score


def _gt(ts, unit, n_units):
    z = np.zeros(n_units)
    return GroundTruth(timestamp=np.asarray(ts, np.int64), unit=np.asarray(unit, np.int64),
                       unit_electrode=np.arange(1, n_units + 1), unit_amplitude_uv=z, unit_rate_hz=z,
                       unit_snr=z + 10, unit_template=np.zeros((n_units, 64)))


def test_perfect_sorting_scores_one_and_jitter_within_0_4_ms_still_matches():
    ts = np.arange(0, 300_000, 1000)
    unit = np.arange(len(ts)) % 3
    s = score(_gt(ts, unit, 3), ts + 11, unit + 10)
    assert s.well_detected == 3 and np.allclose(s.accuracy, 1.0)
    assert list(s.matched_unit) == [10, 11, 12]
    s = score(_gt(ts, unit, 3), ts + 13, unit)  # 13 ticks > 0.4 ms: nothing matches
    assert s.well_detected == 0 and s.false_positive_units == 3


def test_accuracy_counts_misses_and_false_positives():
    ts = np.arange(0, 100_000, 1000)  # 100 true spikes of one unit
    found = np.concatenate([ts[:80], np.arange(500, 20_500, 1000)])  # 80 hits + 20 false
    s = score(_gt(ts, np.zeros(100), 1), found, np.zeros(len(found)))
    assert np.isclose(s.accuracy[0], 80 / 120)  # tp / (tp + fn + fp) = 80 / (80 + 20 + 20)
    assert np.isclose(s.recall[0], 0.8) and np.isclose(s.precision[0], 0.8)
    unsorted = score(_gt(ts, np.zeros(100), 1), ts, -np.ones(100))
    assert unsorted.n_sorted_units == 0 and unsorted.accuracy[0] == 0
