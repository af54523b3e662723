"""Chronic series and `spikevae track`: the same neurons over sessions, on real sorts."""
import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

import spikevae
from spikevae.simulators.chronic import SeriesConfig, load_series, simulate_series
from spikevae.cli import main
from spikevae.simulators.groundtruth import GroundTruth, ground_truth_path, score
from spikevae.simulators.simulation import SimulationConfig

from .conftest import fast_config

EASY = dict(n_electrodes=8, duration_s=15.0, units_per_electrode=(0, 0.4, 0.6), rate_hz=(6.0, 20.0),
            amplitude_uv=(150.0, 400.0))


def test_a_series_keeps_its_neurons_drifting_and_turns_some_over(tmp_path):
    paths = simulate_series(tmp_path, "spikevae", SimulationConfig(n_electrodes=12, duration_s=2.0),
                            SeriesConfig(n_sessions=5, seed=3, turnover=(0.3, 0.4)))
    info = load_series(tmp_path)
    assert [s["recording"] for s in info["sessions"]] == [p.name for p in paths] == [f"day0{i}.ns6" for i in range(5)]
    gts = [GroundTruth.load(ground_truth_path(p)) for p in paths]
    where, size = {}, {}
    for s, gt in zip(info["sessions"], gts):
        assert len(s["neurons"]) == len(gt.unit_electrode)
        for n, e, a in zip(s["neurons"], gt.unit_electrode, gt.unit_amplitude_uv):
            assert where.setdefault(n, e) == e  # a neuron stays on its electrode
            size.setdefault(n, []).append(a)
    first, last = set(info["sessions"][0]["neurons"]), set(info["sessions"][-1]["neurons"])
    assert first - last and last - first  # some vanished, some appeared
    kept = [np.array(a) / a[0] for n, a in size.items() if len(a) == 5]
    assert kept and all(np.all(np.abs(k - 1) <= 0.3 + 1e-9) for k in kept)
    assert any(np.abs(k - 1).max() > 0.05 for k in kept)  # amplitudes do drift


def test_the_spikeinterface_family_makes_a_series_too(tmp_path):
    pytest.importorskip("spikeinterface")
    from spikevae.simulators.simulate_si import SIUtahConfig

    simulate_series(tmp_path, "spikeinterface", SIUtahConfig(n_electrodes=6, duration_s=2.0),
                    SeriesConfig(n_sessions=3, seed=1))
    info = load_series(tmp_path)
    for s in info["sessions"]:
        gt = GroundTruth.load(ground_truth_path(tmp_path / s["recording"]))
        assert len(gt.unit_electrode) == len(s["neurons"]) > 0


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """Four sessions of one array, sorted by `spikevae batch` with one shared model."""
    folder = tmp_path_factory.mktemp("series")
    simulate_series(folder, "spikevae", SimulationConfig(**EASY), SeriesConfig(n_sessions=4, seed=5))
    out = folder / "sorted"
    spikevae.batch([str(folder / "day*.ns6")], out, fast_config())
    return folder, out


def _truth(folder, out):
    """Per session: sorted unit → neuron, for units that sort a neuron well."""
    info = load_series(folder)
    maps = []
    for s in info["sessions"]:
        gt = GroundTruth.load(ground_truth_path(folder / s["recording"]))
        spikes = spikevae.load_result(out / s["recording"].replace(".ns6", ".spikevae"))["spikes"]
        sc = score(gt, spikes["timestamp"], spikes["unit"])
        maps.append({int(sc.matched_unit[k]): s["neurons"][k] for k in np.flatnonzero(sc.accuracy >= 0.8)})
    return maps


def test_track_links_each_neuron_across_the_batch(series):
    folder, out = series
    r = CliRunner().invoke(main, ["track", str(out), "-q"])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(out / "tracks" / "tracks.csv")))
    info = json.loads((out / "tracks" / "tracks.json").read_text())
    assert [s["name"] for s in info["sessions"]] == [f"day0{i}.ns6" for i in range(4)]
    assert info["matched_on"].startswith("shared latent")
    placed = [(r["track"], r["session_index"]) for r in rows]
    assert len(placed) == len(set(placed))  # never two units of one session in a track
    truth = _truth(folder, out)
    pairs = {}  # (session, unit) -> (track, neuron)
    for r in rows:
        s, u = int(r["session_index"]), int(r["unit"])
        if u in truth[s]:
            pairs[s, u] = (int(r["track"]), truth[s][u])
    keys = list(pairs)
    same_neuron = same_track = both = 0
    for a in range(len(keys)):
        for b in range(a + 1, len(keys)):
            if keys[a][0] == keys[b][0]:
                continue
            (ta, na), (tb, nb) = pairs[keys[a]], pairs[keys[b]]
            same_neuron += na == nb
            same_track += ta == tb
            both += na == nb and ta == tb
    assert same_neuron >= 20
    assert both / same_track >= 0.95 and both / same_neuron >= 0.8, (both, same_track, same_neuron)
    linked = [r for r in rows if r["match_probability"]]
    assert linked and all(0.5 <= float(r["match_probability"]) <= 1 for r in linked)
    page = (out / "tracks" / "tracks.html").read_text()
    assert page.count("<svg") == sum(1 for n in np.bincount([int(r["track"]) for r in rows]) if n > 1)


def test_sessions_with_their_own_models_are_refused_or_matched_on_waveforms(series, tmp_path):
    folder, _ = series
    results = []
    for day in range(2):
        res = spikevae.sort(folder / f"day0{day}.ns6", fast_config(), out=tmp_path / f"own{day}")
        results.append(str(res.out))
    r = CliRunner().invoke(main, ["track", *results, "-o", str(tmp_path / "t")])
    assert r.exit_code != 0 and "their own model" in r.output and "--waveforms-only" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "t").exists()
    r = CliRunner().invoke(main, ["track", *results, "-o", str(tmp_path / "t"), "--waveforms-only", "-q"])
    assert r.exit_code == 0, r.output
    info = json.loads((tmp_path / "t" / "tracks.json").read_text())
    assert info["matched_on"] == "waveform, ISI and rate" and info["warnings"]


def test_track_replaces_only_its_own_output(series, tmp_path):
    _, out = series
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    r = CliRunner().invoke(main, ["track", str(out), "-o", str(mine), "--overwrite"])
    assert r.exit_code != 0 and "not written by spikevae" in r.output
    assert (mine / "notes.txt").read_text() == "keep"
    r = CliRunner().invoke(main, ["track", str(out), "-o", str(tmp_path / "t"), "-q"])
    assert r.exit_code == 0
    r = CliRunner().invoke(main, ["track", str(out), "-o", str(tmp_path / "t"), "-q"])
    assert r.exit_code != 0 and "--overwrite" in r.output
    assert CliRunner().invoke(main, ["track", str(out), "-o", str(tmp_path / "t"), "-q", "--overwrite"]).exit_code == 0


def test_track_names_what_it_cannot_use(tmp_path):
    r = CliRunner().invoke(main, ["track", str(tmp_path), "-o", str(tmp_path / "t")])
    assert r.exit_code != 0 and "neither a spikevae result folder nor a batch folder" in r.output
    r = CliRunner().invoke(main, ["track", str(tmp_path)])
    assert r.exit_code != 0 and "-o/--out is needed" in r.output


def test_exports_carry_each_units_track(series, tmp_path):
    """The track id as a unit column where users open it: NWB's units table and a
    SpikeInterface sorting's property."""
    pynwb = pytest.importorskip("pynwb")
    si = pytest.importorskip("spikeinterface.core")
    _, out = series
    assert CliRunner().invoke(main, ["track", str(out), "-o", str(tmp_path / "t"), "-q"]).exit_code == 0
    tracks_csv = tmp_path / "t" / "tracks.csv"
    want = {int(r["unit"]): int(r["track"]) for r in csv.DictReader(open(tracks_csv)) if r["session_index"] == "1"}
    result = out / "day01.spikevae"
    r = CliRunner().invoke(main, ["export", str(result), "--to", "nwb", "-o", str(tmp_path / "d1.nwb"),
                                  "--tracks", str(tracks_csv)])
    assert r.exit_code == 0, r.output
    with pynwb.NWBHDF5IO(str(tmp_path / "d1.nwb"), "r") as io:
        units = io.read().units.to_dataframe()
    assert list(units["track_id"]) == [want[u] for u in sorted(want)]
    r = CliRunner().invoke(main, ["export", str(result), "--to", "spikeinterface", "-o", str(tmp_path / "si"),
                                  "--tracks", str(tracks_csv)])
    assert r.exit_code == 0, r.output
    sorting = si.load(tmp_path / "si")
    assert dict(zip(sorting.unit_ids.tolist(), sorting.get_property("track_id").tolist())) == want
    r = CliRunner().invoke(main, ["export", str(out / "day00.spikevae"), "--to", "nev", "-o", str(tmp_path / "x.nev"),
                                  "--tracks", str(tracks_csv)])
    assert r.exit_code != 0 and "no unit columns" in r.output


def test_simulate_writes_a_series_into_a_new_folder(tmp_path):
    r = CliRunner().invoke(main, ["simulate", str(tmp_path / "s"), "--sessions", "3", "--electrodes", "4",
                                  "--duration", "2", "-q"])
    assert r.exit_code == 0, r.output
    assert [s["recording"] for s in load_series(tmp_path / "s")["sessions"]] == ["day00.ns6", "day01.ns6", "day02.ns6"]
    r = CliRunner().invoke(main, ["simulate", str(tmp_path / "s"), "--sessions", "3", "-q"])
    assert r.exit_code != 0 and "new or empty folder" in r.output


def test_batch_tracks_at_the_end_by_option(series, tmp_path):
    folder, out = series
    r = CliRunner().invoke(main, ["batch", str(folder / "day*.ns6"), "-o", str(tmp_path / "b"), "--model",
                                  str(out / "model.pt"), "--track", "-q"])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(tmp_path / "b" / "tracks" / "tracks.csv")))
    assert {r["session"] for r in rows} == {f"day0{i}.ns6" for i in range(4)}
    assert json.loads((tmp_path / "b" / "tracks" / "tracks.json").read_text())["matched_on"].startswith("shared")


def test_sessions_cut_with_another_band_are_refused(series, tmp_path):
    folder, out = series
    wide = spikevae.sort(folder / "day01.ns6", fast_config(band_hz=(250.0, 7500.0)), out=tmp_path / "wide").out
    r = CliRunner().invoke(main, ["track", str(out / "day00.spikevae"), str(wide), "-o", str(tmp_path / "t"),
                                  "--waveforms-only"])
    assert r.exit_code != 0 and "band_hz" in r.output and "cannot be compared" in r.output
    assert not (tmp_path / "t").exists()


def test_an_export_refuses_tracks_of_a_result_sorted_again(series, tmp_path):
    """The track ids belong to the units that were tracked: a session sorted again since
    (other unit ids) is refused, and so is a tracks.csv without its tracks.json."""
    folder, _ = series
    out = tmp_path / "sorted"
    spikevae.batch([str(folder / "day00.ns6"), str(folder / "day01.ns6")], out, fast_config())
    assert CliRunner().invoke(main, ["track", str(out), "-q"]).exit_code == 0
    tracks_csv = out / "tracks" / "tracks.csv"
    spikevae.sort(folder / "day01.ns6", fast_config(seed=3), out=out / "day01.spikevae", overwrite=True)
    r = CliRunner().invoke(main, ["export", str(out / "day01.spikevae"), "--to", "nev", "-o", str(tmp_path / "a.nev")])
    assert r.exit_code == 0
    r = CliRunner().invoke(main, ["export", str(out / "day01.spikevae"), "--to", "phy", "-o", str(tmp_path / "p"),
                                  "--tracks", str(tracks_csv)])
    assert r.exit_code != 0 and "sorted again" in r.output and not (tmp_path / "p").exists()
    lone = tmp_path / "lone.csv"
    lone.write_bytes(tracks_csv.read_bytes())
    r = CliRunner().invoke(main, ["export", str(out / "day00.spikevae"), "--to", "phy", "-o", str(tmp_path / "p"),
                                  "--tracks", str(lone)])
    assert r.exit_code != 0 and "not a tracks.csv" in r.output and "Traceback" not in r.output
