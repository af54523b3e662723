"""The result folder: written under a temporary name and renamed only when complete.

Contents (all readable without spikevae):
- ``spikes.npz``: timestamp (int64 30 kHz ticks of the file clock), time_s, electrode_id,
  unit (global id, −1 = unsorted), amplitude_uv, latent (n × d);
- ``units.csv``: unit, electrode_id, n_spikes, firing_rate_hz, amplitude_uv, snr,
  isi_violation_fraction, isi_violations, isi_violations_ratio, l_ratio, presence_ratio,
  amplitude_cutoff, quality (good or mua; ``quality.py``);
- ``waveforms.npz``: unit, electrode_id, mean and sd (units × samples, µV);
- ``model.pt`` (the β-VAE) and ``run.json`` (configuration, versions, input, timings, counts).
"""
from __future__ import annotations

import csv
import errno
import glob
import json
import os
import shutil
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from filelock import FileLock, Timeout

from .. import __version__
from ..errors import SpikevaeError
from .reader import TICKS_PER_SECOND

if TYPE_CHECKING:
    from ..sorting.metrics import UnitTable
    from ..sorting.spikes import Spikes
    from .store import SpikeStore

UNIT_COLUMNS = ("unit", "electrode_id", "n_spikes", "firing_rate_hz", "amplitude_uv", "snr",
                "isi_violation_fraction", "isi_violations", "isi_violations_ratio", "l_ratio", "presence_ratio",
                "amplitude_cutoff", "quality")
INT_COLUMNS = ("unit", "electrode_id", "n_spikes", "isi_violations")
COMPLETE_FILES = ("spikes.npz", "spike_waveforms.npy", "units.csv", "waveforms.npz", "run.json")
RUN_KEYS = ("config", "input", "noise_uv", "threshold_uv", "counts", "versions")


def default_out(recording_path) -> Path:
    """``session.ns6`` → ``session.spikevae/`` beside it."""
    p = Path(recording_path)
    return p.with_name(p.stem + ".spikevae")


def save_npy(file, array, chunk_rows: int = 1 << 16) -> None:
    """``np.save`` into an open binary file, chunk by chunk: ``array`` (an array or an on-disk
    ``Column``) is never held whole in memory."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(array.dtype)), "fortran_order": False,
              "shape": tuple(array.shape)}
    np.lib.format.write_array_header_1_0(file, header)
    for i in range(0, len(array), chunk_rows):
        file.write(np.ascontiguousarray(array[i:i + chunk_rows]).tobytes())


def save_npz(path, **arrays) -> None:
    """``np.savez`` (uncompressed, read back by ``np.load``) with each array streamed as in ``save_npy``."""
    with zipfile.ZipFile(path, "w", allowZip64=True) as zf:
        for name, array in arrays.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                save_npy(f, array)


MARK = ".spikevae-output"  # in every folder spikevae writes: its kind and files, so --overwrite replaces only that
FOLDER_KINDS = ("result", "compare", "phy", "spikeinterface", "tracks")
EXPORT_FILES = {"sorting.nwb": "nwb", "sorting.nev": "nev"}  # exports' default names inside a result
EXPORTS_RECORD = "batch-exports.json"  # in a result: the metadata and map each batch export was written with
# an unmarked folder that an earlier version wrote: a result holds nothing but these
LEGACY_RESULT = {*COMPLETE_FILES, "model.pt", "compare", "phy", "spikeinterface", *EXPORT_FILES, EXPORTS_RECORD}


def not_ours(path: Path, kind: str) -> str | None:
    """Why ``path`` is not a ``kind`` that spikevae wrote (a folder kind holding only what
    spikevae wrote, or an "nwb", "nev" or "model" file), or None when ``--overwrite`` may
    replace it."""
    path = Path(path)
    if kind in FOLDER_KINDS:
        return _folder_not_ours(path, kind)
    if not path.is_file():
        return f"is not a file spikevae wrote (a {kind} export is a file)"
    try:
        with open(path, "rb") as f:
            head = f.read(76)
        if kind == "nev":
            ours = head[:8] == b"NEURALEV" and head[44:76].rstrip(b"\0") == b"spikevae"
        elif kind == "model":
            ours = zipfile.is_zipfile(path) and b"spikevae-vae" in _pickle_of(path)
        elif kind == "nwb":
            import h5py

            with h5py.File(path, "r") as f:
                script = f.get("general/source_script")
                ours = script is not None and script.attrs.get("file_name") == "spikevae"
        else:
            raise ValueError(f"unknown output kind {kind!r}")
    except (OSError, zipfile.BadZipFile, StopIteration):
        ours = False
    return None if ours else f"is not a {kind} file spikevae wrote"


def _folder_not_ours(path: Path, kind: str) -> str | None:
    if not path.is_dir():
        return f"is not a folder spikevae wrote (a {kind} is a folder)"
    names = {p.name for p in path.iterdir()} - {MARK}
    if (path / MARK).is_file():
        try:
            mark = json.loads((path / MARK).read_text())
            found, files = mark["kind"], set(mark["files"])
        except (OSError, ValueError, KeyError, TypeError):
            return f"has a damaged {MARK}"
        if found != kind:
            return f"holds a spikevae {found}, not a {kind}"
    elif kind == "result" and (path / "run.json").is_file() and names <= LEGACY_RESULT:
        files = names  # written by an earlier version, which left no mark
    elif kind != "result" and path.name == kind and _folder_not_ours(path.parent, "result") is None:
        return None    # an export or report an earlier version wrote in its default place in a result
    else:
        return "was not written by spikevae"
    others = sorted(n for n in names - files if not (kind == "result" and _export_inside(path, n)))
    return f"holds files spikevae did not write ({', '.join(others[:3])})" if others else None


def _export_inside(result: Path, name: str) -> bool:
    """Is ``name`` in a result folder an export or batch record spikevae wrote there later?"""
    if name in FOLDER_KINDS:
        return not_ours(result / name, name) is None
    if name in EXPORT_FILES:
        return not_ours(result / name, EXPORT_FILES[name]) is None
    return name == EXPORTS_RECORD


def _pickle_of(path: Path) -> bytes:
    with zipfile.ZipFile(path) as z:
        return z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))


def check_out(out: Path, overwrite: bool, kind: str) -> None:
    """Fail before any work if ``out`` exists and may not be replaced: without ``overwrite``,
    or when it is not a ``kind`` spikevae wrote (an input, a folder of the user's)."""
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise SpikevaeError(f"{out} already exists; pass --overwrite to replace it")
        why = not_ours(out, kind)
        if why is not None:
            raise SpikevaeError(f"{out} {why}; --overwrite replaces only what spikevae wrote, so it is kept: "
                                "choose another output")
    if not out.parent.is_dir():
        raise SpikevaeError(f"{out.parent}: no such folder for the output")


def check_free_space(folder: Path, needed_bytes: int) -> None:
    """Refuse to start writing what would not fit (a full disk otherwise fails half-way)."""
    free = shutil.disk_usage(folder).free
    if free < needed_bytes:
        raise SpikevaeError(f"{folder}: {needed_bytes / 1e6:.0f} MB needed for the result, "
                            f"{free / 1e6:.0f} MB free on that disk")


# a result cannot be written there: said in one line with the path, not as a traceback
_WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def _remove_stale_partials(out: Path) -> None:
    """Partial folders left by runs that were killed (their process is gone) are removed."""
    for partial in out.parent.glob(f".{glob.escape(out.name)}.partial-*"):
        try:
            os.kill(int(partial.name.rsplit("-", 1)[1]), 0)
        except ProcessLookupError:
            shutil.rmtree(partial, ignore_errors=True)
        except (ValueError, PermissionError):  # not our naming, or another user's live process
            pass


@contextmanager
def staged_folder(out: Path, overwrite: bool, kind: str = "result"):
    """Yield a temporary folder beside ``out``, marked as a spikevae ``kind``; on success it
    replaces ``out`` atomically (per rename), on any failure it is removed and ``out`` is left
    as it was. A lock beside ``out`` keeps a second run from writing the same result at the
    same time."""
    check_out(out, overwrite, kind)
    lock = FileLock(out.with_name(f".{out.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise SpikevaeError(f"{out}: another spikevae run is writing this result now") from None
    except OSError as exc:
        raise SpikevaeError(f"{out.parent}: cannot write there ({exc.strerror})") from None
    try:
        check_out(out, overwrite, kind)  # again, now that no other run can be writing it
        _remove_stale_partials(out)
        tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir()
            yield tmp
            write_json(tmp / MARK, {"kind": kind, "spikevae_version": __version__,
                                    "files": sorted(p.name for p in tmp.iterdir())})
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(exc, OSError) and exc.errno in _WRITE_ERRORS:
                raise SpikevaeError(f"{exc.filename or out}: cannot write the result ({exc.strerror}); "
                                    "nothing was kept") from None
            raise
        if out.exists() and not overwrite:  # made meanwhile by a run that took no lock (another host)
            shutil.rmtree(tmp, ignore_errors=True)
            raise SpikevaeError(f"{out} appeared while this run was writing it; pass --overwrite to replace it")
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        if out.exists():
            out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        lock.release()
        Path(lock.lock_file).unlink(missing_ok=True)


@contextmanager
def staged_file(out: Path, overwrite: bool, kind: str):
    """Yield a temporary path beside ``out`` (same suffix, which pynwb wants for .nwb); on
    success it replaces ``out`` in one rename, on failure it is removed. ``out`` is checked
    first as ``check_out`` checks it."""
    out = Path(out)
    check_out(out, overwrite, kind)
    tmp = out.with_name(f".{out.stem}.partial-{os.getpid()}{out.suffix}")
    try:
        yield tmp
        tmp.replace(out)
    except OSError as exc:
        if exc.errno in _WRITE_ERRORS:
            raise SpikevaeError(f"{exc.filename or out}: cannot write the {kind} ({exc.strerror}); "
                                "nothing was kept") from None
        raise
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # a read-only disk refuses even to remove what is not there
            pass


def write_units_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=UNIT_COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def write_result(folder: Path, spikes: Spikes, unit: np.ndarray, latent, table: UnitTable, *,
                 align_sample: int, scratch: SpikeStore) -> None:
    """A sort's spikes.npz, spike_waveforms.npy, waveforms.npz and units.csv in ``folder``
    (``load_result`` reads them back; run.json and model.pt are the caller's). The per-spike
    columns stream from disk: electrode ids and times are built in ``scratch`` a block at a time."""
    n = spikes.n
    electrode_id = scratch.create("electrode_id", np.int32)
    time_s = scratch.create("time_s", np.float64)
    for i in range(0, n, 1 << 20):
        sl = slice(i, i + (1 << 20))
        electrode_id[sl] = spikes.electrode_ids[np.asarray(spikes.electrode[sl])]
        time_s[sl] = spikes.timestamp[sl] / TICKS_PER_SECOND
    save_npz(folder / "spikes.npz", timestamp=spikes.timestamp, time_s=time_s, electrode_id=electrode_id,
             unit=unit, amplitude_uv=spikes.amplitude, latent=latent)
    with open(folder / "spike_waveforms.npy", "wb") as f:
        save_npy(f, spikes.waveform)
    np.savez(folder / "waveforms.npz", unit=np.arange(len(table.rows)), electrode_id=table.electrode_id,
             mean=table.mean, sd=table.sd, align_sample=align_sample)
    write_units_csv(folder / "units.csv", table.rows)


def write_json(path: Path, obj: dict) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, default=_json_default)
        f.write("\n")


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (np.ndarray,)):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)


@dataclass
class Result:
    """A finished result folder: ``spikes`` (spikes.npz's columns), ``units`` (units.csv's rows),
    ``waveforms`` (waveforms.npz), ``spike_waveforms`` (memory-mapped, n × samples) and ``run``
    (run.json), with what its readers ask of run.json as properties. ``result["spikes"]`` reads
    as ``result.spikes``, as the mapping an earlier ``load_result`` returned."""

    folder: Path
    spikes: dict
    units: list[dict]
    waveforms: dict
    spike_waveforms: np.ndarray
    run: dict

    def __getitem__(self, key: str):
        return getattr(self, key)

    @classmethod
    def load(cls, folder) -> "Result":
        """Read ``folder``. The one version policy: a result whose run.json lacks what this version
        reads (``RUN_KEYS``) is refused, naming it; settings sections it predates take their
        defaults (``SortConfig.from_dict``). A damaged or hand-edited file is named in one line."""
        folder = Path(folder)
        missing = [f for f in COMPLETE_FILES if not (folder / f).is_file()]
        if missing:
            raise SpikevaeError(f"{folder}: not a complete spikevae result (missing {', '.join(missing)})")
        name = ""
        try:
            name = "spikes.npz"
            with np.load(folder / name) as f:
                spikes = {k: f[k] for k in f.files}
            name = "waveforms.npz"
            with np.load(folder / name) as f:
                waveforms = {k: f[k] for k in f.files}
            name = "units.csv"
            with open(folder / name, newline="") as f:
                units = [{k: int(v) if k in INT_COLUMNS else v if k == "quality" else float(v)
                          for k, v in r.items()} for r in csv.DictReader(f)]
            name = "run.json"
            with open(folder / name) as f:
                run = json.load(f)
            name = "spike_waveforms.npy"
            spike_waveforms = np.load(folder / name, mmap_mode="r")
        except (OSError, ValueError, TypeError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            raise SpikevaeError(f"{folder}: {name} is damaged or truncated ({type(exc).__name__}); "
                                "sort the recording again") from None
        absent = [k for k in RUN_KEYS if k not in run] if isinstance(run, dict) else list(RUN_KEYS)
        if absent:
            raise SpikevaeError(f"{folder}: written by another spikevae version (run.json lacks {', '.join(absent)}); "
                                "sort the recording again")
        n = len(spikes.get("timestamp", ()))
        if any(k not in spikes or len(spikes[k]) != n for k in ("electrode_id", "unit", "amplitude_uv")) \
                or len(spike_waveforms) != n:
            raise SpikevaeError(f"{folder}: spikes.npz and spike_waveforms.npy do not hold the same spikes; "
                                "sort the recording again")
        why = _inconsistent(spikes, units, run)
        if why:
            raise SpikevaeError(f"{folder}: {why}; was it edited by hand? Sort the recording again")
        return cls(folder, spikes, units, waveforms, spike_waveforms, run)

    @property
    def input(self) -> dict:
        """run.json's description of what was sorted."""
        return self.run["input"]

    @property
    def name(self) -> str:
        return self.input["name"]

    @property
    def electrode_ids(self) -> np.ndarray:
        return np.asarray(self.input["electrodes"], int)

    @property
    def segments(self) -> list[tuple[int, int]]:
        """(first tick on the file clock, samples) of each recorded segment."""
        return [(s["start_tick"], s["n_samples"]) for s in self.input["segments"]]

    @property
    def duration_s(self) -> float:
        return self.input["duration_s"]

    @cached_property
    def config(self):
        """The SortConfig the result was sorted with (parsed from run.json once)."""
        from ..config import SortConfig

        return SortConfig.from_dict(self.run["config"])

    @property
    def features(self) -> str:
        return self.run.get("features", "vae")

    @property
    def model_checksum(self) -> str | None:
        """Of the model.pt it was embedded with (--model, batch); None when it trained its own."""
        return self.run.get("model_checksum")

    def per_electrode(self, key: str) -> np.ndarray:
        """run.json's ``noise_uv`` or ``threshold_uv``, in ``electrode_ids`` order."""
        return np.array([self.run[key][str(e)] for e in self.electrode_ids])


def load_result(folder) -> Result:
    """A finished result folder (``Result.load``)."""
    return Result.load(folder)


def _inconsistent(spikes: dict, units: list[dict], run: dict) -> str | None:
    """What in a result's files contradicts the rest (a hand edit, another version's result)."""
    from ..config import SortConfig

    try:
        SortConfig.from_dict(run["config"])
    except (TypeError, KeyError, ValueError, AttributeError, SpikevaeError) as exc:
        return f"run.json's config is not this version's ({type(exc).__name__}: {exc})"
    if not all(np.isfinite(spikes[k]).all() for k in ("amplitude_uv", "timestamp")):
        return "spikes.npz holds amplitudes or times that are not numbers"
    if len(spikes["timestamp"]) and np.any(np.diff(spikes["timestamp"]) < 0):
        return "spikes.npz is not in time order"
    ids = {u["unit"] for u in units}
    sorted_ids = set(np.unique(spikes["unit"][spikes["unit"] >= 0]).tolist())
    if sorted_ids != ids or any(u < -1 for u in np.unique(spikes["unit"]).tolist()):
        return f"spikes.npz's units and units.csv's differ ({len(sorted_ids ^ ids)} ids in one only)"
    return None
