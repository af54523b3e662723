"""Exports of a result folder to what the next tool opens: NWB, phy, Blackrock .nev and
SpikeInterface. Each is checked in the tests by its real consumer library."""
from __future__ import annotations

import datetime as _dt
import importlib
import json
import warnings
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import SpikevaeError
from ..io.nev import write_nev
from ..io.output import Result, load_result, staged_file, staged_folder
from ..io.reader import TICKS_PER_SECOND
from ..io.geometry import recording_geometry

FORMATS = ("nwb", "phy", "nev", "spikeinterface")
NWB_FIELDS = ("subject_id", "species", "sex", "age", "experimenter", "institution", "lab", "session_description",
              "experiment_description", "keywords")
DANDI_REQUIRED = ("subject_id", "species", "age")  # nwbinspector CRITICAL under --config dandi (sex is written U when not given)
PHY_SUBSET = 500  # spike waveforms per cluster for phy's waveform view
EXTRAS = {"nwb": ("pynwb", "nwb"), "phy": (None, "phy"), "nev": (None, None),
          "spikeinterface": ("spikeinterface", "spikeinterface")}


class DandiWarning(UserWarning):
    """An NWB file is written without metadata that the DANDI archive requires."""


def dandi_missing(metadata: dict) -> str | None:
    """What DANDI would reject an NWB file with this metadata for, with the options that fix it."""
    missing = [k for k in DANDI_REQUIRED if not metadata.get(k)]
    if missing:
        return (f"no {', '.join(missing)}; DANDI rejects an NWB file without them "
                f"(pass --{' --'.join(m.replace('_', '-') for m in missing)})")
    return None


def electrode_positions(electrode_ids, electrode_map=None) -> np.ndarray:
    """(x, y) µm of each electrode: from a Blackrock .cmp map file when given, else the default grid."""
    return recording_geometry(np.asarray(electrode_ids), electrode_map).positions


def require_extra(module: str, extra: str, what: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise SpikevaeError(f"{what} needs {module.split('.')[0]}: pip install 'spikevae[{extra}]'") from None


def default_target(result: Path, fmt: str) -> Path:
    return {"nwb": result / "sorting.nwb", "phy": result / "phy", "nev": result / "sorting.nev",
            "spikeinterface": result / "spikeinterface"}[fmt]


def export(result, fmt: str, out=None, overwrite: bool = False, *, metadata: dict | None = None,
           electrode_map=None, traces: bool = False, tracks=None) -> Path:
    """Write ``result`` (a finished result folder) as ``fmt``; returns where it went.

    ``metadata`` (keys of ``NWB_FIELDS``: subject_id, species, sex, age as an ISO 8601
    duration, experimenter, institution, lab, session_description, experiment_description,
    keywords) goes into NWB files: a Blackrock file does not record it, and DANDI requires the
    subject's; a warning names what DANDI would reject. ``electrode_map`` is the array's
    Blackrock map file (.cmp) for the electrodes' true positions [default: ``utah.grid_positions``].
    ``traces`` (phy only) also writes the recording band-passed as the sort filtered it, so that
    phy shows traces and every spike's waveform. ``tracks`` (a folder ``spikevae track`` wrote
    over sessions that include this one) adds each unit's track id as a unit column."""
    if fmt not in FORMATS:
        raise SpikevaeError(f"--to {fmt}: unknown format; choose one of {', '.join(FORMATS)}")
    if traces and fmt != "phy":
        raise SpikevaeError(f"--traces: only a phy export holds traces, not {fmt}")
    if tracks is not None and fmt == "nev":
        raise SpikevaeError("--tracks: a .nev has no unit columns; export to nwb, phy or spikeinterface")
    module, extra = EXTRAS[fmt]
    if module is not None:
        require_extra(module, extra, f"export to {fmt}")
    result = Path(result)
    res = load_result(result)
    out = Path(out) if out is not None else default_target(result, fmt)
    positions = electrode_positions(res.electrode_ids, electrode_map)
    if tracks is not None:
        from ..tracking.track import load_track_ids

        track_of = load_track_ids(tracks, result)
        for u in res.units:
            u["track_id"] = track_of[u["unit"]]
    meta = {k: v for k, v in (metadata or {}).items() if v not in (None, "", ())}
    unknown = sorted(set(meta) - set(NWB_FIELDS))
    if unknown:
        raise SpikevaeError(f"unknown NWB metadata {', '.join(unknown)}; choose from {', '.join(NWB_FIELDS)}")
    if fmt == "nwb" and dandi_missing(meta):
        warnings.warn(f"{out.name}: {dandi_missing(meta)}", DandiWarning, stacklevel=2)
    recording = _sorted_recording(res) if traces else None  # a moved or changed file: said before writing
    writer = {"nwb": lambda r, s, p: _nwb(r, s, p, meta, positions),
              "phy": lambda r, s, p: _phy(r, s, p, positions, recording),
              "nev": _nev, "spikeinterface": _spikeinterface}[fmt]
    if fmt in ("phy", "spikeinterface"):
        with staged_folder(out, overwrite, fmt) as tmp:
            writer(result, res, tmp)
        return out
    with staged_file(out, overwrite, fmt) as tmp:
        writer(result, res, tmp)
    return out


def _channels(res: Result) -> tuple[np.ndarray, dict[int, int]]:
    ids = res.electrode_ids
    return ids, {int(e): i for i, e in enumerate(ids)}


def _local_classes(spikes, units) -> np.ndarray:
    """Blackrock unit classification: 1..n for an electrode's units, 0 for unsorted spikes."""
    lut = np.zeros(len(units) + 1, np.int32)  # index −1 (unsorted) reads the trailing 0
    count: dict[int, int] = {}
    for u in units:  # in unit order, so each electrode's units are ranked by id
        count[u["electrode_id"]] = count.get(u["electrode_id"], 0) + 1
        lut[u["unit"]] = count[u["electrode_id"]]
    return lut[spikes["unit"]]


def _nev(result: Path, res: Result, path: Path) -> None:
    spikes, cfg = res.spikes, res.config
    ids, _ = _channels(res)
    thr = res.per_electrode("threshold_uv") * (-1 if cfg.detection.polarity != "pos" else 1)
    write_nev(path, spikes["timestamp"], spikes["electrode_id"], _local_classes(spikes, res.units),
              res.spike_waveforms, ids, thresholds_uv=thr, band_hz=tuple(cfg.band_hz),
              comment=f"sorted by spikevae {__version__}", start_time=_start(res))


def _start(res: Result) -> _dt.datetime:
    when = res.input.get("start_time")
    return _dt.datetime.fromisoformat(when) if when else _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def _sorted_recording(res: Result):
    """The .nsX file a result was sorted from, opened as the sort opened it, if it is still there
    and still that file (same name and size)."""
    from ..io.reader import open_recording

    info, cfg = res.input, res.config
    path = Path(info["path"]) if info.get("path") else None
    if path is None or not path.is_file() or path.suffix.lower() == ".nev":
        raise SpikevaeError(f"--traces needs the continuous recording the result was sorted from "
                            f"({info.get('path') or info['name']}), which is not there")
    if path.stat().st_size != info.get("bytes"):
        raise SpikevaeError(f"--traces: {path} is not the file that was sorted (its size changed)")
    return open_recording(path, cfg.channels, cfg.gap_tolerance_ms)


def _write_traces(recording, res: Result, path: Path, n_columns: int) -> np.ndarray:
    """The recording band-passed as the sort filtered it, int16 at 0.25 µV per bit, time-major
    with electrode e in column e (phy reads channel_map as columns); segments end to end. Returns
    each spike's sample in that file."""
    from ..sorting.filtering import BandpassFilter

    cfg = res.config
    filt = BandpassFilter(recording, *cfg.band_hz, cfg.filter_order)
    columns = np.asarray(recording.electrode_ids, int)
    with open(path, "wb") as f:
        for chunk in filt.chunks(int(2 * TICKS_PER_SECOND)):
            block = np.zeros((chunk.stop - chunk.start, n_columns), np.int16)
            block[:, columns] = np.clip(np.round(chunk.data.T * 4), -32768, 32767)
            f.write(block.tobytes())
    ticks = res.spikes["timestamp"]
    starts = np.array([s.start_tick for s in recording.segments], np.int64)
    before = np.concatenate([[0], np.cumsum([s.n_samples for s in recording.segments])[:-1]])
    seg = np.searchsorted(starts, ticks, "right") - 1
    return ticks - starts[seg] + before[seg]


def _phy(result: Path, res: Result, folder: Path, positions: np.ndarray, recording=None) -> None:
    """Kilosort/phy layout: one sparse template per unit on its electrode, plus one "unsorted"
    cluster per electrode (phy needs every spike in a cluster); latent features as PC features;
    up to ``PHY_SUBSET`` spikes per cluster as phy's spike-subset waveforms. With ``recording``
    (``--traces``) the band-passed traces too, so that phy's trace view and its waveforms of
    whole clusters work. Channel labels are the Blackrock electrode ids."""
    spikes, units, wf = res.spikes, res.units, res.waveforms
    ids, channel = _channels(res)
    n_units = len(units)
    spike_channel = np.array([channel[int(e)] for e in spikes["electrode_id"]], np.int32)
    clusters = np.where(spikes["unit"] >= 0, spikes["unit"], n_units + spike_channel).astype(np.int32)
    waveforms = res.spike_waveforms
    n_samples = waveforms.shape[1]
    n_templates = n_units + len(ids)
    templates = np.zeros((n_templates, n_samples, 1), np.float32)
    template_channel = np.zeros((n_templates, 1), np.int32)
    templates[:n_units, :, 0] = wf["mean"]
    template_channel[:n_units, 0] = [channel[int(e)] for e in wf["electrode_id"]]
    rng = np.random.default_rng(0)
    subset = []
    for c in range(n_templates):
        members = np.flatnonzero(clusters == c)
        if c >= n_units:
            template_channel[c, 0] = c - n_units
            if len(members):
                templates[c, :, 0] = np.asarray(waveforms[members[:2000]]).mean(axis=0)
        subset.append(np.sort(rng.choice(members, min(PHY_SUBSET, len(members)), replace=False)))
    subset = np.sort(np.concatenate(subset)).astype(np.int64)
    save = lambda name, a: np.save(folder / name, a)  # noqa: E731
    n_columns = int(ids.max()) + 1  # electrode e in column e: phy's channel labels are its columns
    times = spikes["timestamp"] if recording is None else _write_traces(recording, res, folder / "traces.dat",
                                                                       n_columns)
    save("spike_times.npy", times.astype(np.uint64))
    save("spike_templates.npy", clusters)
    save("spike_clusters.npy", clusters)
    save("amplitudes.npy", np.abs(spikes["amplitude_uv"]).astype(np.float32))
    save("templates.npy", templates)
    save("template_ind.npy", template_channel)
    save("similar_templates.npy", _similarity(templates[:, :, 0], template_channel[:, 0]))
    save("whitening_mat.npy", np.eye(len(ids), dtype=np.float32))  # waveforms are in µV, not whitened
    save("whitening_mat_inv.npy", np.eye(len(ids), dtype=np.float32))
    save("channel_map.npy", ids.astype(np.int32))  # phy shows channel_map[channel] as the channel's label
    save("channel_positions.npy", positions)
    save("pc_features.npy", spikes["latent"][:, :, None].astype(np.float32))
    save("pc_feature_ind.npy", template_channel)
    # two columns, the second empty (−1), because phylib squeezes a one-channel array to 2-D
    sub = np.zeros((len(subset), n_samples, 2), np.float32)
    sub[:, :, 0] = waveforms[subset]
    save("_phy_spikes_subset.spikes.npy", subset)
    save("_phy_spikes_subset.waveforms.npy", sub)
    save("_phy_spikes_subset.channels.npy", np.stack([spike_channel[subset], np.full(len(subset), -1, np.int32)], 1))
    quality = [u.get("quality", "good") for u in units] + ["noise"] * len(ids)
    _tsv(folder / "cluster_group.tsv", "group", quality)
    _tsv(folder / "cluster_KSLabel.tsv", "KSLabel", quality)
    _tsv(folder / "cluster_electrode.tsv", "electrode", [u["electrode_id"] for u in units] + list(ids))
    _tsv(folder / "cluster_snr.tsv", "snr", [f"{u['snr']:.2f}" for u in units] + [""] * len(ids))
    if units and "track_id" in units[0]:
        _tsv(folder / "cluster_track.tsv", "track", [u["track_id"] for u in units] + [""] * len(ids))
    if recording is None:
        when = (f"# spike_times.npy are ticks of the Blackrock file clock ({res.name}), pauses "
                "included; no traces (spike waveforms only: export with --traces for them)\n")
    else:
        when = (f"# traces.dat: {res.name} band-passed as sorted, 0.25 µV per bit, segments end to "
                "end; spike_times.npy are samples of it\n")
    (folder / "params.py").write_text(
        f"dat_path = {'[]' if recording is None else repr('traces.dat')}\nn_channels_dat = {n_columns}\n"
        f"dtype = 'int16'\noffset = 0\nsample_rate = {TICKS_PER_SECOND:.1f}\nhp_filtered = True\n"
        f"{when}# clusters {n_units} and up hold each electrode's unsorted spikes\n")


def _tsv(path: Path, column: str, values) -> None:
    with open(path, "w") as f:
        f.write(f"cluster_id\t{column}\n")
        f.writelines(f"{c}\t{v}\n" for c, v in enumerate(values))


def _similarity(templates: np.ndarray, channel: np.ndarray) -> np.ndarray:
    """phy's similar_templates: the correlation of two mean waveforms on the same electrode,
    0 across electrodes (units of different electrodes never share spikes on a Utah array)."""
    z = templates - templates.mean(axis=1, keepdims=True)
    z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    sim = z @ z.T
    sim[channel[:, None] != channel[None, :]] = 0
    np.fill_diagonal(sim, 1)
    return sim.astype(np.float32)


def _nwb(result: Path, res: Result, path: Path, meta: dict, positions: np.ndarray) -> None:
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.file import Subject
    from pynwb.misc import Units

    spikes, units, wf, run = res.spikes, res.units, res.waveforms, res.run
    ids, channel = _channels(res)
    subject = {k: meta[k] for k in ("subject_id", "species", "age") if k in meta}
    listed = {k: [meta[k]] if isinstance(meta[k], str) else list(meta[k])
              for k in ("experimenter", "keywords") if k in meta}
    nwb = NWBFile(
        session_description=meta.get("session_description",
                                     f"spike sorting of {res.name} by spikevae {__version__}"),
        identifier=f"spikevae-{res.name}-{res.input['bytes']}",
        session_start_time=_start(res),
        source_script=json.dumps({"spikevae": __version__, "config": run["config"], "versions": run["versions"]}),
        source_script_file_name="spikevae",
        subject=Subject(**subject, sex=meta.get("sex", "U"), description="given to spikevae export"),
        **{k: meta[k] for k in ("institution", "lab", "experiment_description") if k in meta}, **listed,
    )
    model = nwb.create_device_model(name="Utah array", manufacturer="Blackrock Neurotech",
                                    description="silicon microelectrode array, 10 × 10 at 400 µm pitch")
    device = nwb.create_device(name="UtahArray", description="96-channel Utah array, Blackrock front end",
                               model=model)
    group = nwb.create_electrode_group(name="utah", description="Utah array, 400 µm pitch",
                                       location="unknown", device=device)
    nwb.add_electrode_column(name="electrode_id", description="Blackrock electrode id")
    nwb.add_electrode_column(name="noise_uv", description="robust noise SD of the filtered signal (µV)")
    for e, (x, y), noise in zip(ids, positions, res.per_electrode("noise_uv")):
        nwb.add_electrode(group=group, location="unknown", rel_x=float(x), rel_y=float(y),
                          electrode_id=int(e), noise_uv=float(noise))
    # the pauses between segments were not recorded: invalid times, and outside every unit's observation
    recorded = [(start / TICKS_PER_SECOND, (start + n) / TICKS_PER_SECOND) for start, n in res.segments]
    for (_, stop), (start, _) in zip(recorded[:-1], recorded[1:]):
        nwb.add_invalid_time_interval(start_time=stop, stop_time=start)
    nwb.units = Units(name="units", description="units sorted by spikevae (unsorted spikes left out)",
                      waveform_rate=float(TICKS_PER_SECOND), waveform_unit="microvolts",
                      resolution=1 / TICKS_PER_SECOND)
    columns = {"snr": "peak of the mean waveform / noise SD",
               "isi_violation_fraction": "share of inter-spike intervals under 1.5 ms",
               "isi_violations": "inter-spike intervals under 1.5 ms",
               "isi_violations_ratio": "SpikeInterface's ISI violations ratio: 0 for one neuron, 0.5 for random firing",
               "firing_rate_hz": "spikes per second of recording",
               "amplitude_uv": "median absolute trough amplitude (µV)",
               "l_ratio": "L-ratio in the electrode's clustering space",
               "presence_ratio": "share of time bins of the recording in which the unit fires",
               "amplitude_cutoff": "estimated share of spikes lost below the detection threshold",
               "quality": "good or mua (multi-unit activity), spikevae's label from the metrics above",
               "track_id": "the unit's track in spikevae track: units of other sessions with this id are "
                           "the same neuron"}
    columns = {k: v for k, v in columns.items() if all(k in u for u in units)}
    for name, desc in columns.items():
        nwb.add_unit_column(name=name, description=desc)
    time_s = spikes["time_s"]
    for u, row in enumerate(units):
        nwb.add_unit(spike_times=time_s[spikes["unit"] == row["unit"]], obs_intervals=recorded,
                     electrodes=[channel[row["electrode_id"]]], electrode_group=group,
                     waveform_mean=wf["mean"][u], waveform_sd=wf["sd"][u], **{k: row[k] for k in columns})
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)


def _spikeinterface(result: Path, res: Result, folder: Path) -> None:
    with warnings.catch_warnings():
        # an in-memory NumpySorting has no provenance to save; the saved folder is the sorting
        warnings.filterwarnings("ignore", "The extractor is not serializable", UserWarning)
        _sorting(res).save(folder=folder, overwrite=True)  # spikeinterface.load(folder) opens it


def to_spikeinterface(result):
    """The sorted units of a result folder as a SpikeInterface ``BaseSorting``: one segment
    per recorded segment (pause), samples counted from that segment's first sample, as
    ``spikeinterface.extractors.read_blackrock`` of the same file counts them; unit
    properties electrode_id, snr, quality and the other units.csv columns. Unsorted spikes
    are left out. Pair it with the recording through ``utah_probe``."""
    return _sorting(load_result(result))


def _sorting(res: Result):
    core = require_extra("spikeinterface.core", "spikeinterface", "to_spikeinterface")
    spikes, units, segments = res.spikes, res.units, res.segments
    keep = spikes["unit"] >= 0
    ts, unit = spikes["timestamp"][keep], spikes["unit"][keep]
    starts = np.array([start for start, _ in segments], np.int64)
    seg = np.searchsorted(starts, ts, "right") - 1
    sorting = core.NumpySorting.from_samples_and_labels(
        [ts[seg == i] - starts[i] for i in range(len(segments))], [unit[seg == i] for i in range(len(segments))],
        TICKS_PER_SECOND, unit_ids=np.array([u["unit"] for u in units], np.int64))
    for key in (units[0] if units else {}):
        if key != "unit":
            sorting.set_property(key, np.array([u[key] for u in units]))
    return sorting


def utah_recording(recording, electrode_map=None):
    """``recording`` (a SpikeInterface recording spikevae sorted) with the Utah array attached as
    its probe, channel ids as electrode ids placed by ``electrode_map`` (.cmp) or the default
    grid, so that ``create_sorting_analyzer`` takes it; a recording with a probe is returned
    as it is."""
    from ..io.si_recording import electrode_ids_of

    if recording.has_probe():
        return recording
    placed = recording.clone()  # set_probe works in place; the user's recording stays as it was
    placed.set_probe(_utah_probe(electrode_ids_of(recording), electrode_map))
    return placed


def utah_probe(result, electrode_map=None):
    """A probeinterface ``Probe`` of the result's electrodes (positions from ``electrode_map``,
    a .cmp file, or the default grid), contact i wired to channel i, for
    ``recording.set_probe`` on the sorted file's ``read_blackrock`` recording (its channels
    in the result's electrode order)."""
    return _utah_probe(load_result(result).electrode_ids, electrode_map)


def _utah_probe(ids: np.ndarray, electrode_map=None):
    from probeinterface import Probe

    probe = Probe(ndim=2, si_units="um", name="Utah array", manufacturer="Blackrock Neurotech")
    probe.set_contacts(positions=electrode_positions(ids, electrode_map), shapes="circle",
                       shape_params={"radius": 20})
    probe.set_contact_ids([str(e) for e in ids])
    probe.set_device_channel_indices(np.arange(len(ids)))
    return probe
