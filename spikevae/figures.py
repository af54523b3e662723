"""Figures of a comparison (PNG, matplotlib) and the ``compare.html`` report that shows them.

A unit of a baseline that pairs with a unit of the result's sorting (``compare.agreement``)
takes that unit's colour in every figure, so the same neuron looks the same across feature
spaces; unpaired units are drawn in shades of grey-blue, unsorted spikes in light grey.
"""
from __future__ import annotations

import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .io.reader import TICKS_PER_SECOND  # noqa: E402

MAX_ELECTRODES = 6
UNPAIRED = ("#4c6a87", "#7d93a8", "#2f4658", "#a3b4c4")

# what each row of the summary means, and where it is measured
METRICS = [
    ("units", "units", "{:d}", "units the sorting reports (noise-labelled units left out)"),
    ("sorted", "sorted_fraction", "{:.0%}", "share of detected spikes assigned to a unit"),
    ("SNR", "median_snr", "{:.1f}", "median over units of |mean waveform at the trough| / noise SD (waveforms)"),
    ("ISI violations", "median_isi_violation", "{:.3f}", "median share of a unit's intervals under 1.5 ms"),
    ("isolation distance", "median_isolation_distance", "{:.1f}",
     "median Mahalanobis radius holding as many other spikes as the unit has; higher = better isolated "
     "(one space for all: each electrode's whitened waveforms on their principal axes)"),
    ("L-ratio", "median_l_ratio", "{:.2g}",
     "median L-ratio: other spikes inside a unit's cluster; lower = better (the same common space)"),
    ("silhouette", "mean_silhouette", "{:.2f}",
     "mean over electrodes of the silhouette of sorted spikes, −1..1 (the same common space)"),
]
GT_METRICS = [
    ("well detected", "well_detected", "{:d}", "true units found with accuracy ≥ 0.8"),
    ("mean accuracy", "mean_accuracy", "{:.3f}", "TP / (TP + FN + FP) per true unit, 0 when unpaired, averaged"),
    ("precision", "mean_precision", "{:.3f}", "share of a paired unit's spikes that are the true unit's"),
    ("recall", "mean_recall", "{:.3f}", "share of the true unit's spikes found in its paired unit"),
    ("false-positive units", "false_positive_units", "{:d}", "reported units that match no true unit"),
]


def _tab(i: int):
    return plt.get_cmap("tab10")(i % 10)


def unit_colours(report: dict, sortings, electrode_ids) -> list[dict]:
    """For each sorting, unit id → colour: the result's units by rank on their electrode,
    a baseline's paired units as their partner, unpaired ones from ``UNPAIRED``."""
    first = sortings[0].table
    rank: dict[int, int] = {}
    colours = [{}]
    for u, e in enumerate(first.electrode_id):
        rank[e] = rank.get(e, -1) + 1
        colours[0][u] = _tab(rank[e])
    for s in sortings[1:]:
        partner = {p["unit_b"]: p["unit_a"] for p in report["agreement"][s.name]["pairs"]}
        spare: dict[int, int] = {}
        c = {}
        for u, e in enumerate(s.table.electrode_id):
            if u in partner:
                c[u] = colours[0][partner[u]]
            else:
                spare[e] = spare.get(e, -1) + 1
                c[u] = UNPAIRED[spare[e] % len(UNPAIRED)]
        colours.append(c)
    return colours


def _shown_electrodes(sortings, electrode) -> list[int]:
    """The channels where the first sorting found most units (ties: most spikes)."""
    first = sortings[0]
    chans = np.unique(electrode)
    key = [(-len(np.unique(first.unit[(electrode == c) & (first.unit >= 0)])), -(electrode == c).sum(), c)
           for c in chans]
    return [k[2] for k in sorted(key)[:MAX_ELECTRODES]]


def scatter(path: Path, sortings, colours, electrode, electrode_ids) -> None:
    chans = _shown_electrodes(sortings, electrode)
    fig, axes = plt.subplots(len(chans), len(sortings), figsize=(3.6 * len(sortings), 3.0 * len(chans)),
                             squeeze=False)
    for r, c in enumerate(chans):
        idx = np.flatnonzero(electrode == c)
        for k, s in enumerate(sortings):
            ax = axes[r, k]
            lab = s.unit[idx]
            ax.scatter(*s.space[idx[lab < 0], :2].T, s=3, c="0.8", lw=0, label="unsorted")
            for u in np.unique(lab[lab >= 0]):
                ax.scatter(*s.space[idx[lab == u], :2].T, s=3, color=colours[k][int(u)], lw=0, label=f"unit {u}")
            ax.legend(fontsize=6, markerscale=3, loc="best", frameon=False)
            ax.tick_params(labelsize=6)
            ax.set_xlabel("axis 1", fontsize=7)
            if r == 0:
                ax.set_title(s.name)
            ax.set_ylabel(f"electrode {electrode_ids[c]}\naxis 2", fontsize=7)
    fig.suptitle("clustering space per electrode (first two axes)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def waveforms(path: Path, sortings, colours, electrode, electrode_ids, band_hz) -> None:
    chans = _shown_electrodes(sortings, electrode)
    fig, axes = plt.subplots(len(chans), len(sortings), figsize=(3.6 * len(sortings), 2.6 * len(chans)),
                             squeeze=False, sharey="row")
    n_samples = sortings[0].table.mean.shape[1] if len(sortings[0].table.mean) else 48
    t = np.arange(n_samples) / TICKS_PER_SECOND * 1e3
    for r, c in enumerate(chans):
        for k, s in enumerate(sortings):
            ax = axes[r, k]
            for u in [i for i, e in enumerate(s.table.electrode_id) if e == electrode_ids[c]]:
                m, sd = s.table.mean[u], s.table.sd[u]
                ax.fill_between(t, m - sd, m + sd, color=colours[k][u], alpha=0.2, lw=0)
                ax.plot(t, m, color=colours[k][u], lw=1.2, label=f"unit {u}")
            if ax.get_legend_handles_labels()[0]:  # an electrode may hold no unit of this space
                ax.legend(fontsize=6, frameon=False)
            ax.tick_params(labelsize=6)
            if r == 0:
                ax.set_title(s.name)
            if k == 0:
                ax.set_ylabel(f"electrode {electrode_ids[c]}\nµV", fontsize=7)
            if r == len(chans) - 1:
                ax.set_xlabel("ms", fontsize=7)
    fig.suptitle(f"unit mean ± SD waveforms, band-passed {band_hz[0]:g}–{band_hz[1]:g} Hz")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def accuracy(path: Path, report: dict) -> None:
    gt = report["ground_truth"]
    order = np.argsort(gt["snr"])[::-1]
    names = report["feature_spaces"]
    x = np.arange(len(order))
    fig, ax = plt.subplots(figsize=(max(7, 0.3 * len(order) * len(names)), 3.8))
    w = 0.8 / len(names)
    for k, name in enumerate(names):
        ax.bar(x + k * w, np.array(gt[name]["accuracy"])[order], w, color=_tab(k), label=name)
    ax.axhline(0.8, color="k", lw=0.8, ls="--", label="well detected (0.8)")
    ax.set_xticks(x + 0.4 - w / 2, [f"#{i} el {gt['electrode_id'][i]} · SNR {gt['snr'][i]:.0f}" for i in order],
                  fontsize=6, rotation=90)
    ax.set_xlabel("true unit (id, electrode, SNR), largest SNR first")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.legend(ncol=len(names) + 1, fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def training(path: Path, sortings) -> bool:
    nets = [(k, s) for k, s in enumerate(sortings) if s.history.get("recon")]
    if not nets:
        return False
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for k, s in nets:
        h = s.history
        steps = h.get("step") or np.arange(1, len(h["recon"]) + 1)
        axes[0].plot(steps, h["recon"], color=_tab(k), label=f"{s.name} train")
        if any(h.get("val_recon", [])):
            axes[0].plot(steps, h["val_recon"], color=_tab(k), ls="--", label=f"{s.name} validation")
        axes[1].plot(steps, h["kl"], color=_tab(k), label=s.name)
        axes[2].plot(steps, h["capacity"], color=_tab(k), label=s.name)
    for ax, title, unit in zip(axes, ("reconstruction error", "KL divergence", "capacity C"),
                               ("mean squared error per waveform", "nats", "nats")):
        ax.set_title(title)
        ax.set_xlabel("training step")
        ax.set_ylabel(unit)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


FIGURE_NOTES = {
    "scatter.png": "The electrodes with most units. Each column is one feature space, clustered the same way, "
                   "in its first two clustering axes (PCA of the electrode's features, scaled by the first axis' "
                   "SD). Colours are matched: a baseline's unit that pairs with a unit of the result's sorting "
                   "has its colour; unpaired units are grey-blue, unsorted spikes light grey.",
    "waveforms.png": "Mean ± SD of each unit's waveforms on the same electrodes, coloured as above. The waveforms "
                     "are identical for every feature space; only which spikes form each unit differs.",
    "accuracy.png": "Accuracy of every true unit in each feature space, paired by the Hungarian method "
                    "(SpikeInterface's conventions, ±0.4 ms).",
    "training.png": "Training curves of the networks: reconstruction error (train, and validation dashed), KL "
                    "divergence and the annealed capacity C it is held to.",
}


def write_figures(folder: Path, report: dict, sortings, electrode, electrode_ids, gt) -> None:
    figures = []
    if len(electrode):
        colours = unit_colours(report, sortings, electrode_ids)
        scatter(folder / "scatter.png", sortings, colours, electrode, electrode_ids)
        waveforms(folder / "waveforms.png", sortings, colours, electrode, electrode_ids,
                  report["settings"]["band_hz"])
        figures += [("scatter.png", "Clustering space per electrode"), ("waveforms.png", "Unit waveforms")]
    if gt is not None:
        accuracy(folder / "accuracy.png", report)
        figures.append(("accuracy.png", "Accuracy per true unit"))
    if training(folder / "training.png", sortings):
        figures.append(("training.png", "Training curves"))
    (folder / "compare.html").write_text(page(report, figures))


def _cell(v, fmt: str) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "–"
    return fmt.format(v)


def page(report: dict, figures: list[tuple[str, str]]) -> str:
    e = html.escape
    st, names = report["settings"], report["feature_spaces"]
    settings = (f"band {st['band_hz'][0]:g}–{st['band_hz'][1]:g} Hz · threshold {st['threshold']:g} × noise SD "
                f"({st['polarity']}) · {st['electrodes']} electrodes, {st['duration_s']:.1f} s in {st['segments']} "
                f"segment(s) · {report['spikes']} detected spikes · the result's features: {st['features']} "
                f"(latent {st['latent_dim']}, β {st['beta']:g}, C<sub>max</sub> {st['c_max']:g} nats, "
                f"{st['steps']} steps) · seed {st['seed']} · spikevae {e(str(st['spikevae']))}")
    rows = METRICS + (GT_METRICS if "ground_truth" in report else [])
    head = "".join(f"<th>{e(n)}</th>" for n in names)
    body = "".join(f"<tr><th>{e(label)}</th>" + "".join(f"<td>{_cell(report['summary'][n].get(key), fmt)}</td>"
                                                           for n in names) + f"<td class=d>{e(desc)}</td></tr>"
                   for label, key, fmt, desc in rows)
    agree = "".join(f"<li>{e(names[0])} ↔ {e(n)}: {a['matched_units']} of {a['units_a']} / {a['units_b']} units "
                    f"paired (agreement ≥ 0.5); {a['spike_agreement']:.1%} of spikes labelled alike</li>"
                    for n, a in report["agreement"].items())
    gt = ""
    if "ground_truth" in report:
        g = report["ground_truth"]
        gt = (f"<p>Ground truth: {g['true_units']} true units from <code>{e(g['path'])}</code>; scored with "
              "SpikeInterface's conventions (a spike matches within ±0.4 ms; units paired by the Hungarian method "
              "at agreement ≥ 0.5).</p>")
    parts = [f"<h1>spikevae compare — {e(report['recording'])}</h1>",
             f"<p class=meta>{settings}</p>",
             "<p>Every feature space sees the identical detected waveforms and the identical clustering, split, "
             "curation and quality labelling; only the features differ. Data: "
             "<a href='compare.csv'>compare.csv</a> (per electrode), <a href='compare.json'>compare.json</a> "
             "(everything, per unit).</p>",
             "".join(f"<p><b>Verdict:</b> {e(t)}</p>" for t in report.get("verdict", {}).get("text", [])),
             f"<h2>Summary</h2><table><tr><th></th>{head}<th>what it measures</th></tr>{body}</table>",
             f"<ul>{agree}</ul>", gt]
    parts += [f"<h2>{e(t)}</h2><p>{e(FIGURE_NOTES[f])}</p><img src='{f}' alt='{e(t)}'>" for f, t in figures]
    return ("<!doctype html><html><head><meta charset='utf-8'><title>spikevae compare — "
            f"{e(report['recording'])}</title><style>body{{font-family:sans-serif;max-width:1400px;margin:2em auto;"
            "line-height:1.4}img{max-width:100%}table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;"
            "padding:4px 10px;text-align:right}td.d{text-align:left;color:#555;font-size:90%}"
            ".meta{color:#444;background:#f4f4f4;padding:.6em}</style></head><body>"
            + "\n".join(parts) + "</body></html>\n")
