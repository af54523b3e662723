"""``compare``: the result's feature space against baselines on the identical detections.

Every feature space sees the same detected waveforms and the same clustering; only the
features differ. Without ground truth the sortings are compared by per-unit quality (SNR,
ISI violations, isolation distance, L-ratio, silhouette, the last three in one space common
to all: each electrode's whitened waveforms on their principal axes) and by their agreement
with the result's sorting; with ground truth (SpikeInterface conventions, see
``groundtruth``) by accuracy per true unit. The verdict names the space that sorts more.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .sorting.clustering import principal_space
from .config import SortConfig
from .params import default_steps, graph_suits
from .errors import SpikevaeError
from .sorting.features import FEATURES, make_features
from .simulators.groundtruth import WELL_DETECTED, GroundTruth, ground_truth_path, pair_units, score
from .sorting.metrics import UnitTable, isolation, silhouette
from .io.output import Result, check_out, default_out, load_result, staged_folder, write_json
from .sorting.parallel import torch_threads
from .pipeline import embed, label_units, sort
from .progress import Reporter
from .sorting.spikes import Spikes
from .io.store import groups
from .sorting.train import cpu_threads, input_transforms, pick_device
from .sorting.whitening import to_noise_units

SUMMARY_COLUMNS = ("units", "sorted_fraction", "median_snr", "median_isi_violation", "median_isolation_distance",
                   "median_l_ratio", "mean_silhouette")


@dataclass
class FeatureSorting:
    """One feature space's sorting of the shared detections."""

    name: str
    unit: np.ndarray
    space: np.ndarray             # clustering-space coordinates (n × dims)
    table: UnitTable
    history: dict = field(default_factory=dict)
    unit_metrics: list[dict] = field(default_factory=list)
    electrode_metrics: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)


def _result_for(target: Path, config: SortConfig | None, rep: Reporter) -> Path:
    """The result folder to compare: ``target`` itself, or the sort of recording ``target``
    (reused when a result of that same file is already there, else made)."""
    if target.is_dir():
        return target
    if not target.is_file():
        raise SpikevaeError(f"{target}: no such file or result folder")
    out = default_out(target)
    if out.exists():
        there = load_result(out)
        if there.name != target.name or there.input["bytes"] != target.stat().st_size:
            raise SpikevaeError(f"{out} holds the result of {there.name}, not of {target.name}; "
                                f"move it away or compare that result folder instead")
        rep.info(f"reusing {out}")
        return out
    sort(target, config, out=out, reporter=rep)
    return out


def _check_ground_truth(gt: GroundTruth, res: Result, path) -> None:
    electrodes = set(res.electrode_ids.tolist())
    first = min(start for start, _ in res.segments)
    last = max(start + n for start, n in res.segments)
    if not set(gt.unit_electrode.tolist()) <= electrodes or (
            len(gt.timestamp) and (gt.timestamp.min() < first or gt.timestamp.max() > last)):
        raise SpikevaeError(f"{path}: this ground truth does not belong to {res.name} "
                            f"(electrodes or times outside the recording)")


def _common_space(detected: Spikes, cfg: SortConfig) -> np.ndarray:
    """One space for every sorting's isolation metrics, so that they compare: each electrode's
    waveforms in noise units, whitened (``whitening``), on their ``cluster.n_dims`` principal axes."""
    out = np.zeros((detected.n, cfg.cluster.n_dims))
    transforms = input_transforms(detected.noise, cfg.vae)
    for e, idx in groups(detected.electrode).items():
        if len(idx) > cfg.cluster.n_dims:
            x = to_noise_units(np.asarray(detected.waveform[idx]), detected.electrode[idx], transforms)
            out[idx] = principal_space(x, cfg.cluster.n_dims, cfg.seed)
    return out


def verdict(sortings: list[FeatureSorting], reseeded: dict, timestamp: np.ndarray, gt: GroundTruth | None) -> dict:
    """Which space sorts more: well-detected units with ground truth, else units (with the
    common-space isolation beside them); by how much; and, with other seeds' sortings, whether
    the difference exceeds the spread of either space over seeds."""
    def count(unit):
        return score(gt, timestamp, unit).well_detected if gt is not None else len(np.unique(unit[unit >= 0]))

    what = "well-detected units" if gt is not None else "units"
    values = {s.name: count(s.unit) for s in sortings}
    spread = {s.name: (max(v) - min(v) if len(v) > 1 else None)
              for s in sortings for v in [[values[s.name], *map(count, reseeded[s.name])]]}
    first, *others = [s.name for s in sortings]
    lines, exceeds = [], {}
    for other in others:
        a, b = values[first], values[other]
        diff = f"{(a - b) / b:+.0%}" if b else "–"
        widest = max((spread[n] for n in (first, other) if spread[n] is not None), default=None)
        exceeds[other] = None if widest is None else abs(a - b) > widest
        lead = first if a > b else other if b > a else None
        said = f"{lead} sorts more {what}" if lead else f"{first} and {other} sort as many {what}"
        seeds = ("; the spread over seeds was not measured (--sort-seeds 3 measures it)" if widest is None else
                 f"; {'more' if exceeds[other] else 'no more'} than the spread over seeds ({widest})")
        lines.append(f"{said}: {a} against {b} ({diff}){seeds}")
    return {"metric": what, "values": values, "seed_spread": spread, "exceeds_spread": exceeds, "text": lines}


def _quality(s: FeatureSorting, electrode: np.ndarray, electrode_ids: list[int], seed: int,
             common: np.ndarray) -> None:
    """Per-unit and per-electrode metrics, isolation measured in the ``common`` space."""
    rows = {r["unit"]: r for r in s.table.rows}
    for e, idx in groups(electrode).items():
        labels, space = s.unit[idx], common[idx]
        for u in np.unique(labels[labels >= 0]):
            iso, lr = isolation(space, labels, u)
            r = rows[int(u)]
            s.unit_metrics.append({"unit": int(u), "electrode_id": r["electrode_id"], "n_spikes": r["n_spikes"],
                                   "snr": r["snr"], "isi_violation_fraction": r["isi_violation_fraction"],
                                   "isolation_distance": iso, "l_ratio": lr})
        s.electrode_metrics.append({"electrode_id": int(electrode_ids[e]),
                                    "units": int(len(np.unique(labels[labels >= 0]))),
                                    "sorted_fraction": float((labels >= 0).mean()),
                                    "silhouette": silhouette(space, labels, seed=seed)})
    s.summary = _summarise(s.unit_metrics, s.electrode_metrics, s.unit)


def _summarise(units: list[dict], electrodes: list[dict], unit: np.ndarray) -> dict:
    def med(key):
        v = np.array([u[key] for u in units], float)
        return float(np.nanmedian(v)) if np.isfinite(v).any() else float("nan")

    sil = np.array([e["silhouette"] for e in electrodes], float)
    return {"units": len(units), "sorted_fraction": float((unit >= 0).mean()) if len(unit) else 0.0,
            "median_snr": med("snr"), "median_isi_violation": med("isi_violation_fraction"),
            "median_isolation_distance": med("isolation_distance"), "median_l_ratio": med("l_ratio"),
            "mean_silhouette": float(np.nanmean(sil)) if np.isfinite(sil).any() else float("nan")}


def agreement(a: np.ndarray, b: np.ndarray) -> dict:
    """How two sortings of the same spikes agree: units paired by the Hungarian method on
    |A∩B| / |A∪B| (paired at ≥ 0.5), and the share of spikes both put in paired units or
    both leave unsorted."""
    ids_a, ids_b = np.unique(a[a >= 0]), np.unique(b[b >= 0])
    both = (a >= 0) & (b >= 0)
    m = np.zeros((len(ids_a), len(ids_b)))
    np.add.at(m, (np.searchsorted(ids_a, a[both]), np.searchsorted(ids_b, b[both])), 1)
    size_a = np.bincount(np.searchsorted(ids_a, a[a >= 0]), minlength=len(ids_a))
    size_b = np.bincount(np.searchsorted(ids_b, b[b >= 0]), minlength=len(ids_b))
    score_ab, paired = pair_units(m, size_a, size_b)
    pairs = [(int(ids_a[i]), int(ids_b[j]), float(score_ab[i, j]), int(m[i, j])) for i, j in paired]
    agreed = sum(p[3] for p in pairs) + int(((a < 0) & (b < 0)).sum())
    return {"matched_units": len(pairs), "units_a": len(ids_a), "units_b": len(ids_b),
            "spike_agreement": agreed / len(a) if len(a) else 1.0,
            "pairs": [{"unit_a": p[0], "unit_b": p[1], "agreement": p[2]} for p in pairs]}


def baseline_settings(cfg: SortConfig, name: str) -> SortConfig:
    """The result's settings for feature space ``name``, as a sort with those features would take
    them by default: a latent that a neighbour graph cannot cluster (``params.graph_suits``) takes
    the mixture, and a network trains its own default steps where the result trained its own."""
    if cfg.cluster.method == "graph" and not graph_suits(name, cfg.vae.contrast):
        cfg = replace(cfg, cluster=replace(cfg.cluster, method="mixture"))
    if cfg.vae.steps == default_steps(cfg.features, cfg.vae.contrast):
        cfg = replace(cfg, vae=replace(cfg.vae, steps=default_steps(name, cfg.vae.contrast)))
    return cfg


def compare(target, baselines=("pca",), ground_truth=None, out=None, *, config: SortConfig | None = None,
            overwrite: bool = False, reporter: Reporter | None = None, sort_seeds: int = 1) -> dict:
    """Compare the feature space of a result (or of a fresh sort of a recording) with
    ``baselines``; writes ``compare.json``, ``compare.csv``, figures and ``compare.html``
    into ``out`` (default ``RESULT/compare``) and returns the report, whose ``verdict`` says
    which space sorts more units and, with ``sort_seeds`` > 1 (each space embedded and
    clustered again with the next seeds), whether the difference exceeds their spread."""
    rep = reporter or Reporter(quiet=True)
    if sort_seeds < 1:
        raise SpikevaeError(f"--sort-seeds {sort_seeds}: must be >= 1")
    unknown = [b for b in baselines if b not in FEATURES]
    if unknown:
        raise SpikevaeError(f"--baseline {unknown[0]}: unknown; choose from {', '.join(FEATURES)}")
    if not baselines:
        raise SpikevaeError("name at least one --baseline")
    if ground_truth is not None and not Path(ground_truth).is_file():
        raise SpikevaeError(f"--ground-truth {ground_truth}: no such file")
    if out is not None:
        check_out(Path(out), overwrite, "compare")  # before any sorting work
    elif Path(target).is_file() and (default_out(target) / "compare").exists():
        check_out(default_out(target) / "compare", overwrite, "compare")  # said before a sort, not after
    result_dir = _result_for(Path(target), config, rep)
    out = Path(out) if out is not None else result_dir / "compare"
    check_out(out, overwrite, "compare")
    res = load_result(result_dir)
    run, spikes = res.run, res.spikes
    cfg = res.config
    recorded = res.input["path"]  # None for a recording object SpikeInterface knew no file of
    gt_path = Path(ground_truth) if ground_truth is not None else recorded and ground_truth_path(recorded)
    gt = None
    if ground_truth is not None or (gt_path and gt_path.is_file()):
        gt = GroundTruth.load(gt_path)
        _check_ground_truth(gt, res, gt_path)

    detected = Spikes.from_result(res)

    main_name = res.features

    def settings(name, base=cfg):  # the result's own features as it was sorted, a baseline's as it would be
        return base if name == main_name else baseline_settings(base, name)

    def clustered(name, features, history):
        unit, table, space = label_units(detected, features, settings(name), rep)
        return FeatureSorting(name=name, unit=unit, space=space, table=table, history=history)

    sortings = [clustered(main_name, spikes["latent"], run.get("training_history", {}))]
    if not np.array_equal(sortings[0].unit, spikes["unit"]):
        raise SpikevaeError(f"{result_dir}: re-clustering its features does not reproduce its units; "
                            f"was it written by another spikevae version?")
    device = pick_device("auto")

    def embedded(name, seed):
        extractor = make_features(name, settings(name).vae, device, seed, cfg.pca_components)
        features = np.zeros((detected.n, extractor.dim), np.float32)
        if detected.n:
            with cpu_threads(torch_threads(cfg.threads)):
                embed(extractor, detected, features, rep)
        return features, extractor.history

    for name in dict.fromkeys(baselines):
        if name != main_name:
            sortings.append(clustered(name, *embedded(name, cfg.seed)))
    reseeded = {s.name: [] for s in sortings}  # the other seeds' sortings, for the verdict's spread
    for seed in range(cfg.seed + 1, cfg.seed + sort_seeds):
        cfg_seed = replace(cfg, seed=seed)
        for name in reseeded:
            reseeded[name].append(label_units(detected, embedded(name, seed)[0], settings(name, cfg_seed), rep)[0])

    common = _common_space(detected, cfg)
    for s in sortings:
        _quality(s, detected.electrode, detected.electrode_ids, cfg.seed, common)
    report = {"result": str(result_dir), "recording": res.name, "spikes": detected.n,
              "settings": {"band_hz": list(cfg.band_hz), "threshold": cfg.detection.threshold,
                           "polarity": cfg.detection.polarity, "electrodes": len(detected.electrode_ids),
                           "duration_s": res.duration_s, "segments": len(detected.segments),
                           "features": main_name, "latent_dim": cfg.vae.latent_dim,
                           "beta": cfg.vae.beta, "c_max": cfg.vae.c_max, "seed": cfg.seed,
                           "clustering": {s.name: settings(s.name).cluster.method for s in sortings},
                           "steps": {s.name: settings(s.name).vae.steps for s in sortings if s.name != "pca"},
                           "spikevae": run.get("spikevae_version", "")},
              "feature_spaces": [s.name for s in sortings], "summary": {s.name: s.summary for s in sortings},
              "agreement": {s.name: agreement(sortings[0].unit, s.unit) for s in sortings[1:]},
              "electrodes": {s.name: s.electrode_metrics for s in sortings},
              "units": {s.name: s.unit_metrics for s in sortings}}
    if gt is not None:
        report["ground_truth"] = {"path": str(gt_path), "true_units": len(gt.unit_electrode),
                                  "snr": gt.unit_snr.tolist(), "electrode_id": gt.unit_electrode.tolist()}
        for s in sortings:
            sc = score(gt, detected.timestamp, s.unit)
            s.summary.update({k: v for k, v in sc.summary(gt.unit_snr).items() if k != "true_units"})
            report["ground_truth"][s.name] = {"accuracy": sc.accuracy.tolist(), "precision": sc.precision.tolist(),
                                              "recall": sc.recall.tolist(),
                                              "matched_unit": sc.matched_unit.tolist()}
    report["verdict"] = verdict(sortings, reseeded, detected.timestamp, gt)
    from .figures import write_figures  # matplotlib only when a report is written

    with staged_folder(out, overwrite, "compare") as tmp:
        write_json(tmp / "compare.json", report)
        _write_csv(tmp / "compare.csv", sortings, gt is not None)
        write_figures(tmp, report, sortings, detected.electrode, detected.electrode_ids, gt)
    report["out"] = str(out)
    return report


def _write_csv(path: Path, sortings: list[FeatureSorting], with_gt: bool) -> None:
    cols = ["feature_space", "electrode_id", *SUMMARY_COLUMNS]
    if with_gt:
        cols += ["well_detected", "mean_accuracy", "mean_precision", "mean_recall"]
    lines = [",".join(cols)]
    for s in sortings:
        lines.append(",".join([s.name, "all"] + [_fmt(s.summary.get(c, "")) for c in cols[2:]]))
        for e in s.electrode_metrics:
            units = [u for u in s.unit_metrics if u["electrode_id"] == e["electrode_id"]]
            summ = _summarise(units, [e], np.array([0]))
            summ["sorted_fraction"] = e["sorted_fraction"]
            lines.append(",".join([s.name, str(e["electrode_id"])] + [_fmt(summ.get(c, "")) for c in cols[2:]]))
    path.write_text("\n".join(lines) + "\n")


def _fmt(v) -> str:
    if isinstance(v, float):
        return "" if np.isnan(v) else f"{v:.6g}"
    return str(v)


def table_text(report: dict) -> str:
    """The compact terminal table of a report."""
    names = report["feature_spaces"]
    rows = [("units", "units", "{:d}"), ("sorted", "sorted_fraction", "{:.0%}"), ("SNR", "median_snr", "{:.1f}"),
            ("ISI viol.", "median_isi_violation", "{:.3f}"), ("iso. dist.", "median_isolation_distance", "{:.1f}"),
            ("L-ratio", "median_l_ratio", "{:.2g}"), ("silhouette", "mean_silhouette", "{:.2f}")]
    if "ground_truth" in report:
        rows += [("well detected", "well_detected", "{:d}"), ("mean accuracy", "mean_accuracy", "{:.3f}"),
                 ("precision", "mean_precision", "{:.3f}"), ("recall", "mean_recall", "{:.3f}")]
    width = max(12, *(len(n) + 2 for n in names))
    lines = ["".ljust(16) + "".join(n.rjust(width) for n in names)]
    for label, key, fmt in rows:
        cells = []
        for n in names:
            v = report["summary"][n].get(key)
            cells.append(("–" if v is None or (isinstance(v, float) and np.isnan(v)) else fmt.format(v)).rjust(width))
        lines.append(label.ljust(16) + "".join(cells))
    lines += [f"verdict: {t}" for t in report.get("verdict", {}).get("text", [])]
    for n, a in report["agreement"].items():
        lines.append(f"agreement {names[0]}↔{n}: {a['matched_units']} of {a['units_a']}/{a['units_b']} units paired, "
                     f"{a['spike_agreement']:.1%} of spikes labelled alike")
    if "ground_truth" in report:
        lines.append(f"ground truth: {report['ground_truth']['true_units']} units "
                     f"(well detected = accuracy ≥ {WELL_DETECTED})")
    return "\n".join(lines)

