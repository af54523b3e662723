"""Simulated chronic series: the same neurons recorded session after session, as a Utah array
records them for months, with the truth of which unit is which neuron.

Over the series each neuron's amplitude drifts (a random walk kept within ±``amplitude_drift``),
its shape slowly changes (its waveform widened or narrowed within ±``shape_drift``), its rate
wanders (log steps of SD ``rate_drift``), and at each session a share drawn from ``turnover``
of the neurons changes: half of it vanishes for good, as many newcomers appear, and some of
those are look-alikes of a neuron already on their electrode (its shape a little wider, 0.6–0.8
of its size), the case that matching on the mean waveform alone gets wrong. Either simulator
family makes the recordings: ``simulation`` (the package's) or ``simulate_si``
(SpikeInterface's generators). ``series.json`` beside them names each session's true units'
neurons (the index of a unit in that session's ``.gt.npz``).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SpikevaeError
from .simulation import TEMPLATE_SAMPLES, TEMPLATE_TROUGH

SERIES_FILE = "series.json"
FAMILIES = ("spikevae", "spikeinterface")


@dataclass
class SeriesConfig:
    n_sessions: int = 10
    seed: int = 0
    amplitude_drift: float = 0.3            # largest change of a neuron's amplitude over the series
    shape_drift: float = 0.05               # largest change of its waveform's width
    rate_drift: float = 0.2                 # SD of its log-rate's step from one session to the next
    turnover: tuple[float, float] = (0.05, 0.15)  # share of the neurons that vanish or appear per session
    lookalike_share: float = 0.3            # of the newcomers: look-alikes of a neuron on their electrode


def session_name(i: int) -> str:
    return f"day{i:02d}"


class _Pool:
    """Every neuron of the series in one family's unit format, grown as newcomers are drawn."""

    def __init__(self, family: str, sim_cfg, rng: np.random.Generator):
        self.family, self.cfg, self.rng = family, sim_cfg, rng
        self.units = self._draw()

    def _draw(self):
        if self.family == "spikevae":
            from .simulation import draw_units
            return draw_units(self.cfg, self.rng)
        from .simulate_si import draw_units
        u = draw_units(self.cfg, self.rng)
        u.rate = np.exp(self.rng.uniform(*np.log(self.cfg.rate_hz), len(u.home)))
        return u

    @property
    def electrode(self) -> np.ndarray:
        return self.units.electrode if self.family == "spikevae" else self.units.home

    def __len__(self) -> int:
        return len(self.electrode)

    def grow(self) -> None:
        more = self._draw()
        self.units = _concat(self.units, more)

    def make_lookalike(self, new: int, of: int) -> None:
        """Neuron ``new`` becomes a wider, smaller copy of ``of``, on its electrode."""
        u, r = self.units, self.rng
        if self.family == "spikevae":
            u.electrode[new] = u.electrode[of]
            u.template[new] = _stretch(u.template[of], r.uniform(1.05, 1.15))
            u.amplitude[new] = u.amplitude[of] * r.uniform(0.6, 0.8)
        else:
            u.home[new], u.loc[new] = u.home[of], u.loc[of]
            for k in u.params:
                u.params[k][new] = u.params[k][of] * (r.uniform(1.0, 1.08) if k != "spatial_decay" else 1)
            u.amp[new] = u.amp[of] * r.uniform(0.6, 0.8)

    def session(self, idx: np.ndarray, amp: np.ndarray, width: np.ndarray, rate: np.ndarray):
        """The units ``idx`` as one session holds them: amplitude, width and rate factors applied."""
        u = self.units
        if self.family == "spikevae":
            from .simulation import Units
            return Units(electrode=u.electrode[idx], amplitude=u.amplitude[idx] * amp,
                         rate=u.rate[idx] * rate, bursty=u.bursty[idx],
                         template=np.array([_stretch(t, w) for t, w in zip(u.template[idx], width)])
                         .reshape(len(idx), TEMPLATE_SAMPLES))
        from .simulate_si import SIUnits
        params = {k: v[idx] * (width if k in ("repolarization_ms", "recovery_ms") else 1) for k, v in u.params.items()}
        return SIUnits(home=u.home[idx], loc=u.loc[idx], amp=u.amp[idx] * amp, params=params, rate=u.rate[idx] * rate)


def _concat(a, b):
    out = {}
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        out[f.name] = {k: np.concatenate([x[k], y[k]]) for k in x} if isinstance(x, dict) else np.concatenate([x, y])
    return type(a)(**out)


def _stretch(template: np.ndarray, factor: float) -> np.ndarray:
    """The waveform widened in time by ``factor`` about its trough (trough kept at −1 × its depth)."""
    t = np.arange(len(template)) - TEMPLATE_TROUGH
    return np.interp(t / factor, t, template)


def _walk(rng: np.random.Generator, n: int, steps: int, sd: float, limit: float | None) -> np.ndarray:
    """(steps, n) random walks from 0, each step of SD ``sd``, kept within ±``limit``."""
    x = np.zeros((steps, n))
    for s in range(1, steps):
        x[s] = x[s - 1] + sd * rng.standard_normal(n)
        if limit is not None:
            x[s] = np.clip(x[s], -limit, limit)
    return x


def simulate_series(folder, family: str, sim_cfg, series: SeriesConfig | None = None, progress=None) -> list[Path]:
    """Write ``series.n_sessions`` recordings (``day00.ns6`` …, each with its ``.gt.npz``) of one
    array into ``folder``, and ``series.json``; ``sim_cfg`` is the family's config (its seed is
    replaced per session). Returns the recordings' paths. ``folder`` must be new or empty."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}")
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise SpikevaeError(f"{folder}: the series goes into a new or empty folder")
    if not folder.resolve().parent.is_dir():
        raise SpikevaeError(f"{folder.parent}: no such folder for the series")
    s = series or SeriesConfig()
    rng = np.random.default_rng(s.seed)
    pool = _Pool(family, sim_cfg, np.random.default_rng(rng.integers(2**31)))
    active = list(range(len(pool)))
    born = {u: 0 for u in active}
    neurons_by_session, paths = [], []
    n_max = 4 * len(pool) + 16
    amp_walk = _walk(rng, n_max, s.n_sessions, s.amplitude_drift / np.sqrt(s.n_sessions), s.amplitude_drift)
    width_walk = _walk(rng, n_max, s.n_sessions, s.shape_drift / np.sqrt(s.n_sessions), s.shape_drift)
    rate_walk = _walk(rng, n_max, s.n_sessions, s.rate_drift, None)
    fresh = len(pool)  # next pool index not yet used
    folder.mkdir(exist_ok=True)
    for day in range(s.n_sessions):
        if day:
            change = int(round(rng.uniform(*s.turnover) * len(active) / 2))
            gone = set(rng.choice(active, change, replace=False).tolist()) if change else set()
            active = [u for u in active if u not in gone]
            for _ in range(change):
                while fresh >= len(pool):
                    pool.grow()
                if fresh >= n_max:
                    raise ValueError("too many newcomers for the series; lower turnover or sessions")
                if active and rng.random() < s.lookalike_share:
                    pool.make_lookalike(fresh, int(rng.choice(active)))
                active.append(fresh)
                born[fresh] = day
                fresh += 1
        idx = np.array(sorted(active))
        since = np.array([day - born[u] for u in idx])  # a neuron's walk starts when it appears
        units = pool.session(idx, 1 + amp_walk[since, idx], 1 + width_walk[since, idx], np.exp(rate_walk[since, idx]))
        path = folder / f"{session_name(day)}.ns6"
        cfg = dataclasses.replace(sim_cfg, seed=int(rng.integers(2**31)))
        if family == "spikevae":
            from .simulation import simulate
            simulate(path, cfg, units=units)
        else:
            from .simulate_si import simulate_si
            simulate_si(path, cfg, units=units)
        neurons_by_session.append(idx.tolist())
        paths.append(path)
        if progress is not None:
            progress(1)
    (folder / SERIES_FILE).write_text(json.dumps({
        "family": family, "series": dataclasses.asdict(s),
        "sessions": [{"recording": p.name, "neurons": n} for p, n in zip(paths, neurons_by_session)]}, indent=1))
    return paths


def load_series(folder) -> dict:
    """``series.json``: per session its recording's name and the neuron of each true unit."""
    return json.loads((Path(folder) / SERIES_FILE).read_text())
