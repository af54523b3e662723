"""Every export of a real sort is opened by the library its users open it with."""
import numpy as np
import pytest
from click.testing import CliRunner

import spikevae
from spikevae.cli import main
from spikevae.errors import SpikevaeError
from spikevae.export import export, require_extra, to_spikeinterface
from spikevae.groundtruth import score
from spikevae.nev import read_nev_spikes
from spikevae.simulate import cut_online
from spikevae.utah import grid_positions

from .conftest import fast_config


def test_phy_folder_loads_in_phylib(sorted_small, tmp_path):
    phylib_model = pytest.importorskip("phylib.io.model")
    result, _ = sorted_small
    folder = export(result.out, "phy", out=tmp_path / "phy")
    model = phylib_model.load_model(folder / "params.py")
    spikes = spikevae.load_result(result.out)["spikes"]
    assert model.n_spikes == len(spikes["timestamp"])
    np.testing.assert_array_equal(model.spike_samples, spikes["timestamp"])
    sorted_ = spikes["unit"] >= 0
    np.testing.assert_array_equal(model.spike_clusters[sorted_], spikes["unit"][sorted_])
    assert model.features.data.shape[0] == model.n_spikes
    assert model.channel_positions.shape == (8, 2)


def test_nwb_reads_back_and_passes_nwbinspector(sorted_small, tmp_path):
    pynwb = pytest.importorskip("pynwb")
    inspector = pytest.importorskip("nwbinspector")
    result, _ = sorted_small
    path = export(result.out, "nwb", out=tmp_path / "s.nwb",
                  subject={"subject_id": "M1", "species": "Macaca mulatta", "age": "P7Y"})
    res = spikevae.load_result(result.out)
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        assert len(nwb.units) == len(res["units"])
        first = res["units"][0]["unit"]
        np.testing.assert_allclose(nwb.units["spike_times"][0], res["spikes"]["time_s"][res["spikes"]["unit"] == first])
        assert nwb.units["waveform_mean"][0].shape == (48,)
        assert len(nwb.electrodes) == 8 and nwb.electrodes["rel_x"][1] - nwb.electrodes["rel_x"][0] == 400.0
        assert nwb.devices["UtahArray"].model.manufacturer == "Blackrock Neurotech"
    messages = list(inspector.inspect_nwbfile(nwbfile_path=str(path)))
    assert not [m for m in messages if m.importance.name == "CRITICAL"], messages


def test_nev_reads_back_through_neo_with_units_and_times(sorted_small, tmp_path):
    from neo.rawio import BlackrockRawIO

    result, _ = sorted_small
    path = export(result.out, "nev", out=tmp_path / "sorted.nev")
    reader = BlackrockRawIO(str(path), nsx_to_load=[], load_nev=True)
    reader.parse_header()
    res = spikevae.load_result(result.out)
    spikes, units = res["spikes"], res["units"]
    names = list(reader.header["spike_channels"]["name"])
    for u in units:
        local = 1 + sum(v["electrode_id"] == u["electrode_id"] and v["unit"] < u["unit"] for v in units)
        k = names.index(f"ch{u['electrode_id']}#{local}")
        ts = reader.rescale_spike_timestamp(reader.get_spike_timestamps(0, 0, k, None, None), "float64")
        np.testing.assert_allclose(ts, spikes["time_s"][spikes["unit"] == u["unit"]], atol=1e-9)
    unsorted = sum(reader.spike_count(0, 0, k) for k, n in enumerate(names) if n.endswith("#0"))
    assert unsorted == (spikes["unit"] < 0).sum()


def test_sorting_a_nev_sorts_its_waveforms_without_filtering(sorted_small, tmp_path):
    result, _ = sorted_small
    nev = export(result.out, "nev", out=tmp_path / "cut.nev")
    again = spikevae.sort(nev, fast_config(), out=tmp_path / "from-nev")
    a = spikevae.load_result(result.out)
    b = spikevae.load_result(again.out)
    assert b["run"]["input"]["file_spec"] == "nev"
    assert len(b["spikes"]["timestamp"]) == len(a["spikes"]["timestamp"])
    np.testing.assert_array_equal(np.sort(b["spikes"]["timestamp"]), np.sort(a["spikes"]["timestamp"]))
    # the same waveforms sort into about the same units
    assert abs(b["run"]["counts"]["units"] - a["run"]["counts"]["units"]) <= 2


def test_a_nev_cut_online_is_sorted_into_the_true_units(small_recording, tmp_path):
    path, gt = small_recording
    nev = tmp_path / "online.nev"
    n = cut_online(path, nev)
    cut = read_nev_spikes(nev)
    assert len(cut["timestamp"]) == n > 0
    crossed = cut["waveform"][:, 10] < cut["waveform"][:, 9]  # the crossing at sample 10, going down
    assert crossed.mean() > 0.95
    assert len(set(cut["waveform"][:, :24].argmin(axis=1))) >= 4  # troughs 1 to a few samples after it
    result = spikevae.sort(nev, fast_config(band_hz=(250.0, 5000.0)), out=tmp_path / "sorted")
    spikes = spikevae.load_result(result.out)["spikes"]
    wf = np.load(result.out / "spike_waveforms.npy")
    assert np.mean(wf.argmin(axis=1) == 11) > 0.95  # moved to the trough, as detect cuts
    np.testing.assert_array_equal(np.sort(spikes["timestamp"]), cut["timestamp"])  # the file's times
    scores = score(gt, spikes["timestamp"], spikes["unit"])
    assert scores.well_detected >= 0.8 * len(gt.unit_electrode)


def test_spikeinterface_sorting_and_saved_folder(sorted_small, tmp_path):
    si = pytest.importorskip("spikeinterface.core")
    result, _ = sorted_small
    sorting = to_spikeinterface(result.out)
    res = spikevae.load_result(result.out)
    assert sorting.get_num_units() == len(res["units"])
    u = res["units"][0]["unit"]
    np.testing.assert_array_equal(sorting.get_unit_spike_train(u), res["spikes"]["timestamp"][res["spikes"]["unit"] == u])
    folder = export(result.out, "spikeinterface", out=tmp_path / "si")
    assert si.load(folder / "sorting").get_num_units() == len(res["units"])


def test_bad_exports_fail_in_one_line(sorted_small, tmp_path):
    result, _ = sorted_small
    half = tmp_path / "half"
    half.mkdir()
    (half / "run.json").write_text("{}")
    with pytest.raises(SpikevaeError, match="not a complete spikevae result"):
        export(half, "phy")
    with pytest.raises(SpikevaeError, match="unknown format"):
        export(result.out, "mat")
    with pytest.raises(SpikevaeError, match=r"pip install 'spikevae\[nwb\]'"):
        require_extra("no_such_module_xyz", "nwb", "export to nwb")
    r = CliRunner().invoke(main, ["export", str(half), "--to", "nwb"])
    assert r.exit_code != 0 and "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1
    assert not (half / "sorting.nwb").exists()


def test_a_result_of_an_older_version_is_refused_in_one_line(sorted_small, tmp_path):
    import json
    import shutil
    result, _ = sorted_small
    old = tmp_path / "old.spikevae"
    shutil.copytree(result.out, old)
    run = json.loads((old / "run.json").read_text())
    del run["threshold_uv"]
    (old / "run.json").write_text(json.dumps(run))
    for args in (["export", str(old), "--to", "nev"], ["compare", str(old)]):
        r = CliRunner().invoke(main, args)
        assert r.exit_code != 0 and "Traceback" not in r.output
        assert r.output.strip().splitlines() == [f"Error: {old}: written by another spikevae version "
                                                 "(run.json lacks threshold_uv); sort the recording again"]


def test_utah_positions_are_distinct_on_a_400_um_grid():
    pos = grid_positions(np.arange(1, 97))
    assert len({tuple(p) for p in pos}) == 96
    assert set(np.unique(pos[:, 0])) == set(np.arange(10) * 400.0)
