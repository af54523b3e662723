"""Blackrock ``.nev`` spike files: write sorted spikes (spec 2.3), read cut waveforms back.

A written file carries, per spike, its 30 kHz timestamp, electrode, unit classification
(0 = unclassified, 1..n = the electrode's units in spikevae's order) and its waveform as
int16 at 0.25 µV per bit, so NPMK, Central and neo show the sorted units. Reading goes
through neo's ``BlackrockRawIO`` so that files written by Blackrock systems work the same.
"""
from __future__ import annotations

import datetime as _dt
import glob
import struct
import warnings
from pathlib import Path

import numpy as np

from ..errors import SpikevaeError
from .reader import TICKS_PER_SECOND

NV_PER_BIT = 250  # 0.25 µV per bit, as Blackrock front ends digitise
_BASIC = struct.Struct("<8s2BHIIII8H32s256sI")        # 336 bytes
_WAV = struct.Struct("<8sH2BHHhhBBH8s")               # 32 bytes each
_LBL = struct.Struct("<8sH16s6s")
_FLT = struct.Struct("<8sHIIHIIH2s")
assert _BASIC.size == 336 and _WAV.size == _LBL.size == _FLT.size == 32


def write_nev(path, timestamp: np.ndarray, electrode_id: np.ndarray, unit_class: np.ndarray,
              waveforms_uv: np.ndarray, electrode_ids: np.ndarray, *, thresholds_uv: np.ndarray | None = None,
              labels: list[str] | None = None, band_hz=(250.0, 7500.0), comment: str = "",
              start_time: _dt.datetime | None = None) -> None:
    """Write spikes (sorted by time) as a spec 2.3 ``.nev``; waveforms are (n, samples) µV."""
    timestamp = np.asarray(timestamp, np.int64)
    if len(timestamp) and (timestamp.min() < 0 or timestamp.max() >= 2**32):
        raise SpikevaeError("timestamps do not fit a spec 2.3 .nev (over 39 hours of 30 kHz ticks)")
    n_samples = waveforms_uv.shape[1]
    packet = np.dtype([("ts", "<u4"), ("id", "<u2"), ("unit", "u1"), ("res", "u1"), ("wf", "<i2", (n_samples,))])
    n_el = len(electrode_ids)
    thresholds = np.zeros(n_el) if thresholds_uv is None else np.asarray(thresholds_uv)
    labels = labels or [f"elec{e}" for e in electrode_ids]
    n_units = {int(e): int(unit_class[electrode_id == e].max(initial=0)) for e in electrode_ids}
    when = start_time or _dt.datetime(2026, 1, 1, 12, 0, 0)
    with open(path, "wb") as f:
        f.write(_BASIC.pack(b"NEURALEV", 2, 3, 1, _BASIC.size + 3 * 32 * n_el, packet.itemsize,
                            TICKS_PER_SECOND, TICKS_PER_SECOND, when.year, when.month, when.isoweekday() % 7,
                            when.day, when.hour, when.minute, when.second, when.microsecond // 1000,
                            b"spikevae", comment.encode()[:256], 3 * n_el))
        for e, label, thr in zip(electrode_ids, labels, thresholds):
            bits = int(np.clip(round(thr * 1000 / NV_PER_BIT), -32768, 32767))
            f.write(_WAV.pack(b"NEUEVWAV", int(e), 1 + (int(e) - 1) // 32, 1 + (int(e) - 1) % 32, NV_PER_BIT,
                              0, 0, bits, min(n_units[int(e)], 255), 2, n_samples, b""))
            f.write(_LBL.pack(b"NEUEVLBL", int(e), label.encode()[:16], b""))
            f.write(_FLT.pack(b"NEUEVFLT", int(e), int(band_hz[0] * 1000), 4, 1, int(band_hz[1] * 1000), 4, 1, b""))
        for i in range(0, len(timestamp), 1 << 18):
            sl = slice(i, i + (1 << 18))
            block = np.zeros(len(timestamp[sl]), packet)
            block["ts"], block["id"], block["unit"] = timestamp[sl], electrode_id[sl], unit_class[sl]
            block["wf"] = np.clip(np.round(np.asarray(waveforms_uv[sl]) * 1000 / NV_PER_BIT), -32768, 32767)
            f.write(block.tobytes())


MAX_RESETS = 16           # clock resets (pauses) a real file has; more is damage
MAX_ELECTRODE_ID = 2048   # packet ids: 0 digital events, 1-2048 electrodes' spikes,
FIRST_SYSTEM_ID = 0xFFFB  # 0xFFFB-0xFFFF configuration, tracking, video sync, button and comment packets
MAX_GAP_S = 3600.0        # no packet for an hour inside a segment: a wild timestamp


def check_packets(path: Path) -> None:
    """Damage neo reads past in silence, found in the packets' own bytes: a file cut inside a
    packet, timestamps out of order (more resets than pauses make) or leaping by hours, and
    spikes on electrodes whose extended header (NEUEVWAV) is missing or damaged."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        basic = f.read(_BASIC.size)
        if len(basic) < _BASIC.size:
            raise SpikevaeError(f"{path}: the header is cut short ({len(basic)} of {_BASIC.size} bytes)")
        fields = _BASIC.unpack(basic)
        major, header_bytes, packet_bytes, n_ext = fields[1], fields[4], fields[5], fields[-1]
        if fields[6] != TICKS_PER_SECOND:
            raise SpikevaeError(f"{path}: timestamp resolution {fields[6]} Hz in the header; Blackrock .nev files "
                                f"count {TICKS_PER_SECOND} (a damaged header)")
        if packet_bytes < 8 or not _BASIC.size + 32 * n_ext <= header_bytes <= size:
            raise SpikevaeError(f"{path}: damaged header (header {header_bytes} bytes with {n_ext} extended "
                                f"headers, packets {packet_bytes} bytes, file {size} bytes)")
        ext = f.read(32 * n_ext)
    n, rest = divmod(size - header_bytes, packet_bytes)
    if rest:
        raise SpikevaeError(f"{path}: the file ends {rest} bytes into a {packet_bytes}-byte packet after {n} "
                            "whole ones: it was cut short (copy it again)")
    wav_ids = {int.from_bytes(ext[i + 8:i + 10], "little") for i in range(0, len(ext), 32)
               if ext[i:i + 8] == b"NEUEVWAV"}
    stamp = ("<u8", 8) if major >= 3 else ("<u4", 4)
    packets = np.memmap(path, np.uint8, "r", offset=header_bytes, shape=(n, packet_bytes))
    ts = packets[:, :stamp[1]].copy().view(stamp[0])[:, 0].astype(np.int64)
    ids = packets[:, stamp[1]:stamp[1] + 2].copy().view("<u2")[:, 0]
    spikes = (ids > 0) & (ids <= MAX_ELECTRODE_ID)
    strange = np.unique(ids[(ids > MAX_ELECTRODE_ID) & (ids < FIRST_SYSTEM_ID)])
    if len(strange):
        raise SpikevaeError(f"{path}: {int(np.isin(ids, strange).sum())} packets carry ids no Blackrock system "
                            f"writes ({', '.join(map(str, strange[:3]))}): damaged packets")
    orphans = np.setdiff1d(np.unique(ids[spikes]), sorted(wav_ids))
    if len(orphans):
        lost = int(np.isin(ids, orphans).sum())
        raise SpikevaeError(f"{path}: {lost} spikes on electrode(s) {', '.join(map(str, orphans[:5]))} have no "
                            "waveform description in the header (damaged extended headers)")
    back = np.flatnonzero(np.diff(ts) < 0)
    if len(back) > MAX_RESETS:
        raise SpikevaeError(f"{path}: timestamps run backwards at {len(back)} places (packet {back[0] + 1}: "
                            f"{ts[back[0] + 1]} after {ts[back[0]]}): damaged packets")
    leap = np.diff(ts) > MAX_GAP_S * TICKS_PER_SECOND
    if leap.any():
        i = int(np.argmax(leap))
        raise SpikevaeError(f"{path}: a timestamp leaps {(ts[i + 1] - ts[i]) / TICKS_PER_SECOND:.0f} s ahead "
                            f"(packet {i + 1}): damaged packets")


def _spike_parts(reader) -> dict:
    """Per neo spike channel (electrode and unit class) and segment: ticks, ids, classes, µV
    waveforms and the segment."""
    parts = {k: [] for k in ("timestamp", "electrode_id", "unit_class", "waveform", "segment")}
    for u, (name, _id, *_rest) in enumerate(reader.header["spike_channels"]):
        electrode, klass = (int(x) for x in name[2:].split("#"))
        for seg in range(reader.segment_count(0)):
            ts = reader.get_spike_timestamps(0, seg, u, None, None)
            if len(ts) == 0:
                continue
            seconds = reader.rescale_spike_timestamp(ts, "float64")
            raw = reader.get_spike_raw_waveforms(0, seg, u, None, None)
            parts["timestamp"].append(np.round(seconds * TICKS_PER_SECOND).astype(np.int64))
            parts["electrode_id"].append(np.full(len(ts), electrode, np.int32))
            parts["unit_class"].append(np.full(len(ts), klass, np.int32))
            parts["waveform"].append(reader.rescale_waveforms_to_float(raw, "float32", u)[:, 0, :])
            parts["segment"].append(np.full(len(ts), seg, np.int32))
    return parts


def read_nev_spikes(path, channels: str | None = None) -> dict:
    """Every spike of a ``.nev`` read through neo (damage checked first, ``check_packets``), in
    time order: ``timestamp`` (30 kHz ticks), ``electrode_id``, ``unit_class``, ``waveform``
    (n × samples, µV) and ``segment``. A file whose clock was reset by pauses has one segment
    per stretch; each segment after the first is moved to start right after the one before, so
    that times increase, and ``segments`` gives each one's first tick in the file
    (``file_start_tick``) and on spikevae's clock (``start_tick``) with its length."""
    from neo.rawio import BlackrockRawIO

    from .reader import first_line, parse_channels

    path = Path(path)
    if not path.is_file():
        raise SpikevaeError(f"{path}: no such file")
    with open(path, "rb") as f:
        if f.read(8) != b"NEURALEV":
            raise SpikevaeError(f"{path}: not a Blackrock .nev file")
    check_packets(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reader = BlackrockRawIO(filename=str(path), nsx_to_load=[], load_nev=True)
            reader.parse_header()
    except Exception as exc:
        raise SpikevaeError(f"{path}: cannot read as Blackrock .nev ({first_line(exc)})") from exc
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parts = _spike_parts(reader)
    except Exception as exc:
        raise SpikevaeError(f"{path}: corrupt spike packets or waveform descriptions ({first_line(exc)})") from exc
    if not parts["timestamp"]:
        raise SpikevaeError(f"{path}: the file holds no spike waveforms")
    out = {k: np.concatenate(v) for k, v in parts.items()}
    segments, start = [], None
    for seg in range(reader.segment_count(0)):  # laid end to end, the first where the file has it
        ticks = out["timestamp"][out["segment"] == seg]
        first = int(round(reader.segment_t_start(0, seg) * TICKS_PER_SECOND))
        last = max(int(round(reader.segment_t_stop(0, seg) * TICKS_PER_SECOND)), int(ticks.max(initial=first)))
        start = first if start is None else start
        out["timestamp"][out["segment"] == seg] += start - first
        segments.append({"start_tick": start, "n_samples": last - first + 1, "file_start_tick": first})
        start += last - first + 1
    ids = np.unique(out["electrode_id"])
    chosen = parse_channels(channels, ids)
    keep = np.isin(out["electrode_id"], chosen)
    order = np.argsort(out["timestamp"][keep], kind="stable")
    return {**{k: v[keep][order] for k, v in out.items()}, "segments": segments}


def cut_short_warning(path: Path, spikes: dict, quiet_spikes: float = 5.0) -> str | None:
    """A .nev cut at a packet boundary looks complete (its header counts no packets); the
    continuous file beside it (same name, .ns1-.ns6) tells: a warning when the spikes end more
    than ``quiet_spikes`` mean intervals (and 0.1 s) before that recording does."""
    from .reader import open_recording

    siblings = sorted(path.parent.glob(glob.escape(path.stem) + ".ns[1-6]"))
    if not siblings or len(spikes["timestamp"]) < 2:
        return None
    try:
        rec = open_recording(siblings[-1])
    except SpikevaeError:
        return None
    last = spikes["segments"][-1]
    nev_end = spikes["timestamp"][-1] - last["start_tick"] + last["file_start_tick"]  # on the file's clock
    seg = rec.segments[-1]
    gap = (seg.start_tick + seg.n_samples - nev_end) / TICKS_PER_SECOND
    interval = sum(s["n_samples"] for s in spikes["segments"]) / TICKS_PER_SECOND / len(spikes["timestamp"])
    if gap <= max(quiet_spikes * interval, 0.1):
        return None
    return (f"{path.name}: its spikes end {gap:.2f} s before {siblings[-1].name} does (one every {interval:.3f} s "
            "before that): if the file was cut short, copy it again")
