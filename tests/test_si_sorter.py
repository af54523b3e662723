"""spikevae through SpikeInterface's own entry points: run_sorter on a recording SpikeInterface
read, and spikevae.sort on a recording object of any format."""
import numpy as np
import pytest

import spikevae
from spikevae.errors import SpikevaeError
from spikevae.simulators.groundtruth import MATCH_TICKS, score

si = pytest.importorskip("spikeinterface.core")
se = pytest.importorskip("spikeinterface.extractors")
ss = pytest.importorskip("spikeinterface.sorters")
sc = pytest.importorskip("spikeinterface.comparison")

from .conftest import noise_with_spikes  # noqa: E402


def test_run_sorter_gives_spikevae_sort_of_the_file_and_scores_in_spikeinterface(small_recording, tmp_path):
    path, gt = small_recording
    spikevae.register_sorter()
    assert "spikevae" in ss.available_sorters()
    recording = se.read_blackrock(str(path))
    sorting = ss.run_sorter("spikevae", recording, folder=tmp_path / "si", features="pca", device="cpu")
    native = spikevae.sort(path, spikevae.SortConfig(features="pca", device="cpu"), out=tmp_path / "native")
    res = spikevae.load_result(native.out)
    segments = res["run"]["input"]["segments"]
    assert sorting.get_num_segments() == recording.get_num_segments() == 2
    assert sorting.get_num_units() == native.n_units
    sp = res["spikes"]
    for u in sorting.get_unit_ids():
        train = np.concatenate([sorting.get_unit_spike_train(u, segment_index=i) + s["start_tick"]
                                for i, s in enumerate(segments)])
        np.testing.assert_array_equal(train, sp["timestamp"][sp["unit"] == u])

    starts = np.array([s["start_tick"] for s in segments])
    seg = np.searchsorted(starts, gt.timestamp, "right") - 1
    truth = si.NumpySorting.from_samples_and_labels(
        [gt.timestamp[seg == i] - starts[i] for i in range(len(segments))],
        [gt.unit[seg == i] for i in range(len(segments))], 30_000)
    comparison = sc.compare_sorter_to_ground_truth(truth, sorting, exhaustive_gt=True,
                                                   delta_time=MATCH_TICKS / 30)
    well = comparison.get_well_detected_units(well_detected_score=0.8)
    assert len(well) == score(gt, sp["timestamp"], sp["unit"]).well_detected >= 0.5 * len(gt.unit_electrode)


def test_run_sorter_to_an_analyzer_with_quality_metrics_in_two_lines(small_recording, tmp_path):
    path, _ = small_recording
    spikevae.register_sorter()
    recording = se.read_blackrock(str(path))
    sorting = ss.run_sorter("spikevae", recording, folder=tmp_path / "si", features="pca", device="cpu")
    analyzer = si.create_sorting_analyzer(sorting, spikevae.utah_recording(recording), format="memory")
    analyzer.compute(["random_spikes", "noise_levels", "templates", "quality_metrics"])
    metrics = analyzer.get_extension("quality_metrics").get_data()
    assert len(metrics) == sorting.get_num_units() > 0 and metrics["snr"].notna().all()
    locations = analyzer.recording.get_channel_locations()
    assert np.abs(np.diff(locations[:2, 0])) == 400  # the Utah pitch, electrodes of one row side by side
    assert not recording.has_probe()                 # the user's recording is left as it was


def test_sort_takes_a_recording_object_with_its_own_channel_names(tmp_path):
    x, ticks = noise_with_spikes(n_samples=150_000)
    recording = si.NumpyRecording([x.astype(np.float32)], 30_000.0, channel_ids=["a", "b", "c", "d"])
    result = spikevae.sort(recording, spikevae.SortConfig(features="pca", band_hz=(250, 7500)),
                           out=tmp_path / "out")
    res = spikevae.load_result(result.out)
    assert res["run"]["input"]["electrodes"] == [1, 2, 3, 4]
    sp = res["spikes"]
    on_b = sp["electrode_id"] == 2
    found = np.abs(sp["timestamp"][on_b][:, None] - ticks[None]).min(axis=0)
    assert (found <= 2).mean() > 0.95
    assert {u["electrode_id"] for u in res["units"]} == {2}
    report = spikevae.compare(result.out, baselines=("pca",), config=spikevae.SortConfig(features="pca"))
    assert "ground_truth" not in report and report["spikes"] == len(sp["timestamp"])  # no file, so no ground truth


def test_a_recording_spikevae_cannot_sort_is_refused_in_one_line(small_recording, tmp_path):
    x, _ = noise_with_spikes()
    slow = si.NumpyRecording([x.astype(np.float32)], 20_000.0)
    with pytest.raises(SpikevaeError, match="20000 Hz.*resample"):
        spikevae.sort(slow, out=tmp_path / "a")
    fine = si.NumpyRecording([x.astype(np.float32)], 30_000.0)
    with pytest.raises(SpikevaeError, match="needs out="):
        spikevae.sort(fine)
    spikevae.register_sorter()
    with pytest.raises(SpikevaeError, match="no_such_field"):
        ss.run_sorter("spikevae", se.read_blackrock(str(small_recording[0])), folder=tmp_path / "b",
                      vae={"no_such_field": 1})
    assert not (tmp_path / "a").exists()
