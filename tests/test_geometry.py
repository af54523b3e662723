"""Recordings that are not a Utah array: a clear refusal, or a sort warned of what it assumes."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

import spikevae
from spikevae.cli import main
from spikevae.sorting.detection import Detector, estimate_noise
from spikevae.errors import SpikevaeError
from spikevae.sorting.filtering import BandpassFilter
from spikevae.io.geometry import Geometry, recording_geometry
from spikevae.params import DetectionParams
from spikevae.io.reader import open_recording
from spikevae.simulators.simulation import SimulationConfig, simulate

from .conftest import fast_config


def write_cmp(path, n, pitch_note="", column_of=lambda i: 0, row_of=lambda i: i, first=1):
    """A Blackrock map file placing electrodes first..first+n-1 at (column_of(i), row_of(i)) on bank A."""
    rows = [f"{column_of(i)}\t{row_of(i)}\tA\t{i + first}\telec{i + first}" for i in range(n)]
    path.write_text("\n".join(["Cerebus mapping", pitch_note, "//column\trow\tbank\telectrode\tlabel", *rows]) + "\n")
    return path


@pytest.fixture(scope="module")
def artifacts_recording(tmp_path_factory):
    path = tmp_path_factory.mktemp("geo") / "art.ns6"
    simulate(path, SimulationConfig(n_electrodes=16, duration_s=8.0, seed=5, artifact_rate_hz=2.0))
    return path


def events(path, apart):
    rec = open_recording(path)
    params = DetectionParams(threshold=3.5)
    filt = BandpassFilter(rec, 250, 7500, 4)
    det = Detector(params, estimate_noise(filt, lags=48))
    det.apart = apart
    out, totals = [], {}
    for chunk in filt.chunks(60_000, context=det.context):
        ev, counts = det.events(chunk)
        out.append(np.stack([ev["sample"], ev["electrode"]]))
        totals = {k: totals.get(k, 0) + v for k, v in counts.items()}
    return np.concatenate(out, axis=1), totals


def test_utah_spacing_keeps_the_common_mode_rule_and_a_tight_cluster_rejects_nothing(artifacts_recording):
    ids = np.arange(1, 17)
    utah = recording_geometry(ids)
    assert utah.apart(150.0).all()        # on a Utah array every other electrode is beyond one cell's reach
    fast, fast_counts = events(artifacts_recording, None)
    paired, paired_counts = events(artifacts_recording, utah.apart(150.0))  # the pairwise count, forced
    np.testing.assert_array_equal(fast, paired)
    assert fast_counts == paired_counts and fast_counts["rejected_common_mode"] > 50
    tight = Geometry(ids, np.column_stack([np.zeros(16), 10.0 * np.arange(16)]), "test")
    _, tight_counts = events(artifacts_recording, tight.apart(200.0))
    assert tight_counts["rejected_common_mode"] == 0  # neighbours a cell can reach are no artifact


def test_a_linear_map_is_refused_in_one_line_and_sorted_with_a_warning_when_asked(artifacts_recording, tmp_path):
    cmp = write_cmp(tmp_path / "vprobe.cmp", 16, "// V-probe, electrode pitch 50 um")
    runner = CliRunner()
    out = tmp_path / "r.spikevae"
    r = runner.invoke(main, ["sort", str(artifacts_recording), "--map", str(cmp), "-o", str(out), "-q",
                             "--device", "cpu", "--max-train", "2000"])
    assert r.exit_code == 1
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "50 µm apart" in lines[0] and "--allow-dense" in lines[0], r.output
    assert not out.exists() and not list(tmp_path.glob(".r.spikevae*"))
    r = runner.invoke(main, ["sort", str(artifacts_recording), "--map", str(cmp), "--allow-dense", "-o", str(out),
                             "-q", "--device", "cpu", "--max-train", "2000"])
    assert r.exit_code == 0, r.output
    assert "warning:" in r.output and "may appear as units on several" in r.output
    run = json.loads((out / "run.json").read_text())
    assert run["input"]["geometry"]["closest_um"] == 50.0 and "vprobe.cmp" in run["input"]["geometry"]["source"]
    assert any("--allow-dense" in w for w in run["warnings"])
    assert run["config"]["allow_dense"] is True


def test_a_stated_or_given_pitch_places_a_map(tmp_path):
    stated = write_cmp(tmp_path / "a.cmp", 4, "electrode spacing: 80 µm")
    assert recording_geometry([1, 2], stated).closest_pair()[2] == 80.0
    assert recording_geometry([1, 2], stated, pitch_um=30.0).closest_pair()[2] == 30.0
    plain = write_cmp(tmp_path / "b.cmp", 4)
    assert recording_geometry([1, 2], plain).closest_pair()[2] == 400.0
    with pytest.raises(SpikevaeError, match="no position for electrode"):
        recording_geometry([1, 9], plain)


si = pytest.importorskip("spikeinterface.core")
ss = pytest.importorskip("spikeinterface.sorters")


@pytest.fixture(scope="module")
def tetrode(tmp_path_factory):
    """SpikeInterface's standard test recording: 4 channels 20 µm apart, 10 units."""
    rec, gt = si.generate_ground_truth_recording(num_channels=4, durations=[60.0], sampling_frequency=30_000.0,
                                                 seed=0)
    return rec.save(folder=tmp_path_factory.mktemp("tetrode") / "rec"), gt


def test_spikeinterface_test_recording_is_refused_or_warned_never_one_silent_unit(tetrode, tmp_path):
    rec, gt = tetrode
    spikevae.register_sorter()
    with pytest.raises(SpikevaeError, match="20 µm apart.*allow_dense=True"):
        ss.run_sorter("spikevae", rec, folder=tmp_path / "refused", device="cpu")
    sorting = ss.run_sorter("spikevae", rec, folder=tmp_path / "dense", device="cpu", allow_dense=True,
                            vae={"max_train": 4000})
    run = json.loads((tmp_path / "dense" / "sorter_output" / "spikevae" / "run.json").read_text())
    assert run["input"]["geometry"]["source"] == "SpikeInterface probe"
    assert any("one neuron may appear" in w for w in run["warnings"])
    assert run["counts"]["rejected_common_mode"] < 0.05 * run["counts"]["detected"]
    assert sorting.get_num_units() >= gt.get_num_units() // 2


def test_a_rejection_rule_that_removes_most_events_is_named(tetrode, tmp_path):
    rec, _ = tetrode
    utah = write_cmp(tmp_path / "utah.cmp", 4, column_of=lambda i: i, row_of=lambda i: 0, first=0)
    cfg = fast_config(electrode_map=str(utah))  # a wrong map: the tetrode's channels 400 µm apart
    result = spikevae.sort(rec, cfg, out=tmp_path / "wrong")
    run = json.loads((result.out / "run.json").read_text())
    assert run["counts"]["rejected_common_mode"] > run["counts"]["detected"] / 3
    [w] = [w for w in run["warnings"] if "common-mode" in w]
    assert "were rejected as common-mode artifacts" in w and "--map" in w


def test_a_missing_map_stops_the_sort_before_any_work(artifacts_recording, tmp_path):
    r = CliRunner().invoke(main, ["sort", str(artifacts_recording), "--map", str(tmp_path / "nope.cmp"),
                                  "-o", str(tmp_path / "r"), "-q"])
    assert r.exit_code == 1 and "cannot read the map file" in r.output and len(r.output.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*r*"))
