"""Every export of a real sort is opened by the library its users open it with."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import spikevae
from spikevae.cli import main
from spikevae.config import default_config
from spikevae.errors import SpikevaeError
from spikevae.formats.exports import export, require_extra, to_spikeinterface, utah_probe
from spikevae.simulators.groundtruth import score
from spikevae.io.nev import read_nev_spikes
from spikevae.simulators.simulation import cut_online
from spikevae.io.utah import grid_positions
from spikevae.params import NEV_BAND_HZ

from .conftest import fast_config


def test_phy_folder_loads_in_phylib(sorted_small, tmp_path):
    phylib_model = pytest.importorskip("phylib.io.model")
    result, _ = sorted_small
    folder = export(result.out, "phy", out=tmp_path / "phy")
    model = phylib_model.load_model(folder / "params.py")
    res = spikevae.load_result(result.out)
    spikes, units = res["spikes"], res["units"]
    assert model.n_spikes == len(spikes["timestamp"])
    np.testing.assert_array_equal(model.spike_samples, spikes["timestamp"])
    sorted_ = spikes["unit"] >= 0
    np.testing.assert_array_equal(model.spike_clusters[sorted_], spikes["unit"][sorted_])
    assert model.features.data.shape[0] == model.n_spikes
    assert model.channel_positions.shape == (8, 2)
    electrodes = res["run"]["input"]["electrodes"]
    assert list(model.channel_mapping) == electrodes  # phy labels channels with the electrode ids
    for u in units:
        c = u["unit"]
        t = model.get_template(c)
        assert electrodes[t.best_channel] == u["electrode_id"]
        np.testing.assert_allclose(t.template[:, 0], res["waveforms"]["mean"][c], rtol=1e-5, atol=1e-3)
        assert electrodes[model.get_cluster_channels(c)[0]] == u["electrode_id"]
        members = np.flatnonzero(spikes["unit"] == c)
        assert model.get_features(members, [t.best_channel]).shape == (len(members), 1, spikes["latent"].shape[1])
        np.testing.assert_allclose(model.amplitudes[members], np.abs(spikes["amplitude_uv"][members]), rtol=1e-6)
        # the waveform view's spikes are the sort's own waveforms
        shown = model.spike_waveforms.spike_ids
        some = shown[np.isin(shown, members)][:10]
        np.testing.assert_allclose(model.get_waveforms(some, [t.best_channel])[:, :, 0], res["spike_waveforms"][some])
    # similar templates: alike shapes on one electrode score high, other electrodes 0
    sim = model.similar_templates
    assert np.allclose(np.diag(sim), 1) and sim[0, [u["unit"] for u in units if u["electrode_id"] != units[0]["electrode_id"]]].max() == 0
    groups = dict(line.split("\t") for line in (folder / "cluster_group.tsv").read_text().split("\n")[1:] if line)
    assert set(groups.values()) <= {"good", "mua", "noise"} and len(groups) == model.n_clusters


def test_phy_gui_opens_the_export(sorted_small, tmp_path):
    """phy's template GUI itself, offscreen: every view opens and clusters can be selected."""
    pytest.importorskip("phy")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    qt = subprocess.run([sys.executable, "-c", "import PyQt5.QtWebEngineWidgets"], env=env, capture_output=True)
    if qt.returncode:
        pytest.skip(f"Qt does not start here: {qt.stderr.decode()[-200:]}")
    result, _ = sorted_small
    for traces in (False, True):
        folder = export(result.out, "phy", out=tmp_path / f"phy{traces}", traces=traces)
        png = tmp_path / f"gui{traces}.png"
        home = {"HOME": str(tmp_path / f"home{traces}")}  # phy restores the views of its last session from ~/.phy
        run = subprocess.run([sys.executable, str(Path(__file__).with_name("phy_gui.py")), str(folder), str(png)],
                             env={**env, **home}, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "WaveformView" in run.stdout and "FeatureView" in run.stdout and png.stat().st_size > 0
        assert ("TraceView" in run.stdout) == traces, run.stdout


def test_phy_traces_hold_each_spike_at_its_sample(sorted_small, tmp_path):
    """--traces: the band-passed recording, each spike's trough at its spike_times sample, for
    spikes of both segments (the second one's times shifted to follow the first's samples)."""
    phylib_model = pytest.importorskip("phylib.io.model")
    result, _ = sorted_small
    folder = export(result.out, "phy", out=tmp_path / "phy", traces=True)
    res = spikevae.load_result(result.out)
    segments = res["run"]["input"]["segments"]
    model = phylib_model.load_model(folder / "params.py")
    assert model.traces.shape[0] == sum(s["n_samples"] for s in segments)
    sp = res["spikes"]
    big = np.flatnonzero(np.abs(sp["amplitude_uv"]) > 150)
    picks = np.r_[big[:20], big[-20:]]  # both segments
    at = model.spike_times[picks] * 30_000
    channel = np.searchsorted(model.channel_mapping, sp["electrode_id"][picks])  # phylib's columns: channel order
    traced = np.asarray(model.traces[np.round(at).astype(int)])[np.arange(len(picks)), channel]
    np.testing.assert_allclose(traced / 4, sp["amplitude_uv"][picks], rtol=0.15, atol=10)
    model.close()
    with pytest.raises(SpikevaeError, match="only a phy export holds traces"):
        export(result.out, "nev", out=tmp_path / "x.nev", traces=True)


NWB_META = {"subject_id": "M1", "species": "Macaca mulatta", "sex": "M", "age": "P7Y",
            "experimenter": "Doe, Jane", "institution": "Example University", "lab": "Motor lab",
            "session_description": "center-out reaching, day 3", "experiment_description": "Utah array in M1",
            "keywords": ["Utah array", "motor cortex"]}


def test_nwb_reads_back_and_passes_nwbinspector_for_dandi(sorted_small, tmp_path):
    pynwb = pytest.importorskip("pynwb")
    inspector = pytest.importorskip("nwbinspector")
    result, _ = sorted_small
    path = export(result.out, "nwb", out=tmp_path / "s.nwb", metadata=NWB_META)
    res = spikevae.load_result(result.out)
    segments = res["run"]["input"]["segments"]
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        assert len(nwb.units) == len(res["units"])
        first = res["units"][0]["unit"]
        np.testing.assert_allclose(nwb.units["spike_times"][0], res["spikes"]["time_s"][res["spikes"]["unit"] == first])
        assert nwb.units["waveform_mean"][0].shape == (48,)
        assert list(nwb.units["quality"][:]) == [u["quality"] for u in res["units"]]
        assert len(nwb.electrodes) == 8 and nwb.electrodes["rel_x"][1] - nwb.electrodes["rel_x"][0] == 400.0
        assert nwb.devices["UtahArray"].model.manufacturer == "Blackrock Neurotech"
        assert nwb.subject.species == "Macaca mulatta" and list(nwb.keywords[:]) == NWB_META["keywords"]
        assert nwb.experimenter == ("Doe, Jane",) and nwb.institution == "Example University"
        pause = nwb.invalid_times.to_dataframe().iloc[0]  # the pause between the two segments
        assert pause.start_time == pytest.approx((segments[0]["start_tick"] + segments[0]["n_samples"]) / 30000)
        assert pause.stop_time == pytest.approx(segments[1]["start_tick"] / 30000)
    config = inspector.load_config("dandi")
    messages = [m for m in inspector.inspect_nwbfile(nwbfile_path=str(path), config=config)
                if m.importance.name in ("CRITICAL", "BEST_PRACTICE_VIOLATION", "ERROR")]
    assert not messages, messages


def test_nwb_without_subject_warns_what_dandi_needs(sorted_small, tmp_path):
    pytest.importorskip("pynwb")
    result, _ = sorted_small
    with pytest.warns(UserWarning, match="no subject_id, species, age; DANDI rejects"):
        export(result.out, "nwb", out=tmp_path / "bare.nwb", metadata={"sex": "F"})
    assert (tmp_path / "bare.nwb").is_file()
    with pytest.raises(SpikevaeError, match="unknown NWB metadata specie"):
        export(result.out, "nwb", out=tmp_path / "typo.nwb", metadata={"specie": "mouse"})


def test_cmp_map_places_the_electrodes(sorted_small, tmp_path):
    result, _ = sorted_small
    cmp = tmp_path / "array.cmp"
    rows = "".join(f"{9 - (e - 1) % 10}\t{(e - 1) // 10}\tA\t{e}\telec{e}\n" for e in range(1, 33))
    cmp.write_text("// Cerebus mapfile\nCerebus mapfile\n// column row bank pin label\n" + rows)
    folder = export(result.out, "phy", out=tmp_path / "phy", electrode_map=cmp)
    np.testing.assert_array_equal(np.load(folder / "channel_positions.npy")[:2], [[3600, 0], [3200, 0]])
    (tmp_path / "bad.cmp").write_text("not a map\n")
    with pytest.raises(SpikevaeError, match="not a Blackrock map file"):
        export(result.out, "phy", out=tmp_path / "phy2", electrode_map=tmp_path / "bad.cmp")


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
    r = CliRunner().invoke(main, ["sort", str(nev), "-o", str(tmp_path / "from-nev"), "--max-train", "4000", "-q"])
    assert r.exit_code == 0, r.output
    a = spikevae.load_result(result.out)
    b = spikevae.load_result(tmp_path / "from-nev")
    assert b["run"]["input"]["file_spec"] == "nev"
    # cut waveforms take the defaults of the online filter's band, whatever band they hold
    config = b["run"]["config"]
    assert tuple(config["band_hz"]) == NEV_BAND_HZ == default_config(nev).band_hz
    assert config["cluster"]["method"] == "mixture" and config["vae"]["contrast"] == 0.0
    r = CliRunner().invoke(main, ["batch", str(nev), "-o", str(tmp_path / "batch"), "--features", "pca", "-q"])
    assert r.exit_code == 0, r.output
    assert tuple(spikevae.load_result(tmp_path / "batch" / "cut.spikevae")["run"]["config"]["band_hz"]) == NEV_BAND_HZ
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


def test_spikeinterface_sorting_pairs_with_read_blackrock_in_an_analyzer(sorted_small, small_recording, tmp_path):
    si = pytest.importorskip("spikeinterface.core")
    se = pytest.importorskip("spikeinterface.extractors")
    result, _ = sorted_small
    res = spikevae.load_result(result.out)
    spikes, units = res["spikes"], res["units"]
    sorting = to_spikeinterface(result.out)
    recording = se.read_blackrock(str(small_recording[0]))
    assert sorting.get_num_segments() == recording.get_num_segments() == 2
    assert sorting.get_num_units() == len(units)
    segments = res["run"]["input"]["segments"]
    for u in units:
        train = np.concatenate([sorting.get_unit_spike_train(u["unit"], segment_index=i) + s["start_tick"]
                                for i, s in enumerate(segments)])
        np.testing.assert_array_equal(train, spikes["timestamp"][spikes["unit"] == u["unit"]])
    assert list(sorting.get_property("electrode_id")) == [u["electrode_id"] for u in units]
    assert set(sorting.get_property("quality")) <= {"good", "mua"}
    recording.set_probe(utah_probe(result.out))  # in place since SpikeInterface 0.105
    assert recording.get_channel_locations()[1, 0] - recording.get_channel_locations()[0, 0] == 400
    analyzer = si.create_sorting_analyzer(sorting, recording, sparse=False, format="memory")
    analyzer.compute(["random_spikes", "templates"])
    templates = analyzer.get_extension("templates").get_data()
    peak = recording.get_channel_ids()[np.abs(templates).max(axis=1).argmax(axis=1)]
    assert [int(c) for c in peak] == [u["electrode_id"] for u in units]  # each unit on its own electrode
    folder = export(result.out, "spikeinterface", out=tmp_path / "si")
    assert si.load(folder).get_num_units() == len(units)


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
