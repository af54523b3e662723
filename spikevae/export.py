"""Exports of a result folder to what the next tool opens: NWB, phy, Blackrock .nev and
SpikeInterface. Each is checked in the tests by its real consumer library."""
from __future__ import annotations

import datetime as _dt
import importlib
import json
import os
import warnings
from pathlib import Path

import numpy as np

from . import __version__
from .errors import SpikevaeError
from .nev import write_nev
from .output import check_out, load_result, staged_folder
from .utah import grid_positions

FORMATS = ("nwb", "phy", "nev", "spikeinterface")
EXTRAS = {"nwb": ("pynwb", "nwb"), "phy": (None, "phy"), "nev": (None, None),
          "spikeinterface": ("spikeinterface", "spikeinterface")}


def require_extra(module: str, extra: str, what: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise SpikevaeError(f"{what} needs {module.split('.')[0]}: pip install 'spikevae[{extra}]'") from None


def default_target(result: Path, fmt: str) -> Path:
    return {"nwb": result / "sorting.nwb", "phy": result / "phy", "nev": result / "sorting.nev",
            "spikeinterface": result / "spikeinterface"}[fmt]


def export(result, fmt: str, out=None, overwrite: bool = False, subject: dict | None = None) -> Path:
    """Write ``result`` (a finished result folder) as ``fmt``; returns where it went.
    ``subject`` (subject_id, species, sex, age as ISO 8601 duration) goes into NWB files:
    a Blackrock file does not record it, and NWB archives (DANDI) require it."""
    if fmt not in FORMATS:
        raise SpikevaeError(f"--to {fmt}: unknown format; choose one of {', '.join(FORMATS)}")
    module, extra = EXTRAS[fmt]
    if module is not None:
        require_extra(module, extra, f"export to {fmt}")
    result = Path(result)
    res = load_result(result)
    out = Path(out) if out is not None else default_target(result, fmt)
    writer = {"nwb": lambda r, s, p: _nwb(r, s, p, subject or {}), "phy": _phy, "nev": _nev,
              "spikeinterface": _spikeinterface}[fmt]
    if fmt in ("phy", "spikeinterface"):
        with staged_folder(out, overwrite) as tmp:
            writer(result, res, tmp)
        return out
    check_out(out, overwrite)
    # the partial file keeps its suffix: pynwb warns about an HDF5 file not named .nwb
    tmp = out.with_name(f".{out.stem}.partial-{os.getpid()}{out.suffix}")
    try:
        writer(result, res, tmp)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _channels(res) -> tuple[np.ndarray, dict[int, int]]:
    ids = np.asarray(res["run"]["input"]["electrodes"], int)
    return ids, {int(e): i for i, e in enumerate(ids)}


def _local_classes(spikes, units) -> np.ndarray:
    """Blackrock unit classification: 1..n for an electrode's units, 0 for unsorted spikes."""
    lut = np.zeros(len(units) + 1, np.int32)  # index −1 (unsorted) reads the trailing 0
    count: dict[int, int] = {}
    for u in units:  # in unit order, so each electrode's units are ranked by id
        count[u["electrode_id"]] = count.get(u["electrode_id"], 0) + 1
        lut[u["unit"]] = count[u["electrode_id"]]
    return lut[spikes["unit"]]


def _nev(result: Path, res: dict, path: Path) -> None:
    spikes, run = res["spikes"], res["run"]
    ids, _ = _channels(res)
    thr = np.array([run["threshold_uv"][str(e)] for e in ids]) * (-1 if run["config"]["detection"]["polarity"] != "pos" else 1)
    write_nev(path, spikes["timestamp"], spikes["electrode_id"], _local_classes(spikes, res["units"]),
              res["spike_waveforms"], ids, thresholds_uv=thr,
              band_hz=tuple(run["config"]["band_hz"]), comment=f"sorted by spikevae {__version__}",
              start_time=_start(run))


def _start(run: dict) -> _dt.datetime:
    when = run["input"].get("start_time")
    return _dt.datetime.fromisoformat(when) if when else _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def _phy(result: Path, res: dict, folder: Path) -> None:
    """Kilosort/phy layout: one template per unit on its electrode, plus one "unsorted"
    cluster per electrode (phy needs every spike in a cluster); latent features as PC features."""
    spikes, units, wf = res["spikes"], res["units"], res["waveforms"]
    ids, channel = _channels(res)
    n_units = len(units)
    spike_channel = np.array([channel[int(e)] for e in spikes["electrode_id"]], np.int32)
    clusters = np.where(spikes["unit"] >= 0, spikes["unit"], n_units + spike_channel).astype(np.int32)
    waveforms = res["spike_waveforms"]
    n_samples = waveforms.shape[1]
    templates = np.zeros((n_units + len(ids), n_samples, 1), np.float32)
    template_channel = np.zeros((n_units + len(ids), 1), np.int32)
    templates[:n_units, :, 0] = wf["mean"]
    template_channel[:n_units, 0] = [channel[int(e)] for e in wf["electrode_id"]]
    for c in range(len(ids)):
        members = np.flatnonzero(clusters == n_units + c)
        if len(members):
            templates[n_units + c, :, 0] = np.asarray(waveforms[members[:2000]]).mean(axis=0)
        template_channel[n_units + c, 0] = c
    np.save(folder / "spike_times.npy", spikes["timestamp"].astype(np.uint64))
    np.save(folder / "spike_templates.npy", clusters)
    np.save(folder / "spike_clusters.npy", clusters)
    np.save(folder / "amplitudes.npy", np.abs(spikes["amplitude_uv"]).astype(np.float32))
    np.save(folder / "templates.npy", templates)
    np.save(folder / "templates_ind.npy", template_channel)
    np.save(folder / "channel_map.npy", np.arange(len(ids), dtype=np.int32))
    np.save(folder / "channel_positions.npy", grid_positions(ids))
    np.save(folder / "pc_features.npy", spikes["latent"][:, :, None].astype(np.float32))
    np.save(folder / "pc_feature_ind.npy", template_channel)
    np.save(folder / "similar_templates.npy", np.zeros((len(templates),) * 2, np.float32))
    with open(folder / "cluster_group.tsv", "w") as f:
        f.write("cluster_id\tgroup\n")
        f.writelines(f"{u}\tgood\n" for u in range(n_units))
        f.writelines(f"{n_units + c}\tnoise\n" for c in range(len(ids)))
    (folder / "params.py").write_text(
        f"dat_path = []\nn_channels_dat = {len(ids)}\ndtype = 'int16'\noffset = 0\n"
        f"sample_rate = 30000.0\nhp_filtered = True\n"
        f"# spike_times.npy are ticks of the Blackrock file clock ({res['run']['input']['name']}), pauses included\n")


def _nwb(result: Path, res: dict, path: Path, subject: dict) -> None:
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.file import Subject
    from pynwb.misc import Units

    spikes, units, wf, run = res["spikes"], res["units"], res["waveforms"], res["run"]
    ids, channel = _channels(res)
    nwb = NWBFile(
        session_description=f"spike sorting of {run['input']['name']} by spikevae {__version__}",
        identifier=f"spikevae-{run['input']['name']}-{run['input']['bytes']}",
        session_start_time=_start(run),
        source_script=json.dumps({"spikevae": __version__, "config": run["config"], "versions": run["versions"]}),
        source_script_file_name="spikevae",
        subject=Subject(**{"subject_id": "unknown", "sex": "U", **{k: v for k, v in subject.items() if v}},
                        description="given to spikevae export"),
    )
    model = nwb.create_device_model(name="Utah array", manufacturer="Blackrock Neurotech")
    device = nwb.create_device(name="UtahArray", description="96-channel Utah array, Blackrock front end",
                               model=model)
    group = nwb.create_electrode_group(name="utah", description="Utah array, 400 µm pitch",
                                       location="unknown", device=device)
    nwb.add_electrode_column(name="electrode_id", description="Blackrock electrode id")
    nwb.add_electrode_column(name="noise_uv", description="robust noise SD of the filtered signal (µV)")
    for e, (x, y) in zip(ids, grid_positions(ids)):
        nwb.add_electrode(group=group, location="unknown", rel_x=float(x), rel_y=float(y),
                          electrode_id=int(e), noise_uv=float(run["noise_uv"][str(e)]))
    nwb.units = Units(name="units", description="units sorted by spikevae (unsorted spikes left out)",
                      waveform_rate=30000.0, waveform_unit="microvolts", resolution=1 / 30000.0)
    for name, desc in (("snr", "peak of the mean waveform / noise SD"),
                       ("isi_violation_fraction", "share of inter-spike intervals under 1.5 ms"),
                       ("firing_rate_hz", "spikes per second of recording"),
                       ("amplitude_uv", "median absolute trough amplitude (µV)")):
        nwb.add_unit_column(name=name, description=desc)
    time_s = spikes["time_s"]
    for u, row in enumerate(units):
        nwb.add_unit(spike_times=time_s[spikes["unit"] == row["unit"]], electrodes=[channel[row["electrode_id"]]],
                     electrode_group=group, waveform_mean=wf["mean"][u], waveform_sd=wf["sd"][u],
                     snr=row["snr"], isi_violation_fraction=row["isi_violation_fraction"],
                     firing_rate_hz=row["firing_rate_hz"], amplitude_uv=row["amplitude_uv"])
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)


def _spikeinterface(result: Path, res: dict, folder: Path) -> None:
    with warnings.catch_warnings():
        # an in-memory NumpySorting has no provenance to save; the saved folder is the sorting
        warnings.filterwarnings("ignore", "The extractor is not serializable", UserWarning)
        to_spikeinterface(result).save(folder=folder / "sorting", overwrite=True)


def to_spikeinterface(result):
    """The sorted units of a result folder as a SpikeInterface ``BaseSorting`` (samples are
    ticks of the Blackrock file clock at 30 kHz; unsorted spikes are left out)."""
    core = require_extra("spikeinterface.core", "spikeinterface", "to_spikeinterface")
    spikes = load_result(result)["spikes"]
    keep = spikes["unit"] >= 0
    return core.NumpySorting.from_samples_and_labels([spikes["timestamp"][keep]], [spikes["unit"][keep]], 30_000.0)
