"""A .nev given to sort: damage named in one line, pauses kept as segments."""
import numpy as np
import pytest

import spikevae
from spikevae.errors import SpikevaeError
from spikevae.io.nev import read_nev_spikes, write_nev
from spikevae.simulators.simulation import cut_online

from .conftest import fast_config


@pytest.fixture(scope="module")
def cut(small_recording, tmp_path_factory):
    """The small recording's spikes as the recording system would cut them, and the packets' layout."""
    path = tmp_path_factory.mktemp("nev") / "cut.nev"
    cut_online(small_recording[0], path)
    raw = path.read_bytes()
    header, packet = int.from_bytes(raw[12:16], "little"), int.from_bytes(raw[16:20], "little")
    return raw, header, packet


def damaged(raw, header, packet, how):
    b = bytearray(raw)
    n = (len(b) - header) // packet
    at = lambda i: header + i * packet  # noqa: E731
    if how == "cut mid-packet":
        return bytes(b[:at(n // 2) + 11])
    if how == "zero timestamps":
        for i in range(0, n, 7):
            b[at(i):at(i) + 4] = bytes(4)
    if how == "reversed timestamps":
        stamps = [bytes(b[at(i):at(i) + 4]) for i in range(n)]
        for i, s in enumerate(reversed(stamps)):
            b[at(i):at(i) + 4] = s
    if how == "a wild timestamp":
        b[at(n - 1):at(n - 1) + 4] = (2**32 - 5).to_bytes(4, "little")
    if how == "an electrode id no system writes":
        b[at(3) + 4:at(3) + 6] = (5000).to_bytes(2, "little")
    if how == "a damaged clock resolution":
        b[20:24] = (1000).to_bytes(4, "little")
    if how == "a damaged extended header":
        b[336:344] = b"NEUEVXXX"  # the first electrode's waveform description
    return bytes(b)


@pytest.mark.parametrize("how, message", [
    ("cut mid-packet", "bytes into a"),
    ("zero timestamps", "timestamps run backwards"),
    ("reversed timestamps", "timestamps run backwards"),
    ("a wild timestamp", "leaps"),
    ("a damaged extended header", "no waveform description"),
    ("an electrode id no system writes", "ids no Blackrock system writes"),
    ("a damaged clock resolution", "timestamp resolution 1000 Hz"),
])
def test_a_damaged_nev_is_named_not_sorted(cut, tmp_path, how, message):
    path = tmp_path / "bad.nev"
    path.write_bytes(damaged(*cut, how))
    with pytest.raises(SpikevaeError, match=message):
        spikevae.sort(path, fast_config(features="pca"), out=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_pauses_in_a_nev_are_kept_as_segments(tmp_path):
    rng = np.random.default_rng(1)
    shape = -np.exp(-((np.arange(48) - 11) ** 2) / 6.0)
    parts = [np.arange(900 + k * 100, 10 * 30_000, 1_500) for k in range(3)]  # the clock restarts twice
    ticks = np.concatenate(parts)
    n = len(ticks)
    small = rng.random(n) < 0.2  # threshold crossings of the noise, beside the unit's spikes
    wf = ((np.where(small, 40, 200) * (1 + 0.05 * rng.standard_normal(n)))[:, None] * shape
          + 5 * rng.standard_normal((n, 48))).astype(np.float32)
    write_nev(tmp_path / "paused.nev", ticks, np.ones(n, int), np.zeros(n, int), wf, np.array([1]))
    spikes = read_nev_spikes(tmp_path / "paused.nev")
    segments = spikes["segments"]
    assert [s["file_start_tick"] for s in segments] == [900, 1000, 1100]
    assert np.all(np.diff(spikes["timestamp"]) > 0)  # laid end to end: times increase
    result = spikevae.sort(tmp_path / "paused.nev", fast_config(features="pca"), out=tmp_path / "r")
    res = spikevae.load_result(result.out)
    assert len(res["run"]["input"]["segments"]) == 3
    unit = max(res["units"], key=lambda u: abs(u["amplitude_uv"]))
    assert unit["presence_ratio"] == 1.0  # it fires in every segment, as it did in the recording
    rate = (~small).sum() / res["run"]["input"]["duration_s"]
    assert unit["firing_rate_hz"] == pytest.approx(rate, rel=0.1)


def test_a_nev_cut_at_a_packet_boundary_is_told_by_the_recording_beside_it(small_recording, tmp_path):
    ns6 = tmp_path / "session.ns6"
    ns6.write_bytes(small_recording[0].read_bytes())
    nev = tmp_path / "session.nev"
    cut_online(ns6, nev)
    whole = spikevae.sort(nev, fast_config(features="pca"), out=tmp_path / "whole")
    assert not spikevae.load_result(whole.out)["run"]["warnings"]
    raw = nev.read_bytes()
    header, packet = int.from_bytes(raw[12:16], "little"), int.from_bytes(raw[16:20], "little")
    nev.write_bytes(raw[:header + packet * ((len(raw) - header) // packet // 2)])  # half the packets, whole ones
    half = spikevae.sort(nev, fast_config(features="pca"), out=tmp_path / "half")
    [warning] = spikevae.load_result(half.out)["run"]["warnings"]
    assert "end" in warning and "before session.ns6 does" in warning and "cut short" in warning
