from pathlib import Path

import numpy as np
from click.testing import CliRunner

from spikevae.cli import main
from spikevae.simulators.groundtruth import GroundTruth
from spikevae.io.reader import open_recording
from spikevae.simulators.simulation import HARD, STRESS, SimulationConfig, simulate

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


def stress_pairs(gt):
    """(amplitude ratio, rate ratio) of every electrode's largest unit against each other unit."""
    out = []
    for e in np.unique(gt.unit_electrode):
        on = np.flatnonzero(gt.unit_electrode == e)
        big = on[np.argmax(gt.unit_amplitude_uv[on])]
        out += [(gt.unit_amplitude_uv[u] / gt.unit_amplitude_uv[big], gt.unit_rate_hz[u] / gt.unit_rate_hz[big])
                for u in on if u != big]
    return np.array(out)


def test_stress_setting_has_similar_neighbours_and_slow_units_beside_fast_ones(tmp_path):
    gt = simulate(tmp_path / "s.ns6", SimulationConfig(n_electrodes=16, duration_s=2.0, seed=3, **STRESS))
    ratio = stress_pairs(gt)
    assert (ratio[:, 0] > 0.7).mean() > 0.3            # neighbours nearly as large as the largest
    assert (ratio[:, 1] < 0.3).sum() >= 3              # slow units beside a fast large one
    assert gt.unit_rate_hz.min() < 3.0
    standard = simulate(tmp_path / "d.ns6", SimulationConfig(n_electrodes=16, duration_s=2.0, seed=3))
    assert (stress_pairs(standard)[:, 0] > 0.7).mean() < (ratio[:, 0] > 0.7).mean()


def test_unit_seed_keeps_units_across_sessions_and_scale_drifts_them(tmp_path):
    a = simulate(tmp_path / "a.ns6", SimulationConfig(n_electrodes=6, duration_s=3.0, seed=1, unit_seed=9))
    b = simulate(tmp_path / "b.ns6", SimulationConfig(n_electrodes=6, duration_s=3.0, seed=2, unit_seed=9,
                                                       amplitude_scale=1.1))
    np.testing.assert_array_equal(a.unit_electrode, b.unit_electrode)
    np.testing.assert_allclose(b.unit_amplitude_uv, 1.1 * a.unit_amplitude_uv)
    assert not np.array_equal(a.timestamp[:50], b.timestamp[:50])
    assert GroundTruth.load(tmp_path / "b.gt.npz").unit_snr.shape == b.unit_snr.shape


def test_subsample_timing_draws_each_spike_at_its_own_phase(tmp_path):
    quiet = dict(n_electrodes=2, duration_s=4.0, seed=5, units_per_electrode=(0.0, 1.0), rate_hz=(2.0, 3.0),
                 amplitude_jitter=0.0, noise_uv=0.01, hash_rate_hz=0.0, lfp_uv=0.0, line_uv=0.0, artifact_rate_hz=0.0)
    cuts = {}
    for on in (False, True):
        path = tmp_path / f"{on}.ns6"
        gt = simulate(path, SimulationConfig(subsample_timing=on, **quiet))
        raw = open_recording(path).read_raw(0, 0, 4 * 30_000).astype(float)
        t = gt.timestamp[(gt.unit == 0) & (gt.timestamp > 100) & (gt.timestamp < 4 * 30_000 - 100)]
        cuts[on] = raw[gt.unit_electrode[0] - 1][t[:, None] + np.arange(-10, 20)]
        cuts[on] /= -cuts[on].min(axis=1, keepdims=True)
    assert np.abs(cuts[False] - cuts[False][0]).max() < 0.01  # on the tick: one waveform, repeated
    spread = np.abs(cuts[True] - cuts[True].mean(axis=0)).max()
    assert spread > 0.05  # between ticks: each spike sampled at its own phase ...
    assert min(np.corrcoef(c, cuts[False][0])[0, 1] for c in cuts[True]) > 0.9  # ... of the same shape


def test_the_cli_simulates_with_subsample_timing_and_cuts_a_nev(tmp_path):
    runner = CliRunner()
    for flag in ([], ["--subsample-timing"]):
        out = tmp_path / f"c{len(flag)}.ns6"
        r = runner.invoke(main, ["simulate", str(out), "--electrodes", "3", "--duration", "2", "--seed", "3", "-q", *flag])
        assert r.exit_code == 0, r.output
    a, b = GroundTruth.load(tmp_path / "c0.gt.npz"), GroundTruth.load(tmp_path / "c1.gt.npz")
    np.testing.assert_array_equal(a.timestamp, b.timestamp)  # same spikes, drawn at other phases
    assert (tmp_path / "c0.ns6").read_bytes() != (tmp_path / "c1.ns6").read_bytes()
    assert not (tmp_path / "c0.nev").exists()
    r = runner.invoke(main, ["simulate", str(tmp_path / "n.ns6"), "--electrodes", "3", "--duration", "2", "-q", "--nev"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "n.nev").read_bytes()[:8] == b"NEURALEV"


def test_simulate_refuses_impossible_sizes_in_one_line(tmp_path):
    for args in (["--electrodes", "0"], ["--duration", "-1"], ["--duration", "0"], ["--segments", "0"],
                 ["--seed", "-1"]):
        r = CliRunner().invoke(main, ["simulate", str(tmp_path / "x.ns6"), *args])
        assert r.exit_code == 2 and args[0] in r.output and "Traceback" not in r.output, r.output
        assert not (tmp_path / "x.ns6").exists()
