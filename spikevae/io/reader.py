"""Read Blackrock NSx recordings lazily through neo, every segment, timestamps kept.

``open_recording`` validates the file up front (so bad input fails before any work) and
returns a :class:`Recording` whose ``read`` gives µV for any sample range of a segment,
straight from neo's memory map: nothing is loaded that is not asked for.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import re
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import SpikevaeError

TICKS_PER_SECOND = 30_000  # Blackrock's file clock
_MAGIC = {b"NEURALCD": "NSx 2.2+", b"BRSMPGRP": "NSx 3.0 PTP", b"NEURALSG": "NSx 2.1"}


@dataclass
class Segment:
    """One stretch of continuous recording (a pause starts a new one)."""

    index: int
    n_samples: int
    start_tick: int  # file-clock tick (30 kHz) of the first sample

    @property
    def duration_s(self) -> float:
        return self.n_samples / TICKS_PER_SECOND


class Continuous:
    """What ``BandpassFilter`` and ``detect`` read: electrodes, segments and ``read``/``read_raw``."""

    electrode_ids: np.ndarray
    segments: list[Segment]

    @property
    def n_channels(self) -> int:
        return len(self.electrode_ids)

    @property
    def duration_s(self) -> float:
        return sum(s.duration_s for s in self.segments)


@dataclass
class Recording(Continuous):
    """A Blackrock continuous file opened for reading; channels are the selected electrodes."""

    path: Path
    file_spec: str
    sampling_rate: float
    electrode_ids: np.ndarray    # selected electrodes, in file order
    segments: list[Segment]
    start_time: str | None              # ISO time origin from the file header, if valid
    _reader: object = field(repr=False)
    _stream: int = field(repr=False)
    _channel_indexes: np.ndarray | None = field(repr=False)  # None: every channel, read as neo's view of the file
    _gain: np.ndarray = field(repr=False)
    _offset: np.ndarray = field(repr=False)

    def _chunk(self, segment: int, start: int, stop: int) -> np.ndarray:
        """int16 (stop - start, channels) as neo maps it: a view of the file when every channel
        is selected (neo copies a selection)."""
        return self._reader.get_analogsignal_chunk(
            block_index=0, seg_index=segment, i_start=start, i_stop=stop, stream_index=self._stream,
            channel_indexes=self._channel_indexes)

    def read_raw(self, segment: int, start: int, stop: int) -> np.ndarray:
        """int16 samples, shape (channels, stop - start), as stored."""
        return _transpose(self._chunk(segment, start, stop), np.int16)

    def read(self, segment: int, start: int, stop: int, dtype=np.float64) -> np.ndarray:
        """µV, shape (channels, stop - start): channel-major for fast filtering."""
        x = _transpose(self._chunk(segment, start, stop), dtype)
        x *= self._gain[:, None].astype(dtype)
        if self._offset.any():
            x += self._offset[:, None].astype(dtype)
        return x


def _transpose(x: np.ndarray, dtype, block: int = 1024) -> np.ndarray:
    """``x.T`` as a C-ordered ``dtype`` array, a block of rows at a time: the file is
    time-major, and a whole-array transpose misses the cache on every sample (RESULTS.md,
    "Timings behind the code's design")."""
    out = np.empty(x.shape[::-1], dtype)
    for i in range(0, x.shape[0], block):
        np.copyto(out[:, i:i + block], x[i:i + block].T, casting="unsafe")
    return out


def parse_channels(spec: str | None, available: np.ndarray) -> np.ndarray:
    """``"1-32,40"`` → the electrode ids among ``available`` that the user asked for."""
    if spec is None or spec.strip() in ("", "all"):
        return np.asarray(available)
    ranges = []  # kept as ranges: "1-2000000000" must not become two billion numbers
    for part in spec.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            raise SpikevaeError(f"--channels: cannot read {part.strip()!r}; use e.g. 1-32,40")
        lo, hi = int(m[1]), int(m[2] or m[1])
        if hi < lo:
            raise SpikevaeError(f"--channels: {part.strip()!r} runs backwards; write {hi}-{lo}")
        ranges.append((lo, hi))
    chosen = np.array([e for e in available if any(lo <= e <= hi for lo, hi in ranges)], dtype=available.dtype)
    if len(chosen) == 0:
        raise SpikevaeError(f"--channels {spec} matches none of the file's electrodes "
                            f"({available.min()}-{available.max()})")
    return chosen


def open_recording(path, channels: str | None = None, gap_tolerance_ms: float = 1.0) -> Recording:
    """Open a ``.nsX`` file (``.ns6`` for 30 kHz wideband) and check it can be read whole."""
    from neo.rawio import BlackrockRawIO

    path = Path(path)
    if not path.is_file():
        raise SpikevaeError(f"{path}: no such file")
    m = re.fullmatch(r"\.ns([1-6])", path.suffix.lower())
    with open(path, "rb") as f:
        header = f.read(314)
    magic = header[:8]
    if m is None or magic not in _MAGIC:
        raise SpikevaeError(f"{path}: not a Blackrock continuous (.nsX) file")
    if path.suffix != f".ns{m[1]}":
        raise SpikevaeError(f"{path}: rename to a lower-case .ns{m[1]} extension, as neo expects")
    _check_basic_header(path, header)
    nsx = int(m[1])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reader = BlackrockRawIO(filename=str(path), nsx_to_load=nsx, load_nev=False,
                                    gap_tolerance_ms=gap_tolerance_ms)
            reader.parse_header()
    except Exception as exc:  # neo raises many kinds; the user needs one line
        raise SpikevaeError(f"{path}: cannot read as Blackrock NSx ({_explain(exc)})") from exc

    stream = 0
    chans = reader.header["signal_channels"]
    chans = chans[chans["stream_id"] == reader.header["signal_streams"][stream]["id"]]
    fs = float(chans["sampling_rate"][0])
    if fs != TICKS_PER_SECOND:
        raise SpikevaeError(f"{path}: sampled at {fs:g} Hz; spike sorting needs 30 kHz data (.ns5/.ns6)")
    ids = chans["id"].astype(int)
    chosen = parse_channels(channels, ids)
    index = np.flatnonzero(np.isin(ids, chosen))

    segments = []
    for s in range(reader.segment_count(0)):
        n = int(reader.get_signal_size(0, s, stream))
        start_tick = int(round(reader.get_signal_t_start(0, s, stream) * TICKS_PER_SECOND))
        segments.append(Segment(index=s, n_samples=n, start_tick=start_tick))
        try:  # neo maps each packet lazily: touching its last sample finds a truncated file now
            reader.get_analogsignal_chunk(0, s, max(n - 1, 0), n, stream, channel_indexes=index[:1])
        except (ValueError, OSError) as exc:
            raise SpikevaeError(f"{path}: truncated or corrupt data in segment {s} "
                                f"({first_line(exc)})") from exc
    if not segments or sum(s.n_samples for s in segments) == 0:
        raise SpikevaeError(f"{path}: the file holds no samples")

    spec = f"{reader._nsx_spec[nsx]}"  # neo keeps the spec only privately; it is worth reporting
    if magic == b"BRSMPGRP":
        spec += "-ptp"
    return Recording(
        path=path, file_spec=spec, sampling_rate=fs, electrode_ids=ids[index],
        segments=segments, start_time=_time_origin(header),
        _reader=reader, _stream=stream, _channel_indexes=None if len(index) == len(ids) else index,
        _gain=chans["gain"][index].astype(np.float64), _offset=chans["offset"][index].astype(np.float64),
    )


def _time_origin(header: bytes) -> str | None:
    """The NSx 2.2+ header's time origin (Windows SYSTEMTIME at byte 294) as ISO 8601 UTC."""
    if len(header) < 310 or header[:8] == b"NEURALSG":
        return None
    y, mo, _, d, h, mi, sec, ms = struct.unpack_from("<8H", header, 294)
    try:
        return _dt.datetime(y, mo, d, h, mi, sec, ms * 1000, tzinfo=_dt.timezone.utc).isoformat()
    except ValueError:
        return None


def _check_basic_header(path: Path, header: bytes) -> None:
    """The basic header's fields that neo trusts blindly (a zero sample period or timestamp
    resolution, no channels), checked so that the user is told which field is wrong."""
    if header[:8] == b"NEURALSG":
        if len(header) < 32:
            raise SpikevaeError(f"{path}: too short for an NSx 2.1 header")
        period, n_channels = struct.unpack_from("<II", header, 24)
        resolution = TICKS_PER_SECOND
    else:
        if len(header) < 314:
            raise SpikevaeError(f"{path}: too short for an NSx header ({len(header)} of 314 bytes)")
        if (header[8], header[9]) not in ((2, 2), (2, 3), (3, 0)):
            raise SpikevaeError(f"{path}: the header says file spec {header[8]}.{header[9]}; "
                                "Blackrock NSx files are 2.1, 2.2, 2.3 or 3.0")
        period, resolution = struct.unpack_from("<II", header, 286)
        n_channels = struct.unpack_from("<I", header, 310)[0]
    for field_name, value in (("sample period", period), ("timestamp resolution", resolution),
                              ("channel count", n_channels)):
        if value == 0:
            raise SpikevaeError(f"{path}: the header's {field_name} is 0 (corrupt header)")


def _explain(exc: Exception) -> str:
    """neo's error in words that name the broken part of the file."""
    if isinstance(exc, UnicodeDecodeError):
        return "a label or unit in the extended header is not text: corrupt header"
    if isinstance(exc, ZeroDivisionError):
        return "a channel's digital range is empty (minimum = maximum): corrupt extended header"
    return first_line(exc)


def first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def file_checksum(path, block_bytes: int = 1 << 20) -> str:
    """BLAKE2b of every byte of a file, so that a recording changed anywhere, even in place at
    the same size, no longer matches its result (a small share of the sort's time: RESULTS.md,
    "Timings behind the code's design")."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while block := f.read(block_bytes):
            h.update(block)
    return h.hexdigest()
