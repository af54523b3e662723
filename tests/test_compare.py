"""compare: identical detections, swapped features, real clustering, reports on disk."""
import json
import shutil
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

import spikevae
from spikevae.cli import main
from spikevae.comparison import agreement, compare
from spikevae.params import ClusterParams
from spikevae.simulators.groundtruth import GroundTruth, score
from spikevae.simulators.simulation import SimulationConfig, simulate

from .conftest import fast_config


@pytest.fixture(scope="module")
def report(sorted_small, tmp_path_factory):
    result, _ = sorted_small
    out = tmp_path_factory.mktemp("cmp") / "report"
    return compare(result.out, baselines=("pca", "ae"), out=out)


def test_every_feature_space_sorts_the_same_spikes_and_is_scored(report, sorted_small):
    result, gt = sorted_small
    assert report["feature_spaces"] == ["vae", "pca", "ae"]
    assert report["settings"]["clustering"] == {"vae": "graph", "pca": "graph", "ae": "graph"}
    # each network trained as a sort with its features would: the contrastive β-VAE for longer
    assert report["settings"]["steps"] == {"vae": 180, "ae": 90}
    spikes = spikevae.load_result(result.out)["spikes"]
    assert report["spikes"] == len(spikes["timestamp"])
    # the ground truth beside the simulated recording was found and used
    truth = report["ground_truth"]
    assert truth["true_units"] == len(gt.unit_electrode)
    vae_scores = score(gt, spikes["timestamp"], spikes["unit"])
    assert report["summary"]["vae"]["well_detected"] == vae_scores.well_detected
    assert np.allclose(truth["vae"]["accuracy"], vae_scores.accuracy)
    for name in ("pca", "ae"):
        assert len(truth[name]["accuracy"]) == len(gt.unit_electrode)
        assert report["summary"][name]["well_detected"] >= 2
        a = report["agreement"][name]
        assert 0.5 < a["spike_agreement"] <= 1.0 and a["matched_units"] >= 2
    for name in report["feature_spaces"]:
        units = report["units"][name]
        assert units and all(u["isolation_distance"] > 0 or np.isnan(u["isolation_distance"]) for u in units)
        assert all(0 <= u["l_ratio"] for u in units if not np.isnan(u["l_ratio"]))


def test_report_files(report):
    out = spikevae.io.output.Path(report["out"])
    for f in ("compare.json", "compare.csv", "compare.html", "scatter.png", "waveforms.png", "accuracy.png",
              "training.png"):
        assert (out / f).stat().st_size > 0, f
    assert json.loads((out / "compare.json").read_text())["feature_spaces"] == ["vae", "pca", "ae"]
    rows = (out / "compare.csv").read_text().splitlines()
    assert rows[0].startswith("feature_space,electrode_id,units")
    assert {r.split(",")[0] for r in rows[1:]} == {"vae", "pca", "ae"}
    html = (out / "compare.html").read_text()
    assert all(f"src='{f}'" in html for f in ("scatter.png", "waveforms.png", "accuracy.png", "training.png"))
    # a report, not a dump: the run's settings, links to the data, what each metric means
    assert "band 250–750 Hz" in html and "threshold 3.25 × noise SD" in html
    assert "href='compare.csv'" in html and "href='compare.json'" in html
    assert "common space" in html and "<th>well detected</th>" in html
    assert "<b>Verdict:</b>" in html


def test_colours_are_matched_across_feature_spaces():
    from spikevae.figures import UNPAIRED, unit_colours

    class Table:
        def __init__(self, electrodes):
            self.electrode_id = np.array(electrodes)

    class S:
        def __init__(self, name, electrodes):
            self.name, self.table = name, Table(electrodes)

    fake = {"agreement": {"pca": {"pairs": [{"unit_a": 1, "unit_b": 0}, {"unit_a": 0, "unit_b": 1}]}}}
    colours = unit_colours(fake, [S("vae", [3, 3]), S("pca", [3, 3, 3])], None)
    assert colours[1][0] == colours[0][1] and colours[1][1] == colours[0][0] and colours[1][2] == UNPAIRED[0]


def test_scores_match_spikeinterface(sorted_small):
    si = pytest.importorskip("spikeinterface.core")
    from spikeinterface.comparison import compare_sorter_to_ground_truth

    result, gt = sorted_small
    spikes = spikevae.load_result(result.out)["spikes"]
    keep = spikes["unit"] >= 0
    gt_sorting = si.NumpySorting.from_samples_and_labels([gt.timestamp], [gt.unit], 30_000.0)
    tested = si.NumpySorting.from_samples_and_labels([spikes["timestamp"][keep]], [spikes["unit"][keep]], 30_000.0)
    theirs = compare_sorter_to_ground_truth(gt_sorting, tested, delta_time=0.4).get_performance()
    ours = score(gt, spikes["timestamp"], spikes["unit"])
    np.testing.assert_allclose(ours.accuracy, theirs["accuracy"].to_numpy(float), atol=0.01)
    np.testing.assert_allclose(ours.recall, theirs["recall"].to_numpy(float), atol=0.01)


def test_agreement_of_relabelled_sortings():
    a = np.array([0, 0, 1, 1, -1, 2, 2, 2])
    b = np.array([5, 5, 3, 3, -1, 4, 4, -1])
    ag = agreement(a, b)
    assert ag["matched_units"] == 3 and ag["spike_agreement"] == 7 / 8
    assert {(p["unit_a"], p["unit_b"]) for p in ag["pairs"]} == {(0, 5), (1, 3), (2, 4)}


def test_cli_json_and_bad_input(sorted_small, small_recording, tmp_path):
    result, _ = sorted_small
    runner = CliRunner()
    r = runner.invoke(main, ["compare", str(result.out), "--baseline", "pca", "-o", str(tmp_path / "j"), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)  # one JSON document and nothing else on stdout
    assert doc["feature_spaces"] == ["vae", "pca"]

    def fails(args, message):
        r = runner.invoke(main, args)
        assert r.exit_code != 0 and message in r.output and "Traceback" not in r.output, r.output

    fails(["compare", str(result.out), "--baseline", "wavelets"], "Invalid value")
    fails(["compare", str(result.out), "-o", str(tmp_path / "j")], "--overwrite")
    other = tmp_path / "other.gt.npz"
    gt = GroundTruth.load(small_recording[0].with_name("small.gt.npz"))
    gt.unit_electrode = gt.unit_electrode + 50
    gt.save(other)
    fails(["compare", str(result.out), "--ground-truth", str(other), "-o", str(tmp_path / "k")], "does not belong")
    fails(["compare", str(tmp_path / "nothing"), "-o", str(tmp_path / "k")], "no such file")
    assert not (tmp_path / "k").exists()
    rec = tmp_path / "copy.ns6"  # the recording form: refused before it sorts anything
    shutil.copy(small_recording[0], rec)
    fails(["compare", str(rec), "-o", str(tmp_path / "missing" / "k")], "no such folder for the output")
    assert not (tmp_path / "copy.spikevae").exists()


def test_the_verdict_names_the_better_space_and_the_spread_over_seeds(report, sorted_small, tmp_path):
    v = report["verdict"]
    assert v["metric"] == "well-detected units" and set(v["values"]) == {"vae", "pca", "ae"}
    assert v["values"]["vae"] == report["summary"]["vae"]["well_detected"]
    assert len(v["text"]) == 2 and "not measured" in v["text"][0] and v["exceeds_spread"]["pca"] is None
    result, _ = sorted_small
    seeded = compare(result.out, baselines=("pca",), out=tmp_path / "seeded", sort_seeds=2,
                     ground_truth=None)
    spread = seeded["verdict"]["seed_spread"]
    assert set(spread) == {"vae", "pca"} and all(isinstance(x, int) and x >= 0 for x in spread.values())
    text = seeded["verdict"]["text"][0]
    assert "than the spread over seeds" in text and (seeded["verdict"]["exceeds_spread"]["pca"] ==
                                                       ("no more" not in text))


def test_isolation_is_measured_in_one_space_for_every_sorting(report):
    """The same unit found by two spaces gets the same isolation: the space no longer differs."""
    pairs = report["agreement"]["pca"]["pairs"]
    iso = {name: {u["unit"]: u["isolation_distance"] for u in report["units"][name]} for name in ("vae", "pca")}
    same = [p for p in pairs if p["agreement"] == 1.0]
    assert same and all(np.isclose(iso["vae"][p["unit_a"]], iso["pca"][p["unit_b"]], equal_nan=True) for p in same)


def test_recording_form_sorts_then_refuses_a_result_of_another_file(small_recording, sorted_small, tmp_path):
    path, _ = small_recording
    rec = tmp_path / "fresh.ns6"
    simulate(rec, SimulationConfig(n_electrodes=4, duration_s=15.0, seed=9, units_per_electrode=(0, 1),
                                   rate_hz=(8.0, 20.0), amplitude_uv=(150.0, 300.0)))
    rep = compare(rec, baselines=("pca",), config=fast_config())
    assert (tmp_path / "fresh.spikevae" / "compare" / "compare.html").is_file()
    assert rep["summary"]["vae"]["units"] >= 1
    shutil.copytree(sorted_small[0].out, tmp_path / "stolen.spikevae")
    shutil.copy(rec, tmp_path / "stolen.ns6")
    with pytest.raises(spikevae.SpikevaeError, match="holds the result of small.ns6"):
        compare(tmp_path / "stolen.ns6")


def test_report_page_renders_in_headless_chromium(report, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed")
    shot = tmp_path / "page.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,2400",
                    f"file://{report['out']}/compare.html"], check=True, capture_output=True, timeout=120)
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.std() > 10  # text and figures, not a blank page


def test_a_vae_plain_baseline_takes_the_mixture_and_a_result_keeps_its_own_clustering(tmp_path):
    rec = tmp_path / "plain.ns6"
    simulate(rec, SimulationConfig(n_electrodes=4, duration_s=15.0, seed=9, units_per_electrode=(1, 2),
                                   rate_hz=(8.0, 20.0), amplitude_uv=(150.0, 300.0)))
    pca = spikevae.sort(rec, fast_config(features="pca"), out=tmp_path / "pca")
    report = compare(pca.out, baselines=("vae-plain",))
    assert report["settings"]["clustering"] == {"pca": "graph", "vae-plain": "mixture"}
    # a vae-plain result clustered by the graph (its default before the mixture) is compared as it was sorted
    graph = fast_config(features="vae-plain", cluster=ClusterParams(method="graph"))
    plain = spikevae.sort(rec, graph, out=tmp_path / "plain")
    report = compare(plain.out, baselines=("pca",))
    assert report["settings"]["clustering"] == {"vae-plain": "graph", "pca": "graph"}
    assert report["summary"]["vae-plain"]["units"] >= 1
