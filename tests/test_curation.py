import dataclasses

import numpy as np
import pytest

import spikevae
from spikevae.sorting.curation import (CurationParams, curate, drop_echoes, follow_fraction, following, join_shrunk,
                                      locked_fraction, merge_bursts, recovered_share)
from spikevae.simulators.groundtruth import score
from spikevae.simulators.simulation import SimulationConfig, simulate

from .conftest import as_spikes, fast_config

RATE, DURATION = 10.0, 60.0
NARROW, WIDE = (250.0, 750.0), (250.0, 7500.0)


def narrow(**kw) -> CurationParams:
    """The curation of a 250–750 Hz sort, with ``kw`` changed."""
    return dataclasses.replace(spikevae.SortConfig(band_hz=NARROW).curation, **kw)


def poisson_ticks(rng, rate=RATE, duration=DURATION):
    return np.sort(rng.choice(int(duration * 30_000), int(rate * duration), replace=False))


def test_followers_stand_out_from_independent_spikes():
    rng = np.random.default_rng(0)
    big = poisson_ticks(rng)
    followers = np.sort(rng.choice(big, 200, replace=False) + rng.integers(90, 180, 200))  # 3–6 ms later
    frac, p, excess = follow_fraction(big, followers, DURATION, (2.0, 15.0))
    chance = -np.expm1(-RATE * 0.013)  # 1 − exp(−10 Hz × 13 ms) = 12 %
    assert frac == pytest.approx(1 - chance) and p < 1e-50 and excess == pytest.approx(1 - chance)
    frac, p, _ = follow_fraction(big, poisson_ticks(rng, 3.0), DURATION, (2.0, 15.0))
    assert abs(frac) < 0.05 and p > 1e-3


def _electrode(rng, big, small, small_shape, small_uv=70):
    """One electrode: a large unit (label 0, trough 100 µV) and a smaller cluster (label 1, 70 µV)."""
    shape = -np.hanning(48)
    wf = np.r_[np.tile(shape * 100, (len(big), 1)), np.tile(small_shape(shape) * small_uv, (len(small), 1))]
    labels = np.r_[np.zeros(len(big), int), np.ones(len(small), int)]
    return labels, np.r_[big, small], wf + rng.normal(0, 5, wf.shape)


def test_burst_followers_are_merged_and_independent_units_are_not():
    rng = np.random.default_rng(1)
    p = narrow()
    big = poisson_ticks(rng)
    followers = np.sort(rng.choice(big, 150, replace=False) + 120)  # 4 ms after
    labels, t, wf = _electrode(rng, big, followers, lambda s: s)
    assert set(merge_bursts(labels, t, wf, DURATION, p)) == {0}

    labels, t, wf = _electrode(rng, big, poisson_ticks(rng, 3.0), lambda s: s)
    np.testing.assert_array_equal(merge_bursts(labels, t, wf, DURATION, p), labels)

    # followers of another shape (a neighbour driven by the large unit) stay apart
    labels, t, wf = _electrode(rng, big, followers, lambda s: np.roll(s, 20))
    np.testing.assert_array_equal(merge_bursts(labels, t, wf, DURATION, p), labels)


def test_a_bursts_last_spikes_rejoin_their_unit_at_a_wide_band_only():
    # a burst's fourth spikes at 0.7³ ≈ 34 % of the first: under the narrow band's ringing limit
    rng = np.random.default_rng(4)
    big = poisson_ticks(rng)
    followers = np.sort(rng.choice(big, 150, replace=False) + 300)  # 10 ms after
    labels, t, wf = _electrode(rng, big, followers, lambda s: s, small_uv=34)
    np.testing.assert_array_equal(merge_bursts(labels, t, wf, DURATION, narrow()), labels)
    assert set(merge_bursts(labels, t, wf, DURATION, spikevae.SortConfig(band_hz=WIDE).curation)) == {0}


def test_only_the_followers_of_a_cluster_join_the_bursting_unit():
    # hash of the unit's shape that took 150 of its late burst spikes, beside 600 of its own
    rng = np.random.default_rng(3)
    big = poisson_ticks(rng)
    followers = np.sort(rng.choice(big, 150, replace=False) + 120)
    hash_ = poisson_ticks(rng, 10.0)
    labels, t, wf = _electrode(rng, big, np.r_[followers, hash_], lambda s: s)
    out = merge_bursts(labels, t, wf, DURATION, narrow())
    assert (out[len(big):len(big) + 150] == 0).all()
    late = out[len(big) + 150:] == 0   # the hash's own spikes that follow the unit by chance
    assert late.mean() < 0.25 and (out[len(big) + 150:][~late] == 1).all()
    whole = merge_bursts(labels, t, wf, DURATION, narrow(followers_only=False))
    assert set(whole) == {0}   # the former rule: the hash joins the unit with them


def _bursting_unit(rng, rate=15.0, late_ms=25.0):
    """A unit's spike times and which of them are small: bursts of 1–3 spikes 3–8 ms apart
    after half its spikes, and every spike within ``late_ms`` of the one before shrunk, as
    MEArec's cells are. Refractory: no two spikes closer than 2 ms."""
    first = poisson_ticks(rng, rate)
    late = [f + np.cumsum(rng.integers(90, 240, rng.integers(1, 4))) for f in first[rng.random(len(first)) < 0.5]]
    t = np.sort(np.r_[first, np.concatenate(late)])
    t = t[np.r_[True, np.diff(t) >= 60]]
    return t, np.r_[False, np.diff(t) < late_ms * 30]


@pytest.mark.parametrize("band", [NARROW, WIDE])
def test_a_bursting_units_second_mode_joins_whole_when_it_keeps_the_units_refractory_period(band):
    # Spikes 15–25 ms after the one before are small too, but follow no spike within the burst
    # lags: only the two trains' shared refractory period tells that they are one cell.
    params = spikevae.SortConfig(band_hz=band).curation
    rng = np.random.default_rng(8)
    t, small = _bursting_unit(rng)
    labels, t, wf = _electrode(rng, t[~small], t[small], lambda s: s, small_uv=55)
    slow = ~following(np.sort(t[labels == 0]), t, (2.0, 15.0)) & (labels == 1)
    assert slow.sum() > 200
    assert set(merge_bursts(labels, t, wf, DURATION, params)) == {0}
    former = dataclasses.replace(params, max_refractory_share=None)
    assert (merge_bursts(labels, t, wf, DURATION, former)[slow] == 1).all()
    # an independent unit that also fires 2–15 ms after the large one's spikes has the pairs of two cells
    other = np.sort(np.r_[poisson_ticks(rng, 15.0), rng.choice(t[labels == 0], 200) + rng.integers(60, 450, 200)])
    labels, t, wf = _electrode(rng, t[labels == 0], other, lambda s: s, small_uv=55)
    out = merge_bursts(labels, t, wf, DURATION, params)
    assert (out == 1).sum() > 0.6 * len(other)


def test_a_fast_units_hash_that_follows_it_a_little_more_than_chance_stays_apart():
    # A 20 Hz unit of a broad cell crosses again 2–4 ms after 250 of its spikes, into the hash
    # of its shape (60 Hz): 28 % of the hash follows it, 5 % beyond the 23 % of chance. Far
    # beyond chance in probability, far from a burst in share.
    rng = np.random.default_rng(6)
    big = poisson_ticks(rng, 20.0)
    late = np.sort(rng.choice(big, 250, replace=False) + rng.integers(60, 120, 250))
    labels, t, wf = _electrode(rng, big, np.r_[late, poisson_ticks(rng, 60.0)], lambda s: s)
    frac, p, _ = follow_fraction(np.sort(big), np.sort(t[labels == 1]), DURATION, (2.0, 15.0))
    assert p < 1e-6 and frac < narrow().min_follow_fraction
    np.testing.assert_array_equal(merge_bursts(labels, t, wf, DURATION, narrow()), labels)


def test_a_hash_cluster_whose_followers_are_mostly_chance_keeps_them():
    # A 25 Hz unit rings into its electrode's hash (20 Hz, its shape at 45 %) 2–3 ms after 200 of
    # its spikes: 10 % of the hash follows it beyond chance, yet 3 in 4 of the hash's followers
    # follow by chance; moving them would cost the unit more precision than it gains recall.
    rng = np.random.default_rng(7)
    big = poisson_ticks(rng, 25.0)
    echo = np.sort(rng.choice(big, 200, replace=False) + rng.integers(60, 90, 200))
    labels, t, wf = _electrode(rng, big, np.r_[echo, poisson_ticks(rng, 20.0)], lambda s: s, small_uv=45)
    frac, p, excess = follow_fraction(np.sort(big), np.sort(t[labels == 1]), DURATION, (2.0, 15.0))
    assert frac >= narrow().min_follow_fraction and p < 1e-6 and excess < narrow().min_excess_share
    np.testing.assert_array_equal(merge_bursts(labels, t, wf, DURATION, narrow()), labels)
    assert (merge_bursts(labels, t, wf, DURATION, narrow(min_excess_share=0.0)) == 0).sum() > len(big) + 300


def test_two_look_alikes_that_follow_each_other_do_not_trade_spikes_for_ever():
    # A (70 µV) fires; 1 ms later B (68 µV), 5 ms later a 40 µV burst spike clustered with B,
    # which follows both. Moving it into A shrinks A's mean under B's, and B could then take it
    # back: the sort of a simulated recording, started from its truth, once hung here.
    rng = np.random.default_rng(5)
    a = poisson_ticks(rng, 3.0)
    shape = -np.hanning(48)
    t = np.r_[a, a + 30, a + 150]
    wf = np.r_[np.tile(shape * 70, (len(a), 1)), np.tile(shape * 68, (len(a), 1)), np.tile(shape * 40, (len(a), 1))]
    labels = np.r_[np.zeros(len(a), int), np.ones(2 * len(a), int)]
    out = merge_bursts(labels, t, wf + rng.normal(0, 2, wf.shape), DURATION, narrow())
    assert (out[:len(a)] == 0).all() and (out[2 * len(a):] == 0).all()
    assert (out[len(a):2 * len(a)] == 1).mean() > 0.95  # but B's spikes that follow A's by chance


def test_units_at_the_threshold_are_left_unsorted_and_ids_renumbered():
    rng = np.random.default_rng(2)
    n = 300
    electrode = np.repeat([0, 1], n)
    amplitude = np.r_[rng.uniform(-40, -35, n // 2), rng.uniform(-120, -100, n // 2), rng.uniform(-90, -80, n)]
    unit = np.r_[np.zeros(n // 2, int), np.ones(n // 2, int), np.full(n, 2)]
    t = np.r_[poisson_ticks(rng, n / DURATION), poisson_ticks(rng, n / DURATION)]
    wf = np.zeros((2 * n, 48), np.float32)
    no_merge = narrow(min_shape_corr=2)
    out = curate(unit, as_spikes(wf, electrode, amplitude, t, threshold_uv=[35.0, 35.0], duration_s=DURATION), no_merge)
    # floor 1.25 × 35 = 43.75 µV: unit 0 (median ~37) goes; units 1 and 2 become 0 and 1
    np.testing.assert_array_equal(out, np.r_[np.full(n // 2, -1), np.zeros(n // 2, int), np.ones(n, int)])
    # a lone unit far above its threshold stays, however narrow its amplitude spread
    assert (out[electrode == 1] == 1).all()


def test_curation_drops_threshold_noise_units_and_keeps_real_ones(tmp_path):
    """A real recording of bursting units, sorted with and without curation."""
    path = tmp_path / "bursts.ns6"
    gt = simulate(path, SimulationConfig(n_electrodes=8, duration_s=40, seed=3, burst_fraction=1.0,
                                         burst_prob=0.5, units_per_electrode=(0.0, 1.0, 0.0, 0.0, 0.0)))
    off = CurationParams(min_follow_fraction=2.0, floor_ratio=0.0)
    scores = {}
    for name, cur in (("raw", off), ("curated", CurationParams())):
        r = spikevae.sort(path, fast_config(features="pca", curation=cur), out=tmp_path / name)
        sp = spikevae.load_result(r.out)["spikes"]
        scores[name] = score(gt, sp["timestamp"], sp["unit"])
    raw, cur = scores["raw"], scores["curated"]
    assert cur.well_detected >= raw.well_detected >= 1
    assert cur.n_sorted_units < raw.n_sorted_units
    assert cur.false_positive_units + cur.redundant_units < raw.false_positive_units + raw.redundant_units


def test_filter_echoes_are_left_unsorted_but_bursts_and_other_cells_are_not():
    rng = np.random.default_rng(3)
    big = poisson_ticks(rng, 20.0)
    echo = np.sort(rng.choice(big, 800, replace=False) + 62 + rng.integers(-2, 3, 800))  # 2.07 ms ± 0.07
    burst = np.sort(rng.choice(big, 300, replace=False) + rng.integers(75, 240, 300))   # 2.5–8 ms, varying
    other = poisson_ticks(rng, 10.0)                                                     # an independent cell
    assert locked_fraction(big, echo, (0.4, 5.0), 0.2) == 1.0
    assert locked_fraction(big, burst, (0.4, 5.0), 0.2) < 0.15
    assert locked_fraction(big, other, (0.4, 5.0), 0.2) < 0.05
    t = np.concatenate([big, echo, burst, other])
    labels = np.repeat([0, 1, 2, 3], [len(big), len(echo), len(burst), len(other)])
    amp = np.repeat([200.0, 40.0, 90.0, 60.0], [len(big), len(echo), len(burst), len(other)])
    out = drop_echoes(labels, t, amp, CurationParams())
    assert (out[labels == 1] == -1).all()
    assert (out[labels != 1] == labels[labels != 1]).all()
    louder = drop_echoes(labels, t, np.where(labels == 1, 120.0, amp), CurationParams())
    assert (louder == labels).all()  # as large as half its spike: not taken for an echo


@pytest.mark.parametrize("band", [NARROW, WIDE])
def test_a_cells_shrunk_spikes_join_it_whole_and_another_cell_of_its_shape_does_not(band):
    # Every spike within 40 ms of the one before is shrunk, as MEArec's cells are after up to
    # 100 ms: none of them ends a silence of 100 ms, and most follow no spike within the burst lags.
    params = spikevae.SortConfig(band_hz=band).curation
    rng = np.random.default_rng(11)
    t, small = _bursting_unit(rng, late_ms=40.0)
    share, p = recovered_share(t[~small], t[small], params.recovery_ms)
    assert share == 0.0 and p < 1e-10
    labels, t, wf = _electrode(rng, t[~small], t[small], lambda s: s, small_uv=60)
    assert len(set(join_shrunk(labels, t, wf, params))) == 1
    assert (join_shrunk(labels, t, wf, dataclasses.replace(params, max_recovered_share=None)) == labels).all()
    # a second bursting cell of the same shape and size ends silences with its bursts' first spikes
    other, _ = _bursting_unit(rng)
    assert recovered_share(t[labels == 0], other, params.recovery_ms)[0] > 0.4
    labels, t, wf = _electrode(rng, t[labels == 0], other, lambda s: s, small_uv=60)
    np.testing.assert_array_equal(join_shrunk(labels, t, wf, params), labels)


def test_noise_riding_a_large_spikes_side_lobe_is_not_taken_for_its_shrunk_spikes():
    # Events 1.5–2.5 ms after a large spike never end a silence either, but are its filter's echo.
    rng = np.random.default_rng(12)
    big = poisson_ticks(rng, 15.0)
    lobe = np.sort(rng.choice(big, 400, replace=False) + rng.integers(45, 75, 400))
    labels, t, wf = _electrode(rng, big, lobe, lambda s: s, small_uv=60)
    assert recovered_share(big, lobe, 100.0)[0] == 0.0
    np.testing.assert_array_equal(join_shrunk(labels, t, wf, narrow()), labels)


def test_a_units_echo_is_dropped_once_its_pieces_are_joined():
    # The echo follows 300 spikes of each of the unit's two pieces (and 200 events lie elsewhere):
    # locked to each piece it is 37.5 %, under min_echo_fraction; to the joined unit, 75 %.
    rng = np.random.default_rng(13)
    t, small = _bursting_unit(rng, late_ms=40.0)
    big, shrunk = t[~small], t[small]
    echo = np.sort(np.r_[rng.choice(big, 300, replace=False), rng.choice(shrunk, 300, replace=False)] + 62)
    stray = poisson_ticks(rng, 200 / DURATION)
    t = np.r_[big, shrunk, echo, stray]
    labels = np.repeat([0, 1, 2, 2], [len(big), len(shrunk), len(echo), len(stray)])
    shape = -np.hanning(48)
    wf = np.repeat([shape * 100, shape * 60, np.roll(shape, 12) * 15], np.bincount(labels), axis=0)
    wf = wf + rng.normal(0, 3, wf.shape)
    spikes = as_spikes(wf, amplitude=wf.min(axis=1), timestamp=t, threshold_uv=[10.0], duration_s=DURATION)
    params = dataclasses.replace(spikevae.SortConfig(band_hz=WIDE).curation, floor_ratio=0.0)
    out = curate(labels, spikes, params)
    assert (out[labels == 2] == -1).all() and len(np.unique(out[labels < 2])) == 1
    before = curate(labels, spikes, dataclasses.replace(params, echoes_after_join=False))
    assert (before[labels == 2] >= 0).all()


def test_results_written_before_the_shrunk_join_read_back_without_it():
    before = spikevae.SortConfig().to_dict()
    del before["curation"]["max_recovered_share"], before["curation"]["echoes_after_join"]
    former = spikevae.SortConfig.from_dict(before).curation
    assert former.max_recovered_share is None and not former.echoes_after_join
    now = spikevae.SortConfig.from_dict(spikevae.SortConfig().to_dict()).curation
    assert now.max_recovered_share == 0.2 and now.echoes_after_join
