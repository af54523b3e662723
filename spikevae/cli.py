"""Command line: each command parses options, builds a config, calls one API function."""
from __future__ import annotations

import dataclasses
import signal
import sys
from pathlib import Path

import click

from . import __version__
from .config import SortConfig, default_band, settings
from .errors import SpikevaeError
from .params import TrackParams


class _Command(click.Command):
    """Turns user errors into one line on stderr and a non-zero exit, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SpikevaeError as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            click.echo("interrupted; unfinished results were removed", err=True)
            sys.exit(130)


def _terminate(signum, frame):
    raise KeyboardInterrupt  # a scheduler's kill (SLURM walltime) cleans up like Ctrl-C


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="spikevae")
def main():
    """Spike sorting for Blackrock Utah-array recordings (.ns6) with a capacity-annealed β-VAE."""
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)  # a closed terminal or ssh session cleans up too


_SORT, _TRACK = SortConfig(), TrackParams()  # the defaults live in the dataclasses


def _default(value) -> str:
    """A default as --help shows it: 250 750, 0.5, neg."""
    if isinstance(value, tuple):
        return " ".join(f"{v:g}" for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _setting_option(owner, f) -> click.Option:
    """The click option of one ``params.setting``: its flag, help (filled with its dataclass's
    defaults) and default, taken from the field itself."""
    m = dict(f.metadata)
    kw = dict(m["click"])
    if "choices" in kw:
        kw["type"] = click.Choice(list(kw.pop("choices")))
    shown = m["shown"] if m["shown"] is not None else _default(f.default)
    text = m["help"].format(**{k.name: getattr(owner, k.name) for k in dataclasses.fields(owner)})
    help_ = " ".join(x for x in (text, f"[default: {shown}]." if shown else "") if x)
    if kw.get("is_flag"):
        kw["default"] = None  # unset: the dataclass default stands
    return click.option(m["flag"], f.name, help=help_, **kw)


_SETTINGS = [_setting_option(owner, f) for owner, f in settings(SortConfig()) if f.metadata["on_cli"]] + [
    click.option("-q", "--quiet", is_flag=True, help="No progress output (warnings and errors still shown)."),
]


_EXPORT = [
    click.option("--map", "electrode_map", type=click.Path(dir_okay=False),
                 help="Blackrock map file (.cmp) with the array's electrode positions, for sorting (which "
                      "electrodes one cell can reach) and exports [default: a 10 × 10 grid, 400 µm pitch, ids "
                      "row by row]."),
    click.option("--subject-id", help="NWB: the animal's id (DANDI requires it)."),
    click.option("--species", help="NWB: Latin binomial, e.g. 'Macaca mulatta' (DANDI requires it)."),
    click.option("--sex", type=click.Choice(["M", "F", "U", "O"]), help="NWB: subject sex [default: U]."),
    click.option("--age", help="NWB: ISO 8601 duration, e.g. P7Y (DANDI requires it)."),
    click.option("--experimenter", multiple=True, help="NWB: 'Last, First' (repeatable)."),
    click.option("--institution", help="NWB: institution."),
    click.option("--lab", help="NWB: lab."),
    click.option("--session-description", help="NWB: what the session was [default: names the recording]."),
    click.option("--experiment-description", help="NWB: the experiment."),
    click.option("--keyword", "keywords", multiple=True, help="NWB: keyword (repeatable)."),
]


def export_options(f):
    """Where exports place electrodes, and the NWB metadata a Blackrock file lacks (sort, batch, export)."""
    for option in reversed(_EXPORT):
        f = option(f)
    return f


def export_one(result, fmt: str, out=None, overwrite: bool = False, electrode_map=None, traces: bool = False,
               tracks=None, **metadata) -> Path:
    """``exports.export``, its warnings (what DANDI would reject) as one line each on stderr."""
    import warnings

    from .formats.exports import DandiWarning, export

    with warnings.catch_warnings():
        warnings.simplefilter("always", DandiWarning)
        warnings.showwarning = lambda message, *_, **__: click.echo(f"warning: {message}", err=True)
        return export(result, fmt, out=out, overwrite=overwrite, metadata=metadata, electrode_map=electrode_map,
                      traces=traces, tracks=tracks)


def _check_extras(formats) -> None:
    """A missing extra stops a sort before it starts, not after."""
    from .formats.exports import EXTRAS, require_extra

    for fmt in formats:
        module, extra = EXTRAS[fmt]
        if module is not None:
            require_extra(module, extra, f"--export {fmt}")


def settings_options(f):
    """The options that set how recordings are filtered, detected and embedded (sort, train, batch)."""
    for option in reversed(_SETTINGS):
        f = option(f)
    return f


def build_config(features=None, pca_components=None, electrode_map=None, **options) -> SortConfig:
    """The SortConfig of the options given (``settings_options``' and a command's own); an option
    left out keeps its dataclass default."""
    base = SortConfig()
    section_of = {type(v): k for k, v in vars(base).items() if dataclasses.is_dataclass(v)}
    top = {k: v for k, v in dict(features=features, pca_components=pca_components,
                                 electrode_map=electrode_map).items() if v is not None}
    sections: dict[str, dict] = {}
    for owner, f in settings(base):
        value = options.pop(f.name, None)
        if value is None:
            continue
        value = tuple(value) if isinstance(f.default, tuple) else value
        if owner is base:
            top[f.name] = value
        else:
            sections.setdefault(section_of[type(owner)], {})[f.name] = value
    if options:
        raise TypeError(f"unknown options {sorted(options)}")
    # each section from its own defaults, not base's: those resolved the 250–750 Hz band's (threshold,
    # clustering, ...), which another --band must resolve anew
    return SortConfig(**top, **{k: type(getattr(base, k))(**v) for k, v in sections.items()})


@main.command(cls=_Command)
@click.argument("recording", type=click.Path(dir_okay=False))
@click.option("-o", "--out", type=click.Path(file_okay=False),
              help="Result folder [default: RECORDING.spikevae beside the input].")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing result folder that spikevae wrote; any other path is refused and kept.")
@click.option("--features", type=click.Choice(["vae", "pca", "ae", "vae-plain"]),
              help="Feature space: the β-VAE, per-electrode PCA, a plain auto-encoder (β=0) or a plain VAE "
                   f"(β=1, C=0) [default: {_SORT.features}].")
@click.option("--pca-components", type=int,
              help=f"Components for --features pca [default: {_SORT.pca_components}].")
@click.option("--model", type=click.Path(dir_okay=False), help="Embed with this saved model.pt instead of training.")
@click.option("--export", "exports", multiple=True, type=click.Choice(["nwb", "phy", "nev", "spikeinterface"]),
              help="Also write the result in this format (repeatable); see `spikevae export`.")
@click.option("--workers", type=click.IntRange(min=1),
              help="Processes that cluster and split electrodes [default: every core for 32 electrodes or more, "
                   "else 1]; the result is the same for any number.")
@export_options
@settings_options
def sort(recording, out, overwrite, features, pca_components, model, exports, workers, quiet, electrode_map,
         **settings):
    """Sort RECORDING (a Blackrock .ns6, or a .nev of cut waveforms) into units, one result folder out."""
    from .formats.exports import NWB_FIELDS
    from .pipeline import sort as run_sort
    from .progress import Reporter

    metadata = {k: settings.pop(k) for k in NWB_FIELDS}
    settings["band_hz"] = settings["band_hz"] or default_band([recording])
    cfg = dataclasses.replace(build_config(**settings, features=features, pca_components=pca_components,
                                           electrode_map=electrode_map), workers=workers)
    _check_extras(exports)
    result = run_sort(recording, cfg, out=out, model=model, overwrite=overwrite, reporter=Reporter(quiet=quiet))
    for fmt in exports:
        click.echo(f"{fmt}: {export_one(result.out, fmt, overwrite=True, electrode_map=electrode_map, **metadata)}",
                   err=quiet)
    click.echo(result.out)  # on stdout, --quiet or not, for scripts that go on with the result


@main.command(cls=_Command)
@click.argument("sessions", nargs=-1, required=True)
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help="Where to save the model (.pt).")
@settings_options
def train(sessions, out, quiet, **settings):
    """Train one β-VAE on waveforms pooled from SESSIONS (paths, quoted globs or a .txt list)."""
    from .sessions import train_shared
    from .progress import Reporter

    train_shared(sessions, build_config(**settings), out=out, reporter=Reporter(quiet=quiet))
    click.echo(out)


@main.command(cls=_Command)
@click.argument("sessions", nargs=-1, required=True)
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False),
              help="Results folder: one SESSION.spikevae per session, model.pt and sessions.csv.")
@click.option("--model", type=click.Path(dir_okay=False), help="Shared model to use [default: train one first].")
@click.option("-j", "--jobs", type=int, default=1, show_default=True, help="Sessions sorted at once on this machine.")
@click.option("--scheduler", help="Address of a running Dask scheduler (tcp://host:8786) to sort on its workers.")
@click.option("--features", type=click.Choice(["vae", "pca", "ae", "vae-plain"]),
              help="Feature space; a network (vae, ae, vae-plain) is shared by all sessions, pca is fitted per session "
                   f"[default: {_SORT.features}].")
@click.option("--pca-components", type=int,
              help=f"Components for --features pca [default: {_SORT.pca_components}].")
@click.option("--workers", type=click.IntRange(min=1),
              help="Processes that cluster each session's electrodes [default: as `sort`, or 1 with -j/--scheduler].")
@click.option("--export", "exports", multiple=True, type=click.Choice(["nwb", "phy", "nev", "spikeinterface"]),
              help="Also write each result in this format (repeatable); see `spikevae export`.")
@click.option("--overwrite", is_flag=True,
              help="Sort again the sessions (and train again the shared model) that an earlier batch in OUT made "
                   "with other settings; without it such a batch is refused, naming the difference.")
@click.option("--track", "track_units", is_flag=True,
              help="Then follow the neurons across the sessions into OUT/tracks (see `spikevae track`).")
@export_options
@settings_options
def batch(sessions, out, model, jobs, scheduler, features, pca_components, workers, exports, overwrite, track_units,
          electrode_map, quiet, **settings):
    """Sort many SESSIONS with one shared model; resumable (finished sessions are skipped).

    SESSIONS are paths, quoted globs ('data/*.ns6') or a .txt file listing one path per line.
    Exits non-zero if any session failed; sessions.csv says which and why.
    """
    from .sessions import batch as run_batch, expand_sessions
    from .formats.exports import NWB_FIELDS, dandi_missing
    from .progress import Reporter

    metadata = {k: settings.pop(k) for k in NWB_FIELDS}
    settings["band_hz"] = settings["band_hz"] or default_band(expand_sessions(sessions))
    _check_extras(exports)
    if "nwb" in exports and dandi_missing(metadata):
        click.echo(f"warning: the sessions' NWB files: {dandi_missing(metadata)}", err=True)
    cfg = dataclasses.replace(build_config(**settings, features=features, pca_components=pca_components,
                                           electrode_map=electrode_map), workers=workers)
    outcomes = run_batch(sessions, out, cfg, model=model, jobs=jobs, scheduler=scheduler,
                         reporter=Reporter(quiet=quiet),
                         exports={"formats": list(exports), "metadata": metadata, "electrode_map": electrode_map},
                         overwrite=overwrite)
    failed = [o for o in outcomes if o.status == "failed"]
    counts = {s: sum(o.status == s for o in outcomes) for s in ("sorted", "skipped", "failed")}
    click.echo(f"{counts['sorted']} sorted, {counts['skipped']} already done, {counts['failed']} failed "
               f"→ {Path(out) / 'sessions.csv'}")
    if track_units:
        from .tracking.track import track

        # each session's own PCA has no shared space: matched on waveforms, with the warning in tracks.json
        track([out], Path(out) / "tracks", overwrite=True, waveforms_only=cfg.features == "pca",
              reporter=Reporter(quiet=quiet))
    if failed:
        sys.exit(1)


@main.command(cls=_Command)
@click.argument("results", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("-o", "--out", type=click.Path(file_okay=False),
              help="Folder for tracks.csv, tracks.json and tracks.html [default: BATCH/tracks when one batch folder "
                   "is given; required otherwise].")
@click.option("--overwrite", is_flag=True, help="Replace a tracks folder spikevae wrote; anything else is kept.")
@click.option("--waveforms-only", is_flag=True,
              help="Match sessions sorted with their own model or PCA on waveform, ISI and rate alone (less "
                   "precise than in one shared latent; refused without this flag).")
@click.option("--max-gap", type=click.IntRange(1, 1000), default=_TRACK.max_gap, show_default=True,
              help="Sessions a track waits for its neuron to be sorted again.")
@click.option("--min-probability", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=_TRACK.min_probability, show_default=True,
              help="Least probability that two units are one neuron for them to be linked.")
@click.option("-q", "--quiet", is_flag=True)
def track(results, out, overwrite, waveforms_only, max_gap, min_probability, quiet):
    """Follow the same neurons across sessions of one array.

    RESULTS are result folders of one array's sessions, or the folder `spikevae batch` wrote.
    Units on one electrode are linked session to session by the probability that they are
    one neuron (their place in the shared β-VAE latent, mean waveform, ISI distribution,
    rate); tracks.csv gives each unit its track id and that probability.
    """
    from .progress import Reporter
    from .tracking.track import track as run_track

    if out is None:
        if len(results) != 1 or not (Path(results[0]) / "sessions.csv").is_file():
            raise SpikevaeError("-o/--out is needed unless RESULTS is one folder that spikevae batch wrote")
        out = Path(results[0]) / "tracks"
    run_track(results, out, overwrite=overwrite, waveforms_only=waveforms_only,
              params=dataclasses.replace(_TRACK, max_gap=max_gap, min_probability=min_probability),
              reporter=Reporter(quiet=quiet))


@main.command(cls=_Command)
@click.argument("out", type=click.Path())
@click.option("--electrodes", type=click.IntRange(1, 65535), default=16, show_default=True)
@click.option("--duration", type=click.FloatRange(0, min_open=True), default=20.0, show_default=True,
              help="Recorded seconds (pauses excluded).")
@click.option("--segments", type=click.IntRange(min=1), default=1, show_default=True,
              help="Split by pauses into this many segments.")
@click.option("--spec", type=click.Choice(["2.2", "2.3", "3.0", "3.0-ptp"]), default="2.3", show_default=True)
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True)
@click.option("--hard", is_flag=True, help="Up to 4 units per electrode, bursts, look-alikes, more artifacts and hash.")
@click.option("--stress", is_flag=True,
              help="Neighbours of similar amplitude and other shape, slow units beside fast large ones, bursts, "
                   "dense hash.")
@click.option("--subsample-timing", is_flag=True,
              help="Draw each spike at its exact time between two samples, as a real recording samples it.")
@click.option("--nev", is_flag=True,
              help="Also write OUT.nev: the spikes a Blackrock system would cut online (causal 250 Hz-5 kHz, "
                   "-4.5 x noise, 48 samples from 10 before the crossing), to test sorting .nev files.")
@click.option("--family", type=click.Choice(["spikevae", "spikeinterface"]), default="spikevae", show_default=True,
              help="Simulator: the package's, or one built from SpikeInterface's generators (needs "
                   "spikevae[spikeinterface]; writes spec 2.3, spikes at sub-sample times).")
@click.option("--sessions", type=click.IntRange(1, 1000), default=1, show_default=True,
              help="More than 1: a chronic series of the same neurons (drifting amplitude, shape and rate; some "
                   "vanish, some appear) written into the folder OUT as day00.ns6 ... with series.json, the truth "
                   "of which unit is which neuron.")
@click.option("-q", "--quiet", is_flag=True)
def simulate(out, electrodes, duration, segments, spec, seed, hard, stress, subsample_timing, nev, family, sessions,
             quiet):
    """Write a simulated Utah-array recording OUT (.ns6) and its ground truth OUT.gt.npz, or with
    --sessions a series of them into the folder OUT."""
    from .progress import Reporter

    if hard and stress:
        raise SpikevaeError("--hard and --stress are two settings; choose one")
    setting = "hard" if hard else "stress" if stress else "standard"
    if family == "spikeinterface":
        if spec != "2.3" or subsample_timing:
            raise SpikevaeError("--family spikeinterface writes spec 2.3 with spikes at sub-sample times; "
                                "leave out --spec and --subsample-timing")
        from .simulators.simulate_si import SETTINGS, SIUtahConfig
        cfg = SIUtahConfig(n_electrodes=electrodes, duration_s=duration, n_segments=segments, seed=seed,
                           **SETTINGS[setting])
    else:
        from .simulators.simulation import SETTINGS, SimulationConfig
        cfg = SimulationConfig(n_electrodes=electrodes, duration_s=duration, n_segments=segments, spec=spec,
                               seed=seed, subsample_timing=subsample_timing, **SETTINGS[setting])
    rep = Reporter(quiet=quiet)
    if sessions > 1:
        from .simulators.chronic import SeriesConfig, simulate_series

        if nev:
            raise SpikevaeError("--nev applies to one recording, not to --sessions")
        with rep.bar("simulate sessions", sessions, unit="session") as up:
            paths = simulate_series(out, family, cfg, SeriesConfig(n_sessions=sessions, seed=seed), progress=up)
        rep.info(f"{len(paths)} sessions → {out} (series.json names each session's neurons)")
        return
    if not out.endswith(".ns6"):
        raise SpikevaeError(f"{out}: the simulated recording must be named *.ns6")
    if not Path(out).resolve().parent.is_dir():
        raise SpikevaeError(f"{Path(out).parent}: no such folder for the simulated recording")
    if family == "spikeinterface":
        from .simulators.simulate_si import FS, simulate_si as run_simulation
    else:
        from .simulators.simulation import FS, simulate as run_simulation
    with rep.bar("simulate", duration, unit="s", scale=1 / FS) as up:
        gt = run_simulation(out, cfg, progress=up)
    rep.info(f"{len(gt.unit_electrode)} units, {len(gt.timestamp)} spikes → {out}")
    if nev:
        from .simulators.simulation import cut_online

        nev_path = out[:-len(".ns6")] + ".nev"
        rep.info(f"{cut_online(out, nev_path)} spikes cut online → {nev_path}")


@main.command(cls=_Command)
@click.argument("target", type=click.Path())
@click.option("--baseline", "baselines", multiple=True, type=click.Choice(["pca", "ae", "vae-plain", "vae"]),
              default=("pca",), show_default=True, help="Feature space to compare against; repeat for several.")
@click.option("--ground-truth", type=click.Path(dir_okay=False),
              help="Ground truth (.gt.npz) [default: the one beside a simulated recording, if any].")
@click.option("-o", "--out", type=click.Path(file_okay=False), help="Report folder [default: RESULT/compare].")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing report folder that spikevae wrote; any other path is refused and kept.")
@click.option("--sort-seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Embed and cluster each space with this many seeds, so that the verdict says whether the "
                   "difference exceeds their spread.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout and nothing else.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
def compare(target, baselines, ground_truth, out, overwrite, sort_seeds, as_json, quiet):
    """Compare feature spaces on identical detections and clustering.

    TARGET is a result folder of `spikevae sort` (its detections are reused) or a
    recording (.ns6), which is sorted first with the defaults.
    """
    import json

    from .comparison import compare as run_compare
    from .comparison import table_text
    from .progress import Reporter

    report = run_compare(target, baselines=baselines, ground_truth=ground_truth, out=out, overwrite=overwrite,
                         reporter=Reporter(quiet=quiet or as_json), sort_seeds=sort_seeds)
    if as_json:
        click.echo(json.dumps(report, default=float))
    else:
        click.echo(table_text(report))
        click.echo(f"report: {report['out']}/compare.html")


@main.command(cls=_Command)
@click.argument("result", type=click.Path(file_okay=False))
@click.option("--to", "fmt", required=True, type=click.Choice(["nwb", "phy", "nev", "spikeinterface"]),
              help="nwb (pynwb), phy (phylib's TemplateModel), nev (Blackrock spike file), "
                   "spikeinterface (a saved BaseSorting).")
@click.option("-o", "--out", type=click.Path(), help="Where to write [default: inside RESULT].")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing export that spikevae wrote; any other path is refused and kept.")
@click.option("--traces", is_flag=True,
              help="phy: also write the recording band-passed as sorted (int16, as large as the .ns6), so that "
                   "phy shows traces and every spike's waveform; needs the sorted recording where it was.")
@click.option("--tracks", type=click.Path(dir_okay=False, exists=True),
              help="A tracks.csv of `spikevae track` over sessions that include RESULT: each unit's track id "
                   "becomes a unit column (nwb, spikeinterface; phy's cluster_track.tsv).")
@export_options
def export(result, fmt, out, overwrite, traces, tracks, electrode_map, **metadata):
    """Write RESULT (a `spikevae sort` folder) in a format other tools open."""
    click.echo(export_one(result, fmt, out=out, overwrite=overwrite, electrode_map=electrode_map, traces=traces,
                          tracks=tracks, **metadata))
