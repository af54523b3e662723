"""Resources stay bounded: option ranges refused before any reading, workers and threads
capped by the cores, a hang-up cleans up as an interrupt does."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from spikevae.cli import main
from spikevae.sorting.parallel import available_cores, torch_threads
from spikevae.io.reader import parse_channels


@pytest.mark.parametrize("option, message", [
    (["--steps", str(2**62)], "--steps 4611686018427387904: must be within 1..1000000"),
    (["--pca-components", "1000", "--features", "pca"], "--pca-components 1000: must be within 1..48 (the waveform's samples)"),
    (["--latent-dim", "500"], "--latent-dim 500: must be within 1..48"),
    (["--max-train", "10000000000"], "--max-train 10000000000: must be within 200..50000000"),
])
def test_out_of_range_options_are_refused_in_one_line_before_reading(tmp_path, option, message):
    missing = tmp_path / "never-read.ns6"  # the range is checked before the file is looked at
    r = CliRunner().invoke(main, ["sort", str(missing), "-o", str(tmp_path / "r"), *option])
    assert r.exit_code == 1 and r.output.strip() == f"Error: {message}", r.output


def test_a_huge_channel_range_selects_without_listing_it():
    import numpy as np

    assert parse_channels("1-2000000000", np.arange(1, 97)).tolist() == list(range(1, 97))
    assert parse_channels("90-2000000000,3", np.arange(1, 97)).tolist() == [3, *range(90, 97)]


def test_simulate_into_a_missing_folder_is_one_line(tmp_path):
    r = CliRunner().invoke(main, ["simulate", str(tmp_path / "no" / "dir" / "x.ns6"), "--duration", "1"])
    assert r.exit_code == 1 and "no such folder" in r.output and len(r.output.strip().splitlines()) == 1


def test_threads_are_the_cores_shared_among_jobs_and_recorded(sorted_small):
    assert torch_threads(None) == available_cores()
    assert torch_threads(None, jobs=available_cores() * 2) == 1
    assert torch_threads(3, jobs=8) == 3
    result, _ = sorted_small
    run = json.loads((result.out / "run.json").read_text())
    assert run["threads"] == available_cores() and run["config"]["threads"] is None


def test_a_hang_up_removes_the_partial_result_and_its_lock(small_recording, tmp_path):
    path, _ = small_recording
    out = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-m", "spikevae", "sort", str(path), "-o", str(out), "-q",
                             "--device", "cpu"], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list(tmp_path.glob(".r.partial-*")) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGHUP)
    _, err = proc.communicate(timeout=120)
    # 130 from the interrupt handler; now and then (1 run in ~10) the interpreter ends by SIGINT after it
    assert proc.returncode in (130, -signal.SIGINT) and "interrupted" in err, (proc.returncode, err)
    assert not out.exists() and not list(tmp_path.glob(".r*")), list(tmp_path.iterdir())


def test_pool_workers_end_when_their_sort_is_killed_outright(small_recording, tmp_path):
    path, _ = small_recording
    proc = subprocess.Popen([sys.executable, "-m", "spikevae", "sort", str(path), "-o", str(tmp_path / "r"),
                             "--workers", "2", "--features", "pca"], stderr=subprocess.PIPE, text=True)
    workers = []
    for line in proc.stderr:  # the pool is up once clustering has begun
        if line.startswith("cluster"):
            deadline = time.time() + 30
            while len(workers) < 2 and time.time() < deadline:
                children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout
                workers = [int(p) for p in children.split()]
                time.sleep(0.1)
            break
    proc.kill()
    proc.wait()
    assert workers
    deadline = time.time() + 10
    while any(os.path.exists(f"/proc/{w}") and "Z" not in open(f"/proc/{w}/stat").read().split()[2]
              for w in workers) and time.time() < deadline:
        time.sleep(0.2)
    alive = [w for w in workers if os.path.exists(f"/proc/{w}") and "Z" not in open(f"/proc/{w}/stat").read().split()[2]]
    assert not alive
