"""End to end: simulated .ns6 → spikevae.sort / the CLI → result folder, scored on ground truth."""
import csv
import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import spikevae
from spikevae.cli import main
from spikevae.sorting.detection import DetectionParams
from spikevae.simulators.groundtruth import score
from spikevae.simulators.simulation import SimulationConfig, simulate

from .conftest import FAST, fast_config

def test_sort_recovers_injected_units(sorted_small):
    result, gt = sorted_small
    spikes = spikevae.load_result(result.out)["spikes"]
    s = score(gt, spikes["timestamp"], spikes["unit"])
    clear = gt.unit_snr >= 10
    assert clear.sum() >= 3
    assert (s.accuracy[clear] >= 0.95).all(), s.accuracy.round(2)
    assert s.well_detected >= 3  # PCA features score the same units on this recording


def test_result_folder_holds_what_other_tools_load(sorted_small):
    result, _ = sorted_small
    out = result.out
    with np.load(out / "spikes.npz") as f:
        assert f["timestamp"].dtype == np.int64
        np.testing.assert_allclose(f["time_s"], f["timestamp"] / 30_000)
        n = len(f["timestamp"])
        assert f["latent"].shape == (n, FAST.latent_dim)
        assert len(f["unit"]) == len(f["electrode_id"]) == len(f["amplitude_uv"]) == n
        units = f["unit"]
        assert set(np.unique(f["electrode_id"])) <= set(range(1, 9))
    with open(out / "units.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["unit"]) for r in rows] == sorted(set(units[units >= 0]))
    assert all(int(r["n_spikes"]) == (units == int(r["unit"])).sum() for r in rows)
    with np.load(out / "waveforms.npz") as f:
        assert f["mean"].shape == f["sd"].shape == (len(rows), 48)
    run = json.loads((out / "run.json").read_text())
    assert run["input"]["file_spec"] == "2.3" and len(run["input"]["segments"]) == 2
    assert {"torch", "neo", "numpy", "spikevae"} <= set(run["versions"])
    assert set(run["seconds"]) == {"read_filter_detect", "train", "encode", "cluster", "split", "join", "curate",
                                   "measure", "label", "write"}
    assert run["counts"]["kept"] == n and run["device"] == "cpu"
    assert run["config"]["detection"]["threshold"] == 3.25  # the default 250–750 Hz band's
    assert run["config"]["vae"]["steps"] == 180  # the default with the band's contrastive term
    assert run["training_history"]["step"][-1] == 180
    assert not list(out.parent.glob(".*partial*"))


def test_seeded_sort_is_reproducible_on_any_number_of_workers_and_a_saved_model_is_reused(
        sorted_small, small_recording, tmp_path):
    result, _ = sorted_small
    path, _ = small_recording
    again = spikevae.sort(path, fast_config(workers=2), out=tmp_path / "again")
    reused = spikevae.sort(path, fast_config(), out=tmp_path / "reused", model=result.out / "model.pt")
    a, b, c = (spikevae.load_result(r.out)["spikes"] for r in (result, again, reused))
    np.testing.assert_array_equal(a["latent"], b["latent"])
    np.testing.assert_array_equal(a["unit"], b["unit"])
    np.testing.assert_array_equal(a["latent"], c["latent"])
    assert reused.seconds["train"] < 0.5 * result.seconds["train"]


def test_channel_selection_and_refusal_to_overwrite(small_recording, tmp_path):
    path, _ = small_recording
    out = tmp_path / "sel"
    spikevae.sort(path, fast_config(channels="1-4"), out=out)
    assert set(np.unique(spikevae.load_result(out)["spikes"]["electrode_id"])) <= {1, 2, 3, 4}
    stamp = (out / "run.json").stat().st_mtime_ns
    with pytest.raises(spikevae.SpikevaeError, match="--overwrite"):
        spikevae.sort(path, fast_config(), out=out)
    assert (out / "run.json").stat().st_mtime_ns == stamp
    spikevae.sort(path, fast_config(channels="5-8"), out=out, overwrite=True)
    assert set(np.unique(spikevae.load_result(out)["spikes"]["electrode_id"])) <= {5, 6, 7, 8}


def test_cli_sorts_and_reports_bad_input_in_one_line(small_recording, tmp_path):
    path, _ = small_recording
    runner = CliRunner()
    out = tmp_path / "cli"
    ok = runner.invoke(main, ["sort", str(path), "-o", str(out), "--steps", "30", "--max-train", "2000",
                              "--channels", "1-3", "--device", "cpu", "--workers", "2", "--quiet"])
    assert ok.exit_code == 0, ok.output
    assert (out / "units.csv").is_file()
    assert ok.stdout == f"{out}\n"  # --quiet still says where the result went, and nothing else

    def fails(args, message):
        r = runner.invoke(main, args)
        assert r.exit_code != 0
        assert message in r.output and "Traceback" not in r.output
        assert len(r.output.strip().splitlines()) == 1, r.output

    fails(["sort", str(tmp_path / "nope.ns6"), "-o", str(tmp_path / "x")], "no such file")
    fails(["sort", str(path), "--channels", "50-60", "-o", str(tmp_path / "x")], "matches none")
    fails(["sort", str(path), "-o", str(out)], "--overwrite")
    if not torch.cuda.is_available():
        fails(["sort", str(path), "--device", "cuda", "-o", str(tmp_path / "x")], "no CUDA GPU")
    assert not (tmp_path / "x").exists()


def test_too_short_to_train_and_no_spikes(tmp_path):
    short = tmp_path / "short.ns6"
    simulate(short, SimulationConfig(n_electrodes=4, duration_s=1.0, seed=2))
    with pytest.raises(spikevae.SpikevaeError, match="too few to train"):
        spikevae.sort(short, fast_config(), out=tmp_path / "s")
    assert not (tmp_path / "s").exists()
    cfg = fast_config()
    cfg.detection.threshold = 500.0
    empty = spikevae.sort(short, cfg, out=tmp_path / "e")
    res = spikevae.load_result(empty.out)
    assert empty.n_units == 0 and len(res["spikes"]["timestamp"]) == 0 and res["units"] == []


def test_a_real_process_prints_no_traceback(tmp_path):
    bad = tmp_path / "fake.ns6"
    bad.write_bytes(b"NEURALCD" + b"\0" * 20)
    r = subprocess.run([sys.executable, "-m", "spikevae", "sort", str(bad)], capture_output=True, text=True)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and "too short for an NSx header (28 of 314 bytes)" in r.stderr
    assert not (tmp_path / "fake.spikevae").exists()


@pytest.mark.parametrize("args, message", [
    (["--threshold", "-1"], "--threshold -1.0: must be > 0"),
    (["--threshold", "0"], "--threshold 0.0: must be > 0"),
    (["--steps", "0"], "--steps 0: must be within 1..1000000"),
    (["--seed", "-1"], "--seed -1: must be within"),
    (["--align-sample", "100"], "--align-sample 100: must be within 0..47"),
    (["--latent-dim", "0"], "--latent-dim 0: must be within 1..48"),
    (["--max-train", "0"], "--max-train 0: must be within 200..50000000"),
    (["--max-amplitude", "-1"], "--max-amplitude -1.0: must be > 0"),
    (["--channels", "5-1"], "runs backwards; write 1-5"),
])
def test_out_of_range_settings_are_refused_in_one_line_before_any_work(small_recording, tmp_path, args, message):
    path, _ = small_recording
    r = CliRunner().invoke(main, ["sort", str(path), "-o", str(tmp_path / "x"), "--quiet", *args])
    assert r.exit_code != 0 and message in r.output, r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob(".x.partial-*"))


def test_the_api_refuses_the_same_settings():
    with pytest.raises(spikevae.SpikevaeError, match="--steps 0"):
        spikevae.SortConfig(vae=dataclasses.replace(FAST, steps=0))
    with pytest.raises(spikevae.SpikevaeError, match="--threshold"):
        spikevae.SortConfig(detection=DetectionParams(threshold=-2.0))
    with pytest.raises(spikevae.SpikevaeError, match="64-sample"):
        spikevae.SortConfig(vae=dataclasses.replace(FAST, n_samples=64))
