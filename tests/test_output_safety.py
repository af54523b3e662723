"""Result folders are never half-written, never silently replaced by a concurrent run, and a
destination that cannot take them is named in one line."""
import os
import subprocess
import sys
from contextlib import contextmanager

import pytest
from click.testing import CliRunner

import spikevae
from spikevae.cli import main

from .conftest import fast_config


def test_a_second_run_into_the_same_result_is_refused_while_the_first_writes(small_recording, tmp_path):
    path, _ = small_recording
    out = tmp_path / "result"
    holder = subprocess.Popen([sys.executable, "-c", "import sys; from filelock import FileLock; "
                               f"l = FileLock({str(tmp_path / '.result.lock')!r}); l.acquire(); "
                               "print('held', flush=True); sys.stdin.read()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(spikevae.SpikevaeError, match="another spikevae run is writing"):
            spikevae.sort(path, fast_config(features="pca"), out=out)
        assert not out.exists()
    finally:
        holder.communicate("")
    spikevae.sort(path, fast_config(features="pca"), out=out)  # once the first is done
    assert (out / "run.json").is_file() and not (tmp_path / ".result.lock").exists()


def test_partials_of_killed_runs_are_removed_and_live_ones_kept(small_recording, tmp_path):
    path, _ = small_recording
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".result.partial-{int(dead.stdout)}"
    (stale / "work").mkdir(parents=True)
    (stale / "work" / "waveform.bin").write_bytes(b"x" * 1000)
    live = tmp_path / f".result.partial-{os.getppid()}"
    live.mkdir()
    spikevae.sort(path, fast_config(features="pca"), out=tmp_path / "result")
    assert not stale.exists() and live.exists()


@contextmanager
def tmpfs(folder, size_kb):
    folder.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs",
                                            str(folder)], capture_output=True).returncode:
        pytest.skip("needs root and mount for a small or read-only file system")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def one_line_failure(args, message):
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit), r.output
    assert message in r.output and len(r.output.strip().splitlines()) == 1, r.output


def test_a_read_only_destination_is_named_in_one_line(small_recording, tmp_path):
    path, _ = small_recording
    with tmpfs(tmp_path / "ro", 1024) as ro:
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        one_line_failure(["sort", str(path), "-o", str(ro / "result"), "--features", "pca", "--quiet"],
                         "cannot write there (Read-only file system)")


@pytest.mark.parametrize("size_kb, message", [
    (64, "cannot write the result (No space left on device)"),  # the detected spikes do not fit
    (512, "MB needed for the result, 0 MB free on that disk"),   # they do, the result would not
])
def test_a_full_disk_is_named_in_one_line_and_nothing_is_kept(small_recording, tmp_path, size_kb, message):
    path, _ = small_recording
    with tmpfs(tmp_path / "small", size_kb) as small:
        one_line_failure(["sort", str(path), "-o", str(small / "result"), "--features", "pca", "--quiet"], message)
        assert os.listdir(small) == []


def test_a_result_that_appears_during_the_run_is_not_replaced(tmp_path):
    from spikevae.io.output import staged_folder

    out = tmp_path / "result"
    with pytest.raises(spikevae.SpikevaeError, match="appeared while this run was writing"):
        with staged_folder(out, overwrite=False) as tmp:
            (tmp / "run.json").write_text("{}")
            out.mkdir()                       # another host's run, which took no lock, finished first
            (out / "theirs").write_text("kept")
    assert (out / "theirs").read_text() == "kept" and not list(tmp_path.glob(".result.partial-*"))


@pytest.fixture()
def user_data(small_recording, tmp_path):
    """A user's folder: a recording, a notes file, a thesis folder; and a result sorted from the recording."""
    data = tmp_path / "data"
    data.mkdir()
    rec = data / "rec.ns6"
    rec.write_bytes(small_recording[0].read_bytes())
    (data / "notes.txt").write_text("session notes")
    (tmp_path / "thesis").mkdir()
    (tmp_path / "thesis" / "chapter1.tex").write_text("\\chapter{One}")
    result = spikevae.sort(rec, fast_config(features="pca"), out=tmp_path / "R").out
    return rec, result


@pytest.mark.parametrize("args, what", [
    (["sort", "{rec}", "-o", "{data}", "--features", "pca", "-q"], "was not written by spikevae"),
    (["sort", "{rec}", "-o", "{thesis}", "--features", "pca", "-q"], "was not written by spikevae"),
    (["export", "{R}", "--to", "nev", "-o", "{rec}"], "is not a nev file spikevae wrote"),
    (["export", "{R}", "--to", "phy", "-o", "{R}"], "holds a spikevae result, not a phy"),
    (["compare", "{R}", "-o", "{R}", "-q"], "holds a spikevae result, not a compare"),
])
def test_overwrite_never_replaces_what_spikevae_did_not_write(user_data, tmp_path, args, what):
    rec, result = user_data
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    names = {"rec": rec, "data": rec.parent, "thesis": tmp_path / "thesis", "R": result}
    one_line_failure([a.format(**names) for a in args] + ["--overwrite"], what)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_overwrite_replaces_what_spikevae_wrote_and_keeps_a_result_holding_the_users_files(user_data, monkeypatch):
    rec, result = user_data
    runner = CliRunner()
    for fmt in ("nev", "phy"):
        for _ in range(2):  # the second time over its own export
            r = runner.invoke(main, ["export", str(result), "--to", fmt, "--overwrite"])
            assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["sort", str(rec), "-o", str(result), "--features", "pca", "--overwrite", "-q"])
    assert r.exit_code == 0, r.output          # a result with its exports inside is spikevae's
    (result / ".spikevae-output").unlink()      # as an earlier version left it: recognised by its files
    r = runner.invoke(main, ["sort", str(rec), "-o", str(result), "--features", "pca", "--overwrite", "-q"])
    assert r.exit_code == 0, r.output
    (result / "my-analysis.ipynb").write_text("{}")
    monkeypatch.chdir(result.parent)
    for out in (str(result), "."):
        one_line_failure(["sort", str(rec), "-o", out, "--features", "pca", "--overwrite", "-q"],
                         "spikevae" if out == "." else "holds files spikevae did not write (my-analysis.ipynb)")
    assert (result / "my-analysis.ipynb").is_file()


def test_exports_and_batches_onto_a_read_only_disk_are_one_line(user_data, tmp_path):
    rec, result = user_data
    with tmpfs(tmp_path / "ro", 1024) as ro:
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        for fmt in ("nev", "phy"):
            one_line_failure(["export", str(result), "--to", fmt, "-o", str(ro / f"x.{fmt}")],
                             "(Read-only file system)")
        one_line_failure(["batch", str(rec), "-o", str(ro / "b"), "--features", "pca", "-q"],
                         "cannot write there (Read-only file system)")
