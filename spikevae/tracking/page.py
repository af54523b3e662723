"""``tracks.html``: one small figure per track that spans sessions (its mean waveform on each
day, overlaid from light to dark, and its firing rate by day), drawn as inline SVG so that
the page opens anywhere and stays small for hundreds of tracks."""
from __future__ import annotations

import html
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .track import Tracks

W, H, PAD = 220, 110, 6


def _polyline(x: np.ndarray, y: np.ndarray, x0: float, y_range: tuple[float, float], colour: str) -> str:
    """``y`` against ``x`` in the panel that starts at ``x0``, ``y_range`` spanning its height."""
    lo, hi = y_range
    px = x0 + PAD + (x - x.min()) / max(np.ptp(x), 1e-12) * (W - 2 * PAD)
    py = PAD + (hi - y) / max(hi - lo, 1e-12) * (H - 2 * PAD)
    pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px, py))
    return f'<polyline fill="none" stroke="{colour}" stroke-width="1.2" points="{pts}"/>'


def _figure(days: list[int], waveforms: list[np.ndarray], rates: list[float], n_days: int) -> str:
    lo = min(w.min() for w in waveforms)
    hi = max(w.max() for w in waveforms)
    parts = []
    for d, w in zip(days, waveforms):
        shade = int(200 - 170 * d / max(n_days - 1, 1))
        parts.append(_polyline(np.arange(len(w), dtype=float), w, 0, (lo, hi), f"rgb({shade},{shade},255)"))
    r = np.asarray(rates, float)
    if len(r) > 1:
        parts.append(_polyline(np.asarray(days, float), r, W, (0, r.max() * 1.1), "#d62728"))
    dots = "".join(f'<circle cx="{W + PAD + (d - min(days)) / max(max(days) - min(days), 1) * (W - 2 * PAD):.1f}" '
                   f'cy="{PAD + (r.max() * 1.1 - v) / max(r.max() * 1.1, 1e-12) * (H - 2 * PAD):.1f}" r="2" '
                   f'fill="#d62728"/>' for d, v in zip(days, r))
    return (f'<svg width="{2 * W}" height="{H}" viewBox="0 0 {2 * W} {H}">'
            f'<rect x="0" y="0" width="{W}" height="{H}" fill="none" stroke="#ccc"/>'
            f'<rect x="{W}" y="0" width="{W}" height="{H}" fill="none" stroke="#ccc"/>{"".join(parts)}{dots}</svg>')


def track_page(tracks: Tracks, info: dict) -> str:
    """The page: a summary line, then each track spanning two sessions or more, by electrode."""
    members: dict[int, list[tuple[int, int]]] = {}
    for s, t in enumerate(tracks.track):
        for k, tr in enumerate(t):
            members.setdefault(int(tr), []).append((s, k))
    n_days = len(tracks.sessions)
    long = sorted((m for m in members.values() if len(m) > 1),
                  key=lambda m: (int(tracks.sessions[m[0][0]].electrode[m[0][1]]), m[0][0]))
    blocks = []
    for m in long:
        s0, k0 = m[0]
        sess = tracks.sessions
        days = [s for s, _ in m]
        title = (f"track {int(tracks.track[s0][k0])} · electrode {int(sess[s0].electrode[k0])} · sessions "
                 f"{', '.join(str(d) for d in days)} · amplitude "
                 f"{', '.join(f'{sess[s].amplitude_uv[k]:.0f}' for s, k in m)} µV")
        fig = _figure(days, [sess[s].waveform[k] for s, k in m], [float(sess[s].rate_hz[k]) for s, k in m], n_days)
        blocks.append(f"<div class='t'><div>{html.escape(title)}</div>{fig}</div>")
    warn = "".join(f"<p class='w'>{html.escape(w)}</p>" for w in info["warnings"])
    return ("<!doctype html><html><head><meta charset='utf-8'><title>spikevae tracks</title><style>"
            "body{font-family:sans-serif;margin:1em}.t{display:inline-block;vertical-align:top;width:440px;margin:6px;"
            "font-size:11px}"
            ".w{color:#a00}</style></head><body>"
            f"<h1>Tracks over {n_days} sessions</h1>"
            f"<p>{info['units']} units, {info['tracks']} tracks, {len(long)} spanning two sessions or more; matched "
            f"on {html.escape(info['matched_on'])}. Left: the mean waveform on each day (light: early, dark: "
            "late); right: firing rate by session.</p>"
            f"{warn}{''.join(blocks)}</body></html>")
