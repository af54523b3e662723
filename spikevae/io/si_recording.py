"""A SpikeInterface ``BaseRecording`` read as spikevae reads a Blackrock file, so that
``spikevae.sort`` takes any format SpikeInterface reads. Each channel is sorted on its own,
as an electrode of the Utah array is; channel ids that are integers are kept as electrode
ids, others are numbered 1..n in channel order."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SpikevaeError
from .reader import TICKS_PER_SECOND, Continuous, Segment, parse_channels


def is_si_recording(obj) -> bool:
    return hasattr(obj, "get_traces") and hasattr(obj, "get_num_segments")


def electrode_ids_of(recording) -> np.ndarray:
    ids = recording.get_channel_ids()
    try:
        as_int = np.array([int(c) for c in ids], np.int64)
    except (TypeError, ValueError):
        return np.arange(1, len(ids) + 1)
    return as_int if len(np.unique(as_int)) == len(as_int) else np.arange(1, len(ids) + 1)


def place_segments(recording) -> list[Segment]:
    """Each segment at its start time on the 30 kHz clock, or right after the one before
    when it has none (or one that would overlap it)."""
    out, next_free = [], 0
    for i in range(recording.get_num_segments()):
        n = int(recording.get_num_samples(i))
        t0 = recording.get_start_time(i)
        start = int(round(t0 * TICKS_PER_SECOND)) if t0 is not None else next_free
        start = max(start, next_free)
        out.append(Segment(i, n, start))
        next_free = start + n
    return out


@dataclass
class SIRecording(Continuous):
    """The reader interface over a SpikeInterface recording."""

    recording: object
    electrode_ids: np.ndarray
    channel_ids: np.ndarray      # the recording's ids of the selected electrodes
    segments: list[Segment]
    sampling_rate: float = float(TICKS_PER_SECOND)

    def read_raw(self, segment: int, start: int, stop: int) -> np.ndarray:
        """Samples as stored, shape (channels, stop - start); the saturation check reads them."""
        x = self.recording.get_traces(segment, start, stop, channel_ids=self.channel_ids)
        return np.ascontiguousarray(x.T)

    def read(self, segment: int, start: int, stop: int, dtype=np.float64) -> np.ndarray:
        """µV, shape (channels, stop - start)."""
        x = self.recording.get_traces(segment, start, stop, channel_ids=self.channel_ids, return_in_uV=True)
        return np.ascontiguousarray(x.T, dtype=dtype)


def open_si_recording(recording, channels: str | None = None) -> SIRecording:
    """Check that spikevae can sort ``recording`` and select ``channels`` (electrode ids)."""
    rate = recording.get_sampling_frequency()
    if abs(rate - TICKS_PER_SECOND) > 1e-6:
        raise SpikevaeError(f"the recording is sampled at {rate:g} Hz; spikevae sorts 30 kHz data: "
                            f"spikeinterface.preprocessing.resample(recording, {TICKS_PER_SECOND})")
    if recording.get_dtype().kind != "f" and not recording.has_scaleable_traces():
        raise SpikevaeError("the recording has no gain to µV (set_channel_gains / set_channel_offsets); "
                            "spikevae's thresholds and outputs are in µV")
    ids = electrode_ids_of(recording)
    chosen = parse_channels(channels, ids)
    channel_ids = recording.get_channel_ids()[np.isin(ids, chosen)]
    return SIRecording(recording, chosen, channel_ids, place_segments(recording))


def probe_positions(rec: SIRecording) -> np.ndarray | None:
    """(x, y) µm of the selected channels from the recording's probe, None when it has none."""
    if not rec.recording.has_probe():
        return None
    return np.asarray(rec.recording.get_channel_locations(channel_ids=rec.channel_ids), float)[:, :2]


def describe_input(rec: SIRecording) -> dict:
    """The "input" section of run.json for a recording object: what it is, where its file
    is when SpikeInterface knows it."""
    r = rec.recording
    kwargs = getattr(r, "_kwargs", {}) or {}
    source = next((str(kwargs[k]) for k in ("file_path", "folder_path") if kwargs.get(k)), None)
    name = Path(source).name if source else type(r).__name__
    return {"path": source, "name": name, "bytes": None, "checksum": None,
            "file_spec": f"SpikeInterface {type(r).__name__}", "electrodes": rec.electrode_ids,
            "segments": [{"start_tick": s.start_tick, "n_samples": s.n_samples} for s in rec.segments],
            "duration_s": rec.duration_s, "start_time": None}
