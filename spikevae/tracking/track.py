"""Tracking: which units of a chronic array's sessions are the same neuron.

Each session's result is read once and reduced to its units' summaries (``SessionUnits``):
the mean and spread of the unit's spikes in the shared β-VAE latent, its mean waveform, its
inter-spike-interval distribution, its firing rate and amplitude. The spikes are then let
go, so memory grows with the number of units, not of spikes or sessions.

Sessions are taken in recording order. A track ends with its last unit; on each electrode
the tracks seen within ``max_gap`` sessions are matched to the new session's units by the
Hungarian method on the probability that the two are one neuron: a logistic model of six
distances (latent, waveform shape, amplitude, ISI distribution, rate, sessions apart),
fitted on simulated series with known neurons (``benchmarks/tracking.py --fit``;
the figures in RESULTS.md, "Tracking across sessions"). A pair below ``min_probability``
is not matched: the unit starts a track (a neuron appeared) and the track waits (a neuron
vanished, or was missed that day). A track never holds two units of one session.

The latent is comparable only between sessions embedded by one model (``spikevae batch`` or
``--model``). Sessions sorted with their own network or PCA are refused, unless
``waveforms_only``: then the latent distance is left out and a model fitted without it
matches them (less precise; ``tracks.json`` says so).
"""
from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.special import expit

from ..errors import SpikevaeError
from ..io.output import check_out, load_result, staged_folder
from ..io.reader import TICKS_PER_SECOND, file_checksum
from ..params import TrackParams
from ..progress import Reporter

FEATURES = ("latent", "shape", "amplitude", "isi", "rate", "gap")
ISI_EDGES_S = np.logspace(-3, 1, 25)  # 1 ms to 10 s, log-spaced


@dataclass
class SessionUnits:
    """One session's units, reduced to what tracking compares."""

    name: str
    result: str
    start_time: str | None
    units_checksum: str          # of its units.csv: an export checks that the result is still the one tracked
    model: str | None            # checksum of the model that embedded the session; None: its own
    waveform_settings: dict      # band, filter, polarity, length and alignment of its waveforms
    unit: np.ndarray             # unit ids of the result
    electrode: np.ndarray        # electrode ids
    quality: list[str]
    n_spikes: np.ndarray
    rate_hz: np.ndarray
    amplitude_uv: np.ndarray
    latent_mean: np.ndarray      # (units, latent)
    latent_sd: np.ndarray
    waveform: np.ndarray         # (units, samples) mean, µV
    isi: np.ndarray              # (units, bins) share of the unit's ISIs in each bin of ISI_EDGES_S

    def __len__(self) -> int:
        return len(self.unit)


def summarise(result) -> SessionUnits:
    """Read one result folder and reduce its units to their summaries."""
    res = load_result(result)
    spikes, units = res.spikes, res.units
    latent = spikes["latent"]
    order = np.argsort(spikes["unit"], kind="stable")
    by_unit = spikes["unit"][order]  # sorted once; each unit's spikes are one run of it
    k, d = len(units), latent.shape[1] if latent.ndim == 2 else 0
    mean, sd, isi = np.zeros((k, d)), np.zeros((k, d)), np.zeros((k, len(ISI_EDGES_S) - 1))
    for i, u in enumerate(units):
        rows = order[np.searchsorted(by_unit, u["unit"]):np.searchsorted(by_unit, u["unit"], "right")]
        z = np.asarray(latent[rows], np.float64)
        mean[i], sd[i] = z.mean(axis=0), z.std(axis=0)
        gaps = np.diff(np.sort(spikes["timestamp"][rows])) / TICKS_PER_SECOND
        h = np.histogram(gaps, ISI_EDGES_S)[0].astype(float)
        isi[i] = h / max(h.sum(), 1.0)
    wf = res.waveforms
    return SessionUnits(
        name=res.name, result=str(Path(result).resolve()), start_time=res.input.get("start_time"),
        units_checksum=file_checksum(Path(result) / "units.csv"), model=res.model_checksum,
        waveform_settings=res.config.waveform_settings(),
        unit=np.array([u["unit"] for u in units], np.int64),
        electrode=np.array([u["electrode_id"] for u in units], np.int64),
        quality=[u.get("quality", "") for u in units],
        n_spikes=np.array([u["n_spikes"] for u in units], np.int64),
        rate_hz=np.array([u["firing_rate_hz"] for u in units], float),
        amplitude_uv=np.array([u["amplitude_uv"] for u in units], float),
        latent_mean=mean, latent_sd=sd, waveform=np.asarray(wf["mean"], float).reshape(k, -1), isi=isi)


def distances(a: SessionUnits, i: np.ndarray, b: SessionUnits, j: np.ndarray, gap: np.ndarray) -> np.ndarray:
    """(pairs, len(FEATURES)) distances between units ``a[i]`` and ``b[j]`` (index arrays of one
    length), ``gap`` sessions apart."""
    var = (a.latent_sd[i] ** 2 + b.latent_sd[j] ** 2) / 2 + 1e-6
    latent = np.sqrt(np.mean((a.latent_mean[i] - b.latent_mean[j]) ** 2 / var, axis=1)) if a.latent_mean.shape[1] \
        else np.zeros(len(i))
    wa, wb = a.waveform[i], b.waveform[j]
    wa, wb = wa - wa.mean(axis=1, keepdims=True), wb - wb.mean(axis=1, keepdims=True)
    corr = (wa * wb).sum(axis=1) / np.maximum(np.linalg.norm(wa, axis=1) * np.linalg.norm(wb, axis=1), 1e-12)
    amplitude = np.abs(np.log(np.maximum(a.amplitude_uv[i], 1e-3) / np.maximum(b.amplitude_uv[j], 1e-3)))
    isi = np.sqrt(np.maximum(1 - np.sqrt(a.isi[i] * b.isi[j]).sum(axis=1), 0))  # Hellinger distance
    rate = np.abs(np.log(np.maximum(a.rate_hz[i], 1e-3) / np.maximum(b.rate_hz[j], 1e-3)))
    return np.column_stack([latent, 1 - corr, amplitude, isi, rate, np.asarray(gap, float)])


def waveform_correlation(a: SessionUnits, i: np.ndarray, b: SessionUnits, j: np.ndarray) -> np.ndarray:
    """Correlation of the units' mean waveforms: the classic matching on its own."""
    return 1 - distances(a, i, b, j, np.zeros(len(i)))[:, 1]


def probability(x: np.ndarray, weights: dict) -> np.ndarray:
    """The logistic model's probability that each pair of distances is one neuron."""
    z = weights["intercept"] + sum(weights[f] * x[:, k] for k, f in enumerate(FEATURES) if f in weights)
    return expit(z)


@dataclass
class Tracks:
    """One row per unit of every session: its track and the probability of its link to the
    track's previous unit (NaN for a track's first)."""

    sessions: list[SessionUnits]
    track: list[np.ndarray]          # per session, per unit
    probability: list[np.ndarray]
    previous: list[np.ndarray]       # per session, per unit: session index of the track's previous unit, or −1
    waveforms_only: bool

    @property
    def n_tracks(self) -> int:
        return int(max((t.max(initial=-1) for t in self.track), default=-1)) + 1


def _order(sessions: list[SessionUnits]) -> list[SessionUnits]:
    return sorted(sessions, key=lambda s: (s.start_time or "", s.name))


def check_shared(sessions: list[SessionUnits], waveforms_only: bool) -> str | None:
    """Why the sessions' latents cannot be compared, or None; a warning when ``waveforms_only``.
    Sessions whose waveforms were cut otherwise (band, filter, polarity, length) are refused either way."""
    first = sessions[0]
    for s in sessions[1:]:
        differs = [k for k, v in first.waveform_settings.items() if s.waveform_settings[k] != v]
        if differs:
            k = differs[0]
            raise SpikevaeError(f"{s.name} was sorted with {k} {s.waveform_settings[k]}, {first.name} with "
                                f"{first.waveform_settings[k]}: their units cannot be compared; sort them alike")
    models = {s.model for s in sessions}
    if len(models) == 1 and None not in models:
        return None
    own = [s.name for s in sessions if s.model is None]
    why = (f"{len(own)} session(s) were embedded by their own model or PCA ({', '.join(own[:3])})" if own
           else f"the sessions were embedded by {len(models)} different models")
    if not waveforms_only:
        raise SpikevaeError(f"{why}, so their latents cannot be compared: sort them with one model "
                            "(spikevae batch, or --model), or pass --waveforms-only to match on waveform, ISI "
                            "and rate alone")
    return f"{why}: matched on waveform, ISI and rate alone (--waveforms-only), less precisely than in one latent"


def match(sessions: list[SessionUnits], params: TrackParams | None = None, waveforms_only: bool = False,
          scorer=None, progress=None) -> Tracks:
    """Tracks over ``sessions`` (put in recording order). ``scorer(a, i, b, j, gap)`` gives each
    candidate pair's probability (default: the fitted logistic model)."""
    p = params or TrackParams()
    weights = p.waveform_weights if waveforms_only else p.weights
    scorer = scorer or (lambda a, i, b, j, gap: probability(distances(a, i, b, j, gap), weights))
    sessions = _order(sessions)
    tracks, probs, prev = [], [], []
    last: dict[int, list[tuple[int, int, int]]] = {}  # electrode -> open tracks (track, session, unit)
    n_tracks = 0
    for s, cur in enumerate(sessions):
        track = np.full(len(cur), -1, np.int64)
        prob = np.full(len(cur), np.nan)
        before = np.full(len(cur), -1, np.int64)
        for e in np.unique(cur.electrode):
            units = np.flatnonzero(cur.electrode == e)
            open_ = [t for t in last.get(int(e), []) if s - t[1] <= p.max_gap]
            if open_:
                pr = np.zeros((len(open_), len(units)))
                for r, (_, ss, su) in enumerate(open_):
                    pr[r] = scorer(sessions[ss], np.full(len(units), su), cur, units, np.full(len(units), s - ss))
                rows, cols = linear_sum_assignment(-np.log(np.clip(pr, 1e-12, 1 - 1e-12)) +
                                                   np.log(np.clip(1 - pr, 1e-12, 1)))
                for r, c in zip(rows, cols):
                    if pr[r, c] >= p.min_probability:
                        track[units[c]], prob[units[c]], before[units[c]] = open_[r][0], pr[r, c], open_[r][1]
            for c in units[track[units] < 0]:
                track[c] = n_tracks
                n_tracks += 1
            # a track continues from its newest unit; those not matched here stay open
            taken = set(track[units].tolist())
            last[int(e)] = [t for t in last.get(int(e), []) if t[0] not in taken and s - t[1] < p.max_gap] + \
                [(int(track[c]), s, int(c)) for c in units]
        tracks.append(track)
        probs.append(prob)
        prev.append(before)
        if progress is not None:
            progress(1)
    return Tracks(sessions, tracks, probs, prev, waveforms_only)


TRACK_COLUMNS = ("track", "session", "session_index", "start_time", "unit", "electrode_id", "quality", "n_spikes",
                 "firing_rate_hz", "amplitude_uv", "match_probability", "previous_session")


def rows(tracks: Tracks) -> list[dict]:
    """``tracks.csv``'s rows, ordered by track and session."""
    out = []
    for s, (sess, track, prob, before) in enumerate(zip(tracks.sessions, tracks.track, tracks.probability,
                                                        tracks.previous)):
        for k in range(len(sess)):
            out.append({"track": int(track[k]), "session": sess.name, "session_index": s,
                        "start_time": sess.start_time or "", "unit": int(sess.unit[k]),
                        "electrode_id": int(sess.electrode[k]), "quality": sess.quality[k],
                        "n_spikes": int(sess.n_spikes[k]), "firing_rate_hz": round(float(sess.rate_hz[k]), 4),
                        "amplitude_uv": round(float(sess.amplitude_uv[k]), 2),
                        "match_probability": "" if np.isnan(prob[k]) else round(float(prob[k]), 4),
                        "previous_session": int(before[k]) if before[k] >= 0 else ""})
    return sorted(out, key=lambda r: (r["track"], r["session_index"]))


def summary(tracks: Tracks, params: TrackParams, warning: str | None) -> dict:
    """``tracks.json``: the sessions, the settings and how long the tracks are."""
    lengths = np.bincount(np.concatenate(tracks.track)) if tracks.n_tracks else np.zeros(0, int)
    return {
        "sessions": [{"index": s, "name": x.name, "result": x.result, "start_time": x.start_time, "units": len(x),
                      "units_checksum": x.units_checksum} for s, x in enumerate(tracks.sessions)],
        "matched_on": "waveform, ISI and rate" if tracks.waveforms_only else "shared latent, waveform, ISI and rate",
        "model": tracks.sessions[0].model if tracks.sessions and not tracks.waveforms_only else None,
        "settings": asdict(params), "warnings": [warning] if warning else [],
        "units": int(sum(len(x) for x in tracks.sessions)), "tracks": tracks.n_tracks,
        "tracks_by_sessions_spanned": {int(n): int((lengths == n).sum()) for n in np.unique(lengths)},
    }


def write_tracks(folder: Path, tracks: Tracks, params: TrackParams, warning: str | None) -> None:
    """``tracks.csv``, ``tracks.json`` and ``tracks.html`` in ``folder``."""
    from .page import track_page

    table = rows(tracks)
    with open(folder / "tracks.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=TRACK_COLUMNS)
        w.writeheader()
        w.writerows(table)
    info = summary(tracks, params, warning)
    (folder / "tracks.json").write_text(json.dumps(info, indent=1) + "\n")
    (folder / "tracks.html").write_text(track_page(tracks, info))


def load_track_ids(tracks_csv, result) -> dict[int, int]:
    """Unit id → track id of one result folder, from a ``tracks.csv`` and the ``tracks.json``
    beside it (for the exports); a result sorted again since it was tracked is refused."""
    want, tracks_csv = Path(result).resolve(), Path(tracks_csv)
    try:
        info = json.loads((tracks_csv.parent / "tracks.json").read_text())
        with open(tracks_csv, newline="") as f:
            table = list(csv.DictReader(f))
        sessions = [s for s in info["sessions"] if Path(s["result"]) == want]
        if not sessions:
            raise SpikevaeError(f"{tracks_csv}: {result} is not among the tracked sessions")
        index, checksum = sessions[0]["index"], sessions[0]["units_checksum"]
        ids = {int(r["unit"]): int(r["track"]) for r in table if int(r["session_index"]) == index}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SpikevaeError(f"{tracks_csv}: not a tracks.csv that spikevae track wrote, with its tracks.json beside "
                            f"it ({type(exc).__name__})") from None
    if file_checksum(want / "units.csv") != checksum:
        raise SpikevaeError(f"{result} was sorted again after {tracks_csv} was made; track the sessions again")
    return ids


def track_inputs(items) -> list[Path]:
    """Result folders, or a folder ``spikevae batch`` wrote (its sorted sessions, from sessions.csv)."""
    found: list[Path] = []
    for item in map(Path, items):
        if (item / "sessions.csv").is_file() and not (item / "run.json").is_file():
            with open(item / "sessions.csv", newline="") as f:
                done = [r["result"] for r in csv.DictReader(f) if r.get("status") in ("sorted", "skipped")]
            if not done:
                raise SpikevaeError(f"{item}: the batch holds no sorted session")
            found += [Path(r) if Path(r).is_absolute() else item / Path(r).name for r in done]
        elif (item / "run.json").is_file():
            found.append(item)
        else:
            raise SpikevaeError(f"{item}: neither a spikevae result folder nor a batch folder (no run.json or "
                                "sessions.csv)")
    if len(set(p.resolve() for p in found)) != len(found):
        raise SpikevaeError("a result is named twice")
    if len(found) < 2:
        raise SpikevaeError("tracking needs two sessions or more")
    return found


def track(results, out, overwrite: bool = False, waveforms_only: bool = False, params: TrackParams | None = None,
          reporter=None) -> Tracks:
    """Track units over ``results`` (result folders, or a batch folder) and write ``tracks.csv``,
    ``tracks.json`` and ``tracks.html`` into the folder ``out``. See the module's docstring."""
    rep = reporter or Reporter(quiet=True)
    p = params or TrackParams()
    paths = track_inputs(results)
    out = Path(out)
    check_out(out, overwrite, "tracks")  # before reading every session
    sessions = []
    with rep.bar("read sessions", len(paths), unit="session") as up:
        for path in paths:
            sessions.append(summarise(path))
            up(1)
    warning = check_shared(sessions, waveforms_only)
    if warning:
        rep.warn(warning)
    with rep.bar("match", len(sessions), unit="session") as up:
        tracks = match(sessions, p, waveforms_only=waveforms_only or warning is not None, progress=up)
    with staged_folder(out, overwrite, "tracks") as tmp:
        write_tracks(tmp, tracks, p, warning)
    spanning = sum(1 for n in np.bincount(np.concatenate(tracks.track)) if n > 1) if tracks.n_tracks else 0
    rep.info(f"{len(sessions)} sessions, {sum(len(s) for s in sessions)} units in {tracks.n_tracks} tracks, "
             f"{spanning} spanning two sessions or more → {out}")
    return tracks
