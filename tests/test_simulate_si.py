import numpy as np
import pytest
from scipy import signal

import spikevae
from spikevae.simulators.groundtruth import score
from spikevae.io.reader import open_recording

pytest.importorskip("spikeinterface")
from spikevae.simulators.simulate_si import HARD, STRESS, SIUtahConfig, simulate_si  # noqa: E402

from .conftest import fast_config  # noqa: E402
from .test_simulate import stress_pairs  # noqa: E402


@pytest.fixture(scope="module")
def si_recording(tmp_path_factory):
    path = tmp_path_factory.mktemp("si") / "si.ns6"
    gt = simulate_si(path, SIUtahConfig(n_electrodes=8, duration_s=12.0, seed=5, rate_hz=(5.0, 25.0),
                                        amplitude_uv=(100.0, 350.0), units_per_electrode=(0.0, 0.5, 0.5)))
    return path, gt


def test_written_through_neo_with_pauses_and_troughs_at_the_true_ticks(si_recording):
    path, gt = si_recording
    rec = open_recording(path)
    assert rec.n_channels == 8 and len(rec.segments) == 2
    assert rec.segments[1].start_tick > rec.segments[0].start_tick + rec.segments[0].n_samples  # a pause
    sos = signal.butter(4, (250, 7500), btype="bandpass", fs=30_000, output="sos")
    big = int(np.argmax(gt.unit_amplitude_uv))
    seg = rec.segments[0]
    y = signal.sosfiltfilt(sos, rec.read(0, 0, seg.n_samples), axis=1)[gt.unit_electrode[big] - 1]
    ticks = gt.timestamp[(gt.unit == big) & (gt.timestamp > 50) & (gt.timestamp < seg.n_samples - 50)]
    mean = y[ticks[:, None] + np.arange(-20, 21)].mean(axis=0)
    assert abs(int(np.argmin(mean)) - 20) <= 1          # the trough sits at the true tick
    assert -mean.min() > 0.5 * gt.unit_amplitude_uv[big]
    other = (gt.unit_electrode[big] % 8)                # its neighbour on the grid sees nothing of it
    y2 = signal.sosfiltfilt(sos, rec.read(0, 0, seg.n_samples), axis=1)[other]
    assert np.abs(y2[ticks[:, None] + np.arange(-20, 21)].mean(axis=0)).max() < 0.1 * -mean.min()


def test_hard_setting_has_lookalikes_and_bursts(tmp_path):
    gt = simulate_si(tmp_path / "h.ns6", SIUtahConfig(n_electrodes=10, duration_s=10.0, seed=2, **HARD))
    tpl = gt.unit_template / -gt.unit_template.min(axis=1, keepdims=True)
    close = [np.abs(tpl[a] - tpl[b]).max() for a in range(len(tpl)) for b in range(a + 1, len(tpl))
             if gt.unit_electrode[a] == gt.unit_electrode[b]]
    assert min(close) < 0.15
    short = [np.mean(np.diff(gt.timestamp[gt.unit == u]) < 8.5 * 30) for u in range(len(tpl))
             if (gt.unit == u).sum() > 20]
    assert max(short) > 0.1


def test_stress_setting_has_similar_neighbours_and_slow_units_beside_fast_ones(tmp_path):
    gt = simulate_si(tmp_path / "s.ns6", SIUtahConfig(n_electrodes=16, duration_s=2.0, seed=3, **STRESS))
    ratio = stress_pairs(gt)
    assert (ratio[:, 0] > 0.7).mean() > 0.3
    assert (ratio[:, 1] < 0.3).sum() >= 3
    tpl = gt.unit_template / -gt.unit_template.min(axis=1, keepdims=True)
    el = gt.unit_electrode
    assert max(np.abs(tpl[a] - tpl[b]).max() for a in range(len(tpl)) for b in range(a + 1, len(tpl))
               if el[a] == el[b]) > 0.1  # neighbours differ in shape, not look-alikes


def test_spikevae_sorts_the_other_family(si_recording, tmp_path):
    path, gt = si_recording
    r = spikevae.sort(path, fast_config(band_hz=(250, 7500)), out=tmp_path / "out")
    sp = spikevae.load_result(r.out)["spikes"]
    s = score(gt, sp["timestamp"], sp["unit"])
    assert s.well_detected >= 0.6 * len(gt.unit_electrode)
