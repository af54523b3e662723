"""Figures of a comparison (PNG, matplotlib) and the ``compare.html`` page that shows them."""
from __future__ import annotations

import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

MAX_ELECTRODES = 6


def _colours(n: int):
    return plt.get_cmap("tab10")(np.arange(max(n, 1)) % 10)


def _shown_electrodes(sortings, electrode) -> list[int]:
    """The channels where the first sorting found most units (ties: most spikes)."""
    first = sortings[0]
    chans = np.unique(electrode)
    key = [(-len(np.unique(first.unit[(electrode == c) & (first.unit >= 0)])), -(electrode == c).sum(), c)
           for c in chans]
    return [k[2] for k in sorted(key)[:MAX_ELECTRODES]]


def scatter(path: Path, sortings, electrode, electrode_ids) -> None:
    chans = _shown_electrodes(sortings, electrode)
    fig, axes = plt.subplots(len(chans), len(sortings), figsize=(3.2 * len(sortings), 2.8 * len(chans)),
                             squeeze=False)
    for r, c in enumerate(chans):
        idx = np.flatnonzero(electrode == c)
        for k, s in enumerate(sortings):
            ax = axes[r, k]
            lab = s.unit[idx]
            ax.scatter(*s.space[idx[lab < 0], :2].T, s=3, c="0.75", lw=0)
            units = np.unique(lab[lab >= 0])
            for colour, u in zip(_colours(len(units)), units):
                ax.scatter(*s.space[idx[lab == u], :2].T, s=3, color=colour, lw=0)
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(s.name)
            if k == 0:
                ax.set_ylabel(f"electrode {electrode_ids[c]}")
    fig.suptitle("clustering space (first two axes), coloured by unit; grey = unsorted")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def waveforms(path: Path, sortings, electrode, electrode_ids) -> None:
    chans = _shown_electrodes(sortings, electrode)
    fig, axes = plt.subplots(len(chans), len(sortings), figsize=(3.2 * len(sortings), 2.4 * len(chans)),
                             squeeze=False, sharey="row")
    t = np.arange(sortings[0].table.mean.shape[1] if len(sortings[0].table.mean) else 48) / 30.0
    for r, c in enumerate(chans):
        for k, s in enumerate(sortings):
            ax = axes[r, k]
            units = [i for i, e in enumerate(s.table.electrode_id) if e == electrode_ids[c]]
            for colour, u in zip(_colours(len(units)), units):
                m, sd = s.table.mean[u], s.table.sd[u]
                ax.fill_between(t, m - sd, m + sd, color=colour, alpha=0.2, lw=0)
                ax.plot(t, m, color=colour, lw=1.2, label=f"unit {u}")
            if r == 0:
                ax.set_title(s.name)
            if k == 0:
                ax.set_ylabel(f"el. {electrode_ids[c]} (µV)")
            if r == len(chans) - 1:
                ax.set_xlabel("ms")
    fig.suptitle("unit mean ± SD waveforms")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def accuracy(path: Path, report: dict) -> None:
    gt = report["ground_truth"]
    order = np.argsort(gt["snr"])[::-1]
    names = report["feature_spaces"]
    x = np.arange(len(order))
    fig, ax = plt.subplots(figsize=(max(6, 0.22 * len(order) * len(names)), 3.4))
    w = 0.8 / len(names)
    for k, (name, colour) in enumerate(zip(names, _colours(len(names)))):
        ax.bar(x + k * w, np.array(gt[name]["accuracy"])[order], w, color=colour, label=name)
    ax.axhline(0.8, color="k", lw=0.8, ls="--")
    ax.set_xticks(x + 0.4 - w / 2, [f"{gt['snr'][i]:.0f}" for i in order], fontsize=7)
    ax.set_xlabel("true units, by SNR")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.legend(ncol=len(names), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def training(path: Path, sortings) -> bool:
    nets = [s for s in sortings if s.history.get("recon")]
    if not nets:
        return False
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for s, colour in zip(nets, _colours(len(nets))):
        h = s.history
        steps = h.get("step") or np.arange(1, len(h["recon"]) + 1)
        axes[0].plot(steps, h["recon"], color=colour, label=f"{s.name} train")
        if any(h.get("val_recon", [])):
            axes[0].plot(steps, h["val_recon"], color=colour, ls="--", label=f"{s.name} validation")
        axes[1].plot(steps, h["kl"], color=colour, label=s.name)
        axes[2].plot(steps, h["capacity"], color=colour, label=s.name)
    for ax, title in zip(axes, ("reconstruction (per waveform)", "KL (nats)", "capacity C (nats)")):
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def write_figures(folder: Path, report: dict, sortings, electrode, electrode_ids, gt) -> None:
    figures = []
    if len(electrode):
        scatter(folder / "scatter.png", sortings, electrode, electrode_ids)
        waveforms(folder / "waveforms.png", sortings, electrode, electrode_ids)
        figures += [("scatter.png", "Clustering space per electrode"), ("waveforms.png", "Unit waveforms")]
    if gt is not None:
        accuracy(folder / "accuracy.png", report)
        figures.append(("accuracy.png", "Accuracy per true unit"))
    if training(folder / "training.png", sortings):
        figures.append(("training.png", "Training curves"))
    (folder / "compare.html").write_text(page(report, figures))


def page(report: dict, figures: list[tuple[str, str]]) -> str:
    from .compare import table_text

    parts = [f"<h1>spikevae compare — {html.escape(report['recording'])}</h1>",
             f"<p>{report['spikes']} detected spikes, identical for every feature space; "
             f"only the features differ.</p>",
             f"<pre>{html.escape(table_text(report))}</pre>"]
    parts += [f"<h2>{html.escape(t)}</h2><img src='{f}' alt='{html.escape(t)}'>" for f, t in figures]
    return ("<!doctype html><html><head><meta charset='utf-8'><title>spikevae compare</title>"
            "<style>body{font-family:sans-serif;max-width:1400px;margin:2em auto}img{max-width:100%}"
            "pre{background:#f4f4f4;padding:1em}</style></head><body>" + "\n".join(parts) + "</body></html>\n")
