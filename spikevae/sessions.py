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
import json
import shutil
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from .config import SortConfig
from .errors import SpikevaeError
from .sorting.features import network_config
from .io.geometry import check_spacing
from .io.output import EXPORTS_RECORD, check_out, load_result, staged_file, write_json
from .sorting.parallel import torch_threads
from .pipeline import sort
from .progress import Reporter
from .io.reader import file_checksum
from .sources import open_source
from .sorting.train import TrainedModel, balanced_sample, cpu_threads, fit_normalised, input_transforms, pick_device
from .sorting.whitening import to_noise_units

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
    pooled, pooled_group = [], []  # waveforms; each one's session and electrode, for the contrastive term
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
            pooled_group.append(len(pooled_group) * 2**16 + el[idx].astype(np.int64))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    x = np.concatenate(pooled) if pooled else np.zeros((0, cfg.detection.n_samples), np.float32)
    if len(x) < 200:
        raise SpikevaeError(f"only {len(x)} waveforms in all these sessions, too few to train on")
    rep.info(f"training one model on {len(x)} waveforms from {len(pooled)} sessions")
    net = network_config(cfg.features, cfg.vae)
    with rep.bar(f"train shared {cfg.features}", net.steps, unit="step") as up, \
            cpu_threads(torch_threads(cfg.threads)):
        model = fit_normalised(x, net, device, cfg.seed, progress=up, group=np.concatenate(pooled_group))
    model.trained_on = cfg.waveform_settings()
    if out is not None:
        with staged_file(out, True, "model") as tmp:
            model.save(tmp)
    return model


# settings that do not change a result: the same sort on any number of processes, and the device
# (recorded in run.json all the same)
UNSCORED_SETTINGS = ("workers", "device", "threads")


def settings_difference(then: dict, now: SortConfig) -> str | None:
    """The first setting a result's ``run.json`` config differs in from ``now`` (as
    "detection.threshold 3.5 → 5.0"), or None when it would sort the same."""
    try:
        old = SortConfig.from_dict(then).to_dict()  # fields a result predates take their defaults
    except (TypeError, KeyError, SpikevaeError) as exc:
        return f"settings of another spikevae version ({exc})"
    new = now.to_dict()
    for key in new:
        if key in UNSCORED_SETTINGS:
            continue
        a, b = old.get(key), new[key]
        for sub in (b if isinstance(b, dict) else {None: b}):
            x, y = (a.get(sub), b[sub]) if sub is not None else (a, b)
            if (list(x) if isinstance(x, tuple) else x) != (list(y) if isinstance(y, tuple) else y):
                return f"{key}{'.' + sub if sub else ''} {x} → {y}"
    return None


def _state(result: Path, session: Path, cfg: SortConfig, model_checksum: str | None) -> str | None:
    """None when ``result`` is a finished sort of this very file (same size and checksum of every
    byte) with these settings and model; "missing" when there is none to reuse; else how it differs."""
    try:
        res = load_result(result)
    except SpikevaeError:
        return "missing"
    info = res.input
    if info.get("bytes") != session.stat().st_size or info.get("checksum") != file_checksum(session):
        return "missing"  # another recording under the same name: its result is replaced as a rerun's
    if res.run.get("model_checksum", model_checksum) != model_checksum:  # older results kept no checksum
        return "another model"
    return settings_difference(res.run["config"], cfg)


def model_difference(model: TrainedModel, cfg: SortConfig) -> str | None:
    """The first network setting the shared ``model`` was trained with that ``cfg`` changes."""
    want = asdict(network_config(cfg.features, cfg.vae))
    have = asdict(model.net.cfg)
    for key, value in want.items():
        if have.get(key) != value:
            return f"vae.{key} {have.get(key)} → {value}"
    return None


def write_exports(result: Path, exports: dict) -> None:
    """``exports``: {"formats": [...], "metadata": {...}, "electrode_map": path or None}, as
    ``exports.export`` takes them; an export already there is kept unless a batch wrote it
    with another map (or, for NWB, other metadata), then it is written again. The DANDI
    warning was given once for the batch."""
    from .formats.exports import DandiWarning, default_target, export

    record_path = result / EXPORTS_RECORD
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    metadata = {k: v for k, v in (exports.get("metadata") or {}).items() if v not in (None, "", ())}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DandiWarning)
        for fmt in exports.get("formats", ()):
            # what this format is written from; as JSON reads it back (tuples as lists)
            wanted = json.loads(json.dumps({"electrode_map": exports.get("electrode_map"),
                                            **({"metadata": metadata} if fmt == "nwb" else {})}))
            there = default_target(result, fmt).exists()
            if not there or record.get(fmt, wanted) != wanted:
                export(result, fmt, overwrite=there, metadata=exports.get("metadata"),
                       electrode_map=exports.get("electrode_map"))
                record[fmt] = wanted
                write_json(record_path, record)


def sort_session(session: str, out: str, config: SortConfig, model: str | None, exports: dict | None = None,
                 reason: str = "") -> dict:
    """One session, for a worker: never raises, reports what happened (``reason``: why it is sorted again)."""
    session_p, out_p = Path(session), Path(out)
    t0 = time.perf_counter()
    try:
        r = sort(session_p, config, out=out_p, model=model, overwrite=True)
        write_exports(r.out, exports or {})
        return asdict(SessionOutcome(session_p.stem, "sorted", load_result(r.out).duration_s, r.n_units,
                                     r.counts["sorted"], time.perf_counter() - t0, reason, session, out))
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


def batch(sessions, out, config: SortConfig | None = None, model=None, *, jobs: int = 1,
          scheduler: str | None = None, reporter: Reporter | None = None,
          exports: dict | None = None, overwrite: bool = False) -> list[SessionOutcome]:
    """Sort every session with one shared model (with ``features="pca"``, each session's own
    PCA); ``exports`` as ``write_exports`` takes it. Results (and the shared model) an earlier
    batch made in ``out`` with other settings are refused, naming the difference, or with
    ``overwrite`` made again. See the module's docstring."""
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
    retrain = False
    if shared and model_path.exists():
        existing = TrainedModel.load(model_path)
        existing.check_compatible(cfg.waveform_settings(), model_path)
        differs = model_difference(existing, cfg) if model is None else None
        if differs and not overwrite:
            raise SpikevaeError(f"{model_path} was trained with other settings ({differs}); pass --overwrite to "
                                "train it again and sort every session with it, or choose another -o")
        retrain = bool(differs)
    elif model is not None:
        raise SpikevaeError(f"--model {model}: no such file")
    if not retrain:
        checksum = file_checksum(model_path) if shared and model_path.exists() else None
        stale = {p: _state(out / f"{p.stem}.spikevae", p, cfg, checksum) for p in paths}
        changed = {p: why for p, why in stale.items() if why not in (None, "missing")}
        if changed and not overwrite:
            p, why = next(iter(changed.items()))
            raise SpikevaeError(f"{len(changed)} session(s) in {out} were sorted with other settings ({p.stem}: "
                                f"{why}); pass --overwrite to sort them again, or choose another -o")
    client = _client(jobs, scheduler)  # an unreachable scheduler fails here, before any work
    if client is not None and cfg.workers is None:
        cfg = replace(cfg, workers=1)  # sessions already run side by side; no pool inside each
    if client is not None and scheduler is None and cfg.threads is None:
        cfg = replace(cfg, threads=torch_threads(None, jobs))  # this machine's cores shared among the jobs
    try:
        try:
            out.mkdir(parents=True, exist_ok=True)
            (out / ".spikevae-write-test").touch()
            (out / ".spikevae-write-test").unlink()
        except OSError as exc:
            raise SpikevaeError(f"{out}: cannot write there ({exc.strerror})") from None
        if not shared:
            model_path = None
        elif model_path.exists() and not retrain:
            rep.info(f"using {model_path}")
        else:
            train_shared(paths, cfg, out=model_path, reporter=rep, work=out)
        model_arg = str(model_path) if model_path is not None else None
        if retrain:  # every result was embedded with the model that was replaced
            checksum = file_checksum(model_path)
            stale = {p: _state(out / f"{p.stem}.spikevae", p, cfg, checksum) for p in paths}
        todo, outcomes = [], {}
        for p in paths:
            result = out / f"{p.stem}.spikevae"
            if stale[p] is None:
                write_exports(result, exports or {})
                res = load_result(result)
                outcomes[p] = SessionOutcome(p.stem, "skipped", res.duration_s, res.run["counts"]["units"],
                                             res.run["counts"]["sorted"], sum(res.run["seconds"].values()),
                                             "already sorted", str(p), str(result))
            else:
                again = "" if stale[p] == "missing" else f"sorted again: {stale[p]}"
                todo.append((str(p), str(result), again))
        rep.info(f"{len(paths)} sessions: {len(outcomes)} already sorted, {len(todo)} to sort")
        with rep.bar("sort sessions", len(todo), unit="session") as up:
            if client is None:
                for session, result, again in todo:
                    outcomes[Path(session)] = SessionOutcome(**sort_session(session, result, cfg, model_arg, exports,
                                                                            again))
                    up(1)
            else:
                from dask.distributed import as_completed

                futures = [client.submit(sort_session, s, r, cfg, model_arg, exports, a, pure=False)
                           for s, r, a in todo]
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
