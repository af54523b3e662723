"""batch: a shared model, resumable sessions, failures kept apart, on Dask."""
import csv
import dataclasses
import importlib.util
import json

import numpy as np
import pytest
from click.testing import CliRunner

import spikevae
from spikevae.cli import main
from spikevae.simulators.groundtruth import GroundTruth, score
from spikevae.simulators.simulation import SimulationConfig, simulate

from .conftest import fast_config


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    """Three days of the same units (amplitudes drifting 4 % a day) and one truncated file."""
    folder = tmp_path_factory.mktemp("days")
    for day in range(3):
        simulate(folder / f"day{day}.ns6", SimulationConfig(
            n_electrodes=8, duration_s=12.0, seed=40 + day, unit_seed=5, amplitude_scale=1 + 0.04 * day,
            units_per_electrode=(0, 0.3, 0.7), rate_hz=(5.0, 20.0), amplitude_uv=(220.0, 450.0)))
    (folder / "broken.ns6").write_bytes((folder / "day0.ns6").read_bytes()[:30_000])
    return folder


@pytest.fixture(scope="module")
def first_batch(sessions, tmp_path_factory):
    out = tmp_path_factory.mktemp("res") / "results"
    return out, spikevae.batch([str(sessions / "*.ns6")], out, fast_config())


def test_sorts_every_session_and_reports_the_corrupt_one(first_batch):
    out, outcomes = first_batch
    status = {o.session: o.status for o in outcomes}
    assert status == {"broken": "failed", "day0": "sorted", "day1": "sorted", "day2": "sorted"}
    assert "truncated" in next(o.reason for o in outcomes if o.session == "broken")
    rows = list(csv.DictReader(open(out / "sessions.csv")))
    assert [r["session"] for r in rows] == ["broken", "day0", "day1", "day2"]
    assert all(int(r["units"]) >= 3 for r in rows if r["status"] == "sorted")
    for day in range(3):
        run = spikevae.load_result(out / f"day{day}.spikevae")["run"]
        assert run["model"] == str(out / "model.pt")  # embedded with the shared model, not retrained


def test_a_shared_models_contrastive_term_learns_on_each_sessions_electrodes(sessions, tmp_path):
    cfg = fast_config()
    cfg = dataclasses.replace(cfg, vae=dataclasses.replace(cfg.vae, contrast=10.0))
    model = spikevae.train_shared([str(sessions / "day0.ns6"), str(sessions / "day1.ns6")], cfg, work=tmp_path)
    assert model.net.cfg.contrast == 10.0
    nce = model.history["contrast"]
    assert 0 < nce[-1] < nce[0] - 0.1, nce  # from chance, log(32), towards telling them apart


def test_the_same_unit_lands_in_the_same_region_of_the_shared_latent_space(first_batch, sessions):
    """Each true unit's sorted counterpart (paired by the Hungarian match) sits, on a later day,
    nearer its own day-0 centroid than any
    other unit of its electrode (units of different electrodes may share a region: the
    latent describes shapes, and sorting is per electrode)."""
    out, _ = first_batch
    centroids = []
    for day in range(3):
        gt = GroundTruth.load(sessions / f"day{day}.gt.npz")
        spikes = spikevae.load_result(out / f"day{day}.spikevae")["spikes"]
        s = score(gt, spikes["timestamp"], spikes["unit"])
        centroids.append({u: spikes["latent"][spikes["unit"] == s.matched_unit[u]].mean(axis=0)
                          for u in np.flatnonzero(s.matched_unit >= 0)})
    common = sorted(set.intersection(*(set(c) for c in centroids)))
    assert len(common) >= 6
    electrode = GroundTruth.load(sessions / "day0.gt.npz").unit_electrode
    pairs = 0
    for later in centroids[1:]:
        for u in common:
            rivals = [v for v in common if v != u and electrode[v] == electrode[u]]
            own = np.linalg.norm(later[u] - centroids[0][u])
            for v in rivals:
                assert own < np.linalg.norm(later[u] - centroids[0][v])
                pairs += 1
    assert pairs >= 2


def test_a_restarted_batch_does_only_what_is_left(first_batch, sessions):
    out, _ = first_batch
    again = spikevae.batch([str(sessions / "day*.ns6")], out, fast_config())
    assert {o.status for o in again} == {"skipped"}
    # an interrupted sort leaves a partial folder and no result
    import shutil

    shutil.rmtree(out / "day1.spikevae")
    (out / ".day1.spikevae.partial-99999").mkdir()
    resumed = spikevae.batch([str(sessions / "day*.ns6")], out, fast_config())
    assert [o.status for o in resumed] == ["skipped", "sorted", "skipped"]
    assert not list(out.glob(".day1.spikevae.partial-*"))


def test_distributed_path_on_a_local_dask_cluster(sessions, first_batch, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    out, _ = first_batch
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        outcomes = spikevae.batch([str(sessions / "day0.ns6"), str(sessions / "day2.ns6")], tmp_path / "r",
                                  fast_config(), model=out / "model.pt", scheduler=cluster.scheduler_address)
    assert [o.status for o in outcomes] == ["sorted", "sorted"]
    a = spikevae.load_result(out / "day2.spikevae")["spikes"]
    b = spikevae.load_result(tmp_path / "r" / "day2.spikevae")["spikes"]
    np.testing.assert_array_equal(a["latent"], b["latent"])  # one model, one latent space


def test_bad_batches_fail_before_any_work(sessions, first_batch, tmp_path):
    out, _ = first_batch
    runner = CliRunner()

    def fails(args, message):
        r = runner.invoke(main, ["batch", *args, "-o", str(tmp_path / "x"), "--steps", "20"])
        assert r.exit_code != 0 and message in r.output and "Traceback" not in r.output, r.output

    fails([str(sessions / "*.nothing")], "matches no file")
    fails([str(sessions / "day0.ns6"), str(sessions / "day0.ns6")], "given twice")
    fails([str(sessions / "day0.ns6"), "--model", str(out / "model.pt"), "--band", "300", "3000"],
          "trained with band_hz")
    # without the batch extra, the same command names the extra instead
    fails([str(sessions / "day0.ns6"), "--scheduler", "tcp://127.0.0.1:9"],
          "cannot reach the Dask scheduler" if importlib.util.find_spec("distributed") else "need dask")
    assert not (tmp_path / "x").exists()
    listing = tmp_path / "sessions.txt"
    listing.write_text(f"# two days\n{sessions / 'day0.ns6'}\n{sessions / 'day2.ns6'}\n")
    r = runner.invoke(main, ["batch", str(listing), "-o", str(tmp_path / "y"), "--model", str(out / "model.pt"), "-q"])
    assert r.exit_code == 0 and "2 sorted" in r.output, r.output


def test_a_session_changed_in_place_is_sorted_again_and_names_may_hold_brackets(sessions, first_batch, tmp_path):
    out, _ = first_batch
    session = tmp_path / "day[0].ns6"
    session.write_bytes((sessions / "day0.ns6").read_bytes())
    run = lambda: spikevae.batch([str(session)], tmp_path / "r", fast_config(), model=out / "model.pt")  # noqa: E731
    assert [o.status for o in run()] == ["sorted"]
    assert [o.status for o in run()] == ["skipped"]
    data = bytearray(session.read_bytes())
    data[len(data) // 2] ^= 0x40                     # one sample, mid-file, same size
    session.write_bytes(bytes(data))
    assert [o.status for o in run()] == ["sorted"]


def test_batch_with_pca_features_workers_and_exports(sessions, tmp_path):
    """The options `sort` has: PCA per session (no shared model), --workers, --export with NWB metadata."""
    pytest.importorskip("pynwb")
    listing = tmp_path / "two.txt"
    listing.write_text(f"{sessions / 'day0.ns6'}\n{sessions / 'day1.ns6'}\n")
    out = tmp_path / "pca"
    r = CliRunner().invoke(main, ["batch", str(listing), "-o", str(out), "--features", "pca", "--workers", "2",
                                  "--export", "phy", "--export", "nwb", "--species", "Macaca mulatta", "-q"])
    assert r.exit_code == 0 and "2 sorted" in r.output, r.output
    assert "no subject_id, age; DANDI rejects" in r.output  # said once for the batch
    assert not (out / "model.pt").exists()
    for day in (0, 1):
        res = out / f"day{day}.spikevae"
        run = spikevae.load_result(res)["run"]
        assert run["features"] == "pca" and run["config"]["workers"] == 2
        assert (res / "phy" / "params.py").is_file() and (res / "sorting.nwb").is_file()
    (out / "day0.spikevae" / "sorting.nwb").unlink()  # a resumed batch writes exports that are missing
    r = CliRunner().invoke(main, ["batch", str(listing), "-o", str(out), "--features", "pca", "--export", "nwb", "-q"])
    assert r.exit_code == 0 and "2 already done" in r.output and (out / "day0.spikevae" / "sorting.nwb").is_file()


def test_a_resumed_batch_with_other_settings_is_refused_or_sorted_again(sessions, first_batch, tmp_path):
    out, _ = first_batch
    two = [str(sessions / "day0.ns6"), str(sessions / "day1.ns6")]
    runner = CliRunner()
    r = runner.invoke(main, ["batch", *two, "-o", str(tmp_path / "b"), "--max-train", "4000", "-q"])
    assert r.exit_code == 0 and "2 sorted" in r.output, r.output
    before = (tmp_path / "b" / "day0.spikevae" / "spikes.npz").read_bytes()
    r = runner.invoke(main, ["batch", *two, "-o", str(tmp_path / "b"), "--max-train", "4000", "--threshold", "5"])
    assert r.exit_code == 1 and "2 session(s)" in r.output and "detection.threshold 3.25 → 5.0" in r.output, r.output
    assert "--overwrite" in r.output and (tmp_path / "b" / "day0.spikevae" / "spikes.npz").read_bytes() == before
    r = runner.invoke(main, ["batch", *two, "-o", str(tmp_path / "b"), "--max-train", "4000", "--steps", "30"])
    assert r.exit_code == 1 and "model.pt was trained with other settings (vae.steps 180 → 30)" in r.output, r.output
    r = runner.invoke(main, ["batch", *two, "-o", str(tmp_path / "b"), "--max-train", "4000", "--threshold", "5",
                             "--overwrite", "-q"])
    assert r.exit_code == 0 and "2 sorted" in r.output, r.output
    rows = list(csv.DictReader(open(tmp_path / "b" / "sessions.csv")))
    assert all(row["reason"].startswith("sorted again: detection.threshold") for row in rows)
    assert spikevae.load_result(tmp_path / "b" / "day0.spikevae")["run"]["config"]["detection"]["threshold"] == 5.0
    r = runner.invoke(main, ["batch", *two, "-o", str(tmp_path / "b"), "--max-train", "4000", "--threshold", "5",
                             "--workers", "2", "-q"])   # workers do not change a result: nothing to redo
    assert r.exit_code == 0 and "2 already done" in r.output, r.output
    rows = list(csv.DictReader(open(tmp_path / "b" / "sessions.csv")))
    for row in rows:  # a skipped session keeps its sort's time and its sorted (not detected) spikes
        run = spikevae.load_result(tmp_path / "b" / f"{row['session']}.spikevae")["run"]
        assert float(row["seconds"]) > 0 and int(row["spikes"]) == run["counts"]["sorted"] < run["counts"]["kept"]
    # a result sorted before pieces of near-equal trough could be split ran without that rule
    run_json = tmp_path / "b" / "day0.spikevae" / "run.json"
    run = json.loads(run_json.read_text())
    del run["config"]["split"]["min_alike_spikes"]
    run_json.write_text(json.dumps(run))
    r = runner.invoke(main, ["batch", *two, "-o", str(tmp_path / "b"), "--max-train", "4000", "--threshold", "5"])
    assert r.exit_code == 1 and "1 session(s)" in r.output and "split.min_alike_spikes None → 50" in r.output, r.output
    run["config"]["split"]["min_alike_spikes"] = 50
    del run["config"]["curation"]["followers_only"]  # before only a burst's followers joined its unit
    run_json.write_text(json.dumps(run))
    r = runner.invoke(main, ["batch", *two, "-o", str(tmp_path / "b"), "--max-train", "4000", "--threshold", "5"])
    assert r.exit_code == 1 and "curation.followers_only False → True" in r.output, r.output
    run["config"]["curation"]["followers_only"] = True
    del run["config"]["cluster"]["method"]  # before the neighbour graph, mixtures found every band's units
    run_json.write_text(json.dumps(run))
    r = runner.invoke(main, ["batch", *two, "-o", str(tmp_path / "b"), "--max-train", "4000", "--threshold", "5"])
    assert r.exit_code == 1 and "cluster.method mixture → graph" in r.output, r.output
    run["config"]["cluster"]["method"] = "graph"
    del run["config"]["split"]["max_shift"]  # before a unit's spikes were realigned for the split
    run_json.write_text(json.dumps(run))
    r = runner.invoke(main, ["batch", *two, "-o", str(tmp_path / "b"), "--max-train", "4000", "--threshold", "5"])
    assert r.exit_code == 1 and "split.max_shift 0 → 2" in r.output, r.output
    run["config"]["split"]["max_shift"] = 2
    del run["config"]["split"]["shift_step"]  # before the realignment moved spikes by fractions of a sample
    run_json.write_text(json.dumps(run))
    r = runner.invoke(main, ["batch", *two, "-o", str(tmp_path / "b"), "--max-train", "4000", "--threshold", "5"])
    assert r.exit_code == 1 and "split.shift_step 1.0 → 0.25" in r.output, r.output
    run["config"]["split"]["shift_step"] = 0.25
    run["config"]["vae"]["steps"] = 90  # before the contrastive term trained for 180 steps
    run_json.write_text(json.dumps(run))
    r = runner.invoke(main, ["batch", *two, "-o", str(tmp_path / "b"), "--max-train", "4000", "--threshold", "5"])
    assert r.exit_code == 1 and "vae.steps 90 → 180" in r.output, r.output
    run["config"]["vae"]["steps"] = 180
    del run["config"]["cluster"]["join_valley"]  # before communities without a valley were joined
    run_json.write_text(json.dumps(run))
    r = runner.invoke(main, ["batch", *two, "-o", str(tmp_path / "b"), "--max-train", "4000", "--threshold", "5"])
    assert r.exit_code == 1 and "cluster.join_valley 2.0 → 0.9" in r.output, r.output
    run["config"]["cluster"]["join_valley"] = 0.9
    del run["config"]["curation"]["min_excess_share"]  # before chance followers could join a burst's unit
    run_json.write_text(json.dumps(run))
    r = runner.invoke(main, ["batch", *two, "-o", str(tmp_path / "b"), "--max-train", "4000", "--threshold", "5"])
    assert r.exit_code == 1 and "curation.min_excess_share 0.0 → 0.5" in r.output, r.output
    run["config"]["curation"]["min_excess_share"] = 0.5
    del run["config"]["curation"]["max_refractory_share"]  # before a burst's second mode could join whole
    run_json.write_text(json.dumps(run))
    r = runner.invoke(main, ["batch", *two, "-o", str(tmp_path / "b"), "--max-train", "4000", "--threshold", "5"])
    assert r.exit_code == 1 and "curation.max_refractory_share None → 0.2" in r.output, r.output


def test_a_resumed_batch_writes_exports_again_when_their_metadata_changed(sessions, tmp_path):
    pynwb = pytest.importorskip("pynwb")
    args = ["batch", str(sessions / "day0.ns6"), "-o", str(tmp_path / "n"), "--features", "pca", "--export", "nwb",
            "--export", "phy", "-q"]
    runner = CliRunner()
    assert runner.invoke(main, args).exit_code == 0
    nwb = tmp_path / "n" / "day0.spikevae" / "sorting.nwb"
    with pynwb.NWBHDF5IO(str(nwb), "r") as io:
        assert io.read().subject.subject_id is None
    phy = tmp_path / "n" / "day0.spikevae" / "phy"
    (phy / "cluster_group.tsv").write_text("cluster_id\tgroup\n0\tgood\n")  # curated in phy meanwhile
    r = runner.invoke(main, [*args, "--subject-id", "M1", "--species", "Macaca mulatta", "--age", "P7Y"])
    assert r.exit_code == 0 and "1 already done" in r.output, r.output
    with pynwb.NWBHDF5IO(str(nwb), "r") as io:
        assert io.read().subject.subject_id == "M1"
    assert (phy / "cluster_group.tsv").read_text() == "cluster_id\tgroup\n0\tgood\n"  # NWB metadata: phy kept
