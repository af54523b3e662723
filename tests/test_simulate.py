from pathlib import Path

import numpy as np

from spikevae.groundtruth import GroundTruth
from spikevae.simulate import HARD, SimulationConfig, simulate

SAMPLE = Path(__file__).parent.parent / "sample_data" / "sample16.ns6"


def test_the_bundled_sample_is_the_simulator_output_for_its_seed(tmp_path):
    simulate(tmp_path / "s.ns6", SimulationConfig(n_electrodes=16, duration_s=20.0, n_segments=2, seed=7))
    assert (tmp_path / "s.ns6").read_bytes() == SAMPLE.read_bytes()
    ours, bundled = np.load(tmp_path / "s.gt.npz"), np.load(SAMPLE.with_name("sample16.gt.npz"))
    assert ours.files == bundled.files
    for name in ours.files:  # the floats' last bits follow numpy's build (SIMD sums), so not bytes
        np.testing.assert_allclose(ours[name], bundled[name], rtol=1e-12, atol=0, err_msg=name)


def test_refractory_trains_bursts_and_lookalikes(tmp_path):
    cfg = SimulationConfig(n_electrodes=12, duration_s=20.0, seed=4, **HARD)
    gt = simulate(tmp_path / "h.ns6", cfg)
    per_electrode = np.bincount(gt.unit_electrode, minlength=13)[1:]
    assert per_electrode.max() <= 4 and (per_electrode >= 3).any()
    isis = [np.diff(gt.timestamp[gt.unit == u]) for u in range(len(gt.unit_electrode))]
    assert min(i.min() for i in isis if len(i)) >= cfg.refractory_ms * 30
    short = [np.mean(i < 6.5 * 30) for i in isis if len(i) > 20]
    assert max(short) > 0.1  # some units burst (ISIs of 3-6 ms)
    tpl = gt.unit_template / -gt.unit_template.min(axis=1, keepdims=True)
    close = [np.abs(tpl[a] - tpl[b]).max() for a in range(len(tpl)) for b in range(a + 1, len(tpl))
             if gt.unit_electrode[a] == gt.unit_electrode[b]]
    assert min(close) < 0.15  # a look-alike: nearly the same shape on one electrode


def test_unit_seed_keeps_units_across_sessions_and_scale_drifts_them(tmp_path):
    a = simulate(tmp_path / "a.ns6", SimulationConfig(n_electrodes=6, duration_s=3.0, seed=1, unit_seed=9))
    b = simulate(tmp_path / "b.ns6", SimulationConfig(n_electrodes=6, duration_s=3.0, seed=2, unit_seed=9,
                                                       amplitude_scale=1.1))
    np.testing.assert_array_equal(a.unit_electrode, b.unit_electrode)
    np.testing.assert_allclose(b.unit_amplitude_uv, 1.1 * a.unit_amplitude_uv)
    assert not np.array_equal(a.timestamp[:50], b.timestamp[:50])
    assert GroundTruth.load(tmp_path / "b.gt.npz").unit_snr.shape == b.unit_snr.shape
