"""Write Blackrock NSx continuous files (spec 2.2, 2.3, 3.0 and 3.0-PTP), streamed.

Used by the simulator and the tests; the bytes follow Blackrock's NSx specification so
that neo's ``BlackrockRawIO`` (and NPMK) read them back.
"""
from __future__ import annotations

import datetime as _dt
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .reader import TICKS_PER_SECOND

SPECS = ("2.2", "2.3", "3.0", "3.0-ptp")
_BASIC_HEADER = struct.Struct("<8s2BI16s256sII8HI")  # 314 bytes
_CHANNEL_HEADER = struct.Struct("<2sH16s2B4h16sIIHIIH")  # 66 bytes
assert _BASIC_HEADER.size == 314 and _CHANNEL_HEADER.size == 66


@dataclass(frozen=True)
class ChannelHeader:
    """One electrode of the extended header; the default range gives 0.25 µV per bit."""

    electrode_id: int
    label: str
    connector: int = 1
    pin: int = 1
    min_digital: int = -32764
    max_digital: int = 32764
    min_analog_uv: int = -8191
    max_analog_uv: int = 8191

    @property
    def uv_per_bit(self) -> float:
        return (self.max_analog_uv - self.min_analog_uv) / (self.max_digital - self.min_digital)


def utah_channels(n: int) -> list[ChannelHeader]:
    """Headers for electrodes 1..n wired as on a Blackrock front end (32 pins per bank)."""
    return [
        ChannelHeader(electrode_id=i, label=f"elec{i}", connector=1 + (i - 1) // 32, pin=1 + (i - 1) % 32)
        for i in range(1, n + 1)
    ]


class NsxWriter:
    """Streamed NSx writer: ``begin_segment(timestamp)`` then ``write(block)`` any number of times.

    ``block`` is int16 of shape (samples, channels). Each segment is one data packet whose
    sample count is patched when the segment ends (spec 2.x/3.0), or one packet per sample
    with a nanosecond timestamp (3.0-PTP). Timestamps are 30 kHz ticks of the file clock.
    """

    def __init__(self, path, channels: list[ChannelHeader], *, spec: str = "2.3", period: int = 1,
                 label: str = "raw", comment: str = "", start_time: _dt.datetime | None = None):
        if spec not in SPECS:
            raise ValueError(f"unknown NSx spec {spec!r}; choose one of {', '.join(SPECS)}")
        self.path = Path(path)
        self.spec = spec
        self.period = period
        self.n_channels = len(channels)
        self._file = open(self.path, "wb")
        self._count_offset: int | None = None
        self._count = 0
        self._next_tick = 0
        major, minor = (3, 0) if spec.startswith("3.0") else (2, int(spec[-1]))
        resolution = 1_000_000_000 if spec == "3.0-ptp" else TICKS_PER_SECOND
        when = start_time or _dt.datetime(2026, 1, 1, 12, 0, 0)
        header = _BASIC_HEADER.pack(
            b"BRSMPGRP" if spec == "3.0-ptp" else b"NEURALCD", major, minor,
            _BASIC_HEADER.size + _CHANNEL_HEADER.size * len(channels),
            label.encode()[:16], comment.encode()[:256], period, resolution,
            when.year, when.month, when.isoweekday() % 7, when.day, when.hour, when.minute,
            when.second, when.microsecond // 1000, len(channels),
        )
        self._file.write(header)
        for ch in channels:
            self._file.write(_CHANNEL_HEADER.pack(
                b"CC", ch.electrode_id, ch.label.encode()[:16], ch.connector, ch.pin,
                ch.min_digital, ch.max_digital, ch.min_analog_uv, ch.max_analog_uv, b"uV",
                300, 1, 1, 7_500_000, 3, 1,  # the front end's 0.3 Hz – 7.5 kHz hardware filter
            ))

    def begin_segment(self, timestamp: int) -> None:
        """Start a new packet (a pause before it) whose first sample has this 30 kHz tick."""
        self._end_segment()
        self._next_tick = int(timestamp)
        if self.spec == "3.0-ptp":
            return
        ts_format = "<BQI" if self.spec == "3.0" else "<BII"
        self._file.write(struct.pack(ts_format, 1, int(timestamp), 0))
        self._count_offset = self._file.tell() - 4
        self._count = 0

    def write(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype="<i2")
        if block.ndim != 2 or block.shape[1] != self.n_channels:
            raise ValueError(f"expected (samples, {self.n_channels}) int16, got {block.shape}")
        if self.spec == "3.0-ptp":
            packets = np.zeros(len(block), dtype=[("flag", "u1"), ("ts", "<u8"), ("n", "<u4"),
                                                  ("x", "<i2", (self.n_channels,))])
            ticks = self._next_tick + np.arange(len(block), dtype=np.int64) * self.period
            packets["ts"] = ticks * 1_000_000_000 // TICKS_PER_SECOND
            packets["n"] = 1
            packets["x"] = block
            self._file.write(packets.tobytes())
        else:
            if self._count_offset is None:
                raise RuntimeError("begin_segment() must come before write()")
            self._file.write(block.tobytes())
            self._count += len(block)
        self._next_tick += len(block) * self.period

    def _end_segment(self) -> None:
        if self._count_offset is not None:
            here = self._file.tell()
            self._file.seek(self._count_offset)
            self._file.write(struct.pack("<I", self._count))
            self._file.seek(here)
            self._count_offset = None

    def close(self) -> None:
        if not self._file.closed:
            self._end_segment()
            self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def write_nsx(path, data_uv: list[tuple[int, np.ndarray]], channels: list[ChannelHeader] | None = None,
              spec: str = "2.3") -> None:
    """Write whole segments at once: ``[(start_tick, float µV array (samples, channels)), ...]``."""
    n_channels = data_uv[0][1].shape[1]
    channels = channels or utah_channels(n_channels)
    scale = np.array([c.uv_per_bit for c in channels])
    with NsxWriter(path, channels, spec=spec) as writer:
        for start, x in data_uv:
            writer.begin_segment(start)
            writer.write(np.clip(np.round(x / scale), -32767, 32767).astype(np.int16))
