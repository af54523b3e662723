"""Many sessions: one shared β-VAE, then every session sorted with it, resumably, on Dask.

``train_shared`` pools waveforms from several sessions (an equal share from each, balanced
across its electrodes, in each session's noise units) into one model, so every session is
embedded in one latent space. ``batch`` trains (or takes) that model and sorts each
session into ``RESULTS/<name>.spikevae``:

- a session whose finished result matches the input's size and checksum is skipped, so a
  batch restarted with the same command does only what is left (exports missing from it
  are written);
- with ``features="pca"`` there is no network to share: each session gets its own PCA;
- a failing session is reported (``sessions.csv``, the return value) and the others go on;
- sessions run in parallel on a local Dask cluster (``jobs``) or on the workers of a running
  Dask scheduler (``scheduler``; workers must see the same paths, e.g. a shared file system).
"""
from __future__ import annotations

import csv
import glob
import shutil
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from .config import SortConfig
from .errors import SpikevaeError
from .features import network_config
from .geometry import check_spacing
from .output import check_out, load_result, staged_file
from .pipeline import open_source, sort
from .progress import Reporter
from .reader import file_checksum
from .train import TrainedModel, balanced_sample, fit_normalised, input_transforms, pick_device
from .whitening import to_noise_units

SESSION_COLUMNS = ("session", "status", "duration_s", "units", "spikes", "seconds", "reason", "path", "result")


@dataclass
class SessionOutcome:
    session: str
    status: str                   # sorted, skipped (already done) or failed
    duration_s: float
    units: int
    spikes: int
    seconds: float
    reason: str
    path: str
    result: str


def expand_sessions(items) -> list[Path]:
    """Paths, quoted globs and text files listing one path per line (# comments allowed)."""
    paths: list[Path] = []
    for item in items:
        item = str(item)
        if Path(item).is_file() and not item.endswith(".txt"):  # before globbing: names may hold [ ]
            paths.append(Path(item))
        elif item.endswith(".txt") and Path(item).is_file():
            lines = [ln.split("#")[0].strip() for ln in Path(item).read_text().splitlines()]
            paths += [Path(item).parent / ln if not Path(ln).is_absolute() else Path(ln) for ln in lines if ln]
        elif glob.has_magic(item):
            matches = sorted(glob.glob(item))
            if not matches:
                raise SpikevaeError(f"{item}: the pattern matches no file")
            paths += [Path(m) for m in matches]
        else:
            paths.append(Path(item))
    if not paths:
        raise SpikevaeError("no sessions given")
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise SpikevaeError(f"{missing[0]}: no such file")
    resolved = [p.resolve() for p in paths]
    dup = next((p for i, p in enumerate(resolved) if p in resolved[:i]), None)
    if dup is not None:
        raise SpikevaeError(f"{dup}: given twice")
    stems = [p.stem for p in paths]
    clash = next((s for i, s in enumerate(stems) if s in stems[:i]), None)
    if clash is not None:
        raise SpikevaeError(f"two sessions are named {clash!r}; their results would collide in one folder")
    return paths


def train_shared(sessions, config: SortConfig | None = None, out=None, reporter: Reporter | None = None,
                 work=None) -> TrainedModel:
    """One β-VAE trained on waveforms pooled from ``sessions`` (``max_train`` in all, an equal
    share from each); saved to ``out`` when given (written whole, then renamed)."""
    cfg = config or SortConfig()
    rep = reporter or Reporter(quiet=True)
    device = pick_device(cfg.device)
    sessions = expand_sessions(sessions)
    if out is not None:
        check_out(Path(out), True, "model")  # a model it wrote is replaced, nothing else
    share = max(1, cfg.vae.max_train // len(sessions))
    rng = np.random.default_rng(cfg.seed)
    pooled = []
    work = Path(work) if work is not None else Path(out or ".").parent
    for path in sessions:
        try:
            source = open_source(path, cfg)
            check_spacing(source.geometry, cfg.detection.cell_reach_um, cfg.allow_dense, source.info["name"])
        except SpikevaeError as exc:  # one bad session must not stop the others
            rep.warn(f"left out of training: {exc}")
            continue
        folder = work / f".{path.stem}.pool-work"
        try:
            found = source.acquire(folder, rep)
            el = np.asarray(found.store.column("electrode"))
            idx = balanced_sample(el, share, rng)
            wf = np.asarray(found.store.column("waveform")[idx], np.float32)
            pooled.append(to_noise_units(wf, el[idx], input_transforms(found.noise, cfg.vae)))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    x = np.concatenate(pooled) if pooled else np.zeros((0, cfg.detection.n_samples), np.float32)
    if len(x) < 200:
        raise SpikevaeError(f"only {len(x)} waveforms in all these sessions, too few to train on")
    rep.info(f"training one model on {len(x)} waveforms from {len(pooled)} sessions")
    net = network_config(cfg.features, cfg.vae)
    with rep.bar(f"train shared {cfg.features}", net.steps, unit="step") as up:
        model = fit_normalised(x, net, device, cfg.seed, progress=up)
    model.trained_on = cfg.waveform_settings()
    if out is not None:
        with staged_file(out, True, "model") as tmp:
            model.save(tmp)
    return model


def _done(result: Path, session: Path) -> bool:
    """A finished result of this very file (same size and checksum of every byte)?"""
    try:
        info = load_result(result)["run"]["input"]
    except SpikevaeError:
        return False
    return info.get("bytes") == session.stat().st_size and info.get("checksum") == file_checksum(session)


def write_exports(result: Path, exports: dict) -> None:
    """``exports``: {"formats": [...], "metadata": {...}, "electrode_map": path or None}, as
    ``exports.export`` takes them; an export already there is kept. The DANDI warning was
    given once for the batch."""
    from .exports import DandiWarning, default_target, export

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DandiWarning)
        for fmt in exports.get("formats", ()):
            if not default_target(result, fmt).exists():
                export(result, fmt, metadata=exports.get("metadata"), electrode_map=exports.get("electrode_map"))


def sort_session(session: str, out: str, config: SortConfig, model: str | None, exports: dict | None = None) -> dict:
    """One session, for a worker: never raises, reports what happened."""
    session_p, out_p = Path(session), Path(out)
    t0 = time.perf_counter()
    try:
        r = sort(session_p, config, out=out_p, model=model, overwrite=True)
        write_exports(r.out, exports or {})
        run = load_result(r.out)["run"]
        return asdict(SessionOutcome(session_p.stem, "sorted", run["input"]["duration_s"], r.n_units,
                                     r.counts["kept"], time.perf_counter() - t0, "", session, out))
    except Exception as exc:  # a corrupt session must not stop the batch
        reason = str(exc) if isinstance(exc, SpikevaeError) else \
            f"{type(exc).__name__}: {exc} ({traceback.format_exc(limit=1).splitlines()[-1]})"
        return asdict(SessionOutcome(session_p.stem, "failed", 0.0, 0, 0, time.perf_counter() - t0,
                                     reason, session, out))


def _client(jobs: int, scheduler: str | None):
    if scheduler is None and jobs <= 1:
        return None
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise SpikevaeError("parallel batches need dask: pip install 'spikevae[batch]'") from None
    if scheduler is not None:
        try:
            return Client(scheduler, timeout="5s")
        except (OSError, TimeoutError) as exc:
            raise SpikevaeError(f"--scheduler {scheduler}: cannot reach the Dask scheduler ({exc})") from None
    cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None)
    return Client(cluster)


def batch(sessions, out, config: SortConfig | None = None, model=None, jobs: int = 1,
          scheduler: str | None = None, reporter: Reporter | None = None,
          exports: dict | None = None) -> list[SessionOutcome]:
    """Sort every session with one shared model (with ``features="pca"``, each session's own
    PCA); ``exports`` as ``write_exports`` takes it. See the module's docstring."""
    cfg = config or SortConfig()
    rep = reporter or Reporter(quiet=True)
    paths = expand_sessions(sessions)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SpikevaeError(f"{out}: exists and is not a folder")
    shared = cfg.features != "pca"
    if not shared and model is not None:
        raise SpikevaeError("--model applies to network features (vae, ae, vae-plain), not pca")
    model_path = Path(model) if model is not None else out / "model.pt"
    if shared and model_path.exists():
        TrainedModel.load(model_path).check_compatible(cfg.waveform_settings(), model_path)
    elif model is not None:
        raise SpikevaeError(f"--model {model}: no such file")
    client = _client(jobs, scheduler)  # an unreachable scheduler fails here, before any work
    if client is not None and cfg.workers is None:
        cfg = replace(cfg, workers=1)  # sessions already run side by side; no pool inside each
    try:
        out.mkdir(parents=True, exist_ok=True)
        if not shared:
            model_path = None
        elif model_path.exists():
            rep.info(f"using {model_path}")
        else:
            train_shared(paths, cfg, out=model_path, reporter=rep, work=out)
        model_arg = str(model_path) if model_path is not None else None
        todo, outcomes = [], {}
        for p in paths:
            result = out / f"{p.stem}.spikevae"
            if _done(result, p):
                write_exports(result, exports or {})
                run = load_result(result)["run"]
                outcomes[p] = SessionOutcome(p.stem, "skipped", run["input"]["duration_s"], run["counts"]["units"],
                                             run["counts"]["kept"], 0.0, "already sorted", str(p), str(result))
            else:
                todo.append((str(p), str(result)))
        rep.info(f"{len(paths)} sessions: {len(outcomes)} already sorted, {len(todo)} to sort")
        with rep.bar("sort sessions", len(todo), unit="session") as up:
            if client is None:
                for session, result in todo:
                    outcomes[Path(session)] = SessionOutcome(**sort_session(session, result, cfg, model_arg, exports))
                    up(1)
            else:
                from dask.distributed import as_completed

                futures = [client.submit(sort_session, s, r, cfg, model_arg, exports, pure=False) for s, r in todo]
                for fut in as_completed(futures):
                    o = SessionOutcome(**fut.result())
                    outcomes[Path(o.path)] = o
                    up(1)
    finally:
        if client is not None:
            cluster = getattr(client, "cluster", None)
            client.close()
            if scheduler is None and cluster is not None:
                cluster.close()
    ordered = [outcomes[p] for p in paths]
    with open(out / "sessions.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=SESSION_COLUMNS)
        w.writeheader()
        for o in ordered:
            w.writerow({k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in asdict(o).items()})
    for o in ordered:
        if o.status == "failed":
            rep.warn(f"{o.session} failed: {o.reason}")
    return ordered
