"""All settings of a sort in one dataclass, written whole into ``run.json``."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path

from .errors import SpikevaeError
from .params import (NEV_BAND_HZ, ClusterParams, CurationParams, DetectionParams, QualityParams, SplitParams,
                     VAEConfig, at_least, default_burst_ratio, default_clustering, default_contrast,
                     default_join_valley, default_mixed_ratio, default_refractory_window, default_split_ratio,
                     default_steps, default_threshold, setting)

# settings added since results were first written, with the value such results ran with (a
# result with no split section ran without the split step)
FORMER_SETTINGS = {"split": {"min_alike_spikes": None, "max_shift": 0, "shift_step": 1.0, "join_valley": 2.0},
                   "curation": {"followers_only": False, "min_excess_share": 0.0, "max_refractory_share": None,
                                "max_recovered_share": None, "echoes_after_join": False},
                   "cluster": {"method": "mixture", "join_valley": 2.0},
                   "vae": {"contrast": 0.0, "contrast_shift": 0}}


@dataclass
class SortConfig:
    channels: str | None = setting(None, "--channels", "Electrodes to sort, e.g. 1-32,40.", shown="all")
    band_hz: tuple[float, float] = setting((250.0, 750.0), "--band", "Band-pass in Hz (zero-phase Butterworth).",
                                           type=float, nargs=2, metavar="LO HI",
                                           shown="250 750; a .nev, whose cut waveforms are not filtered again: "
                                                 "250 5000, Central's online filter, whose defaults it then takes")
    filter_order: int = setting(4, "--filter-order", "Butterworth order (per pass).", type=int)
    gap_tolerance_ms: float = setting(  # PTP files: gaps up to this are not pauses
        1.0, "--gap-tolerance-ms", check=at_least(0), want=">= 0", on_cli=False)
    features: str = "vae"                  # vae, pca, ae or vae-plain (each command's own --features)
    pca_components: int = setting(3, "--pca-components", check=lambda v, c: 1 <= v <= c.detection.n_samples,
                                  want=lambda c: f"within 1..{c.detection.n_samples} (the waveform's samples)",
                                  on_cli=False)
    device: str = setting("auto", "--device", choices=("auto", "cpu", "cuda"))
    seed: int = setting(0, "--seed", "Makes CPU runs reproducible bit for bit.", type=int,
                        check=lambda v, _: 0 <= v < 2**32, want="within 0..2^32-1")
    workers: int | None = setting(  # processes for clustering and split; None = parallel.pool_size's choice
        None, "--workers", check=at_least(1), want=">= 1", on_cli=False)
    threads: int | None = setting(  # PyTorch CPU threads; None = parallel.torch_threads's choice
        None, "--threads", "PyTorch threads for training and encoding on the CPU; on a machine others are using, 1 "
        "is faster (benchmarks/RESULTS.md, \"Training threads\"). The exact bits of a sort depend on it.", type=int,
        check=at_least(1), want=">= 1", shown="the cores this process may use, divided among batch jobs")
    electrode_map: str | None = None       # Blackrock .cmp placing the electrodes; None = the Utah grid (--map)
    pitch_um: float | None = setting(      # the map's site spacing; None = as the map states, else 400
        None, "--pitch-um", "Spacing in µm of adjacent sites of the --map file.", type=float,
        check=lambda v, _: v is None or v > 0, want="> 0 µm", shown="as the map states, else 400, a Utah array's")
    allow_dense: bool = setting(           # sort electrodes closer than a cell's reach, each alone
        False, "--allow-dense", "Sort electrodes closer than one cell's reach each alone, with a warning, instead "
        "of refusing (one neuron may then appear on several channels).", is_flag=True, shown="")
    detection: DetectionParams = field(default_factory=DetectionParams)
    vae: VAEConfig = field(default_factory=VAEConfig)
    cluster: ClusterParams = field(default_factory=ClusterParams)
    split: SplitParams = field(default_factory=SplitParams)
    curation: CurationParams = field(default_factory=CurationParams)
    quality: QualityParams = field(default_factory=QualityParams)

    def __post_init__(self):
        # Band defaults resolved here so that run.json records the numbers.
        if self.detection.threshold is None:
            self.detection = replace(self.detection, threshold=default_threshold(self.band_hz))
        if self.vae.contrast is None:
            self.vae = replace(self.vae, contrast=default_contrast(self.band_hz))
        if self.vae.steps is None:
            self.vae = replace(self.vae, steps=default_steps(self.features, self.vae.contrast))
        if self.cluster.method is None:
            self.cluster = replace(self.cluster, method=default_clustering(self.band_hz, self.features, self.vae.contrast))
        if self.split.min_amplitude_ratio is None:
            self.split = replace(self.split, min_amplitude_ratio=default_split_ratio(self.band_hz))
        if self.split.join_valley is None:
            self.split = replace(self.split, join_valley=default_join_valley(self.band_hz))
        if self.curation.min_amplitude_ratio is None:
            self.curation = replace(self.curation, min_amplitude_ratio=default_burst_ratio(self.band_hz))
        if self.curation.refractory_ms is None:
            self.curation = replace(self.curation, refractory_ms=default_refractory_window(self.band_hz))
        if self.quality.noise_mixed_ratio is None:
            self.quality = replace(self.quality, noise_mixed_ratio=default_mixed_ratio(self.band_hz))
        self._check()

    def _check(self) -> None:
        """Refuse settings that cannot give a meaningful sort, before any work, naming the option
        (each setting's own ``check``: see ``params.setting``)."""
        d, v = self.detection, self.vae
        for owner, f in settings(self):
            check, value, want = f.metadata["check"], getattr(owner, f.name), f.metadata["want"]
            if check is not None and not check(value, owner):
                raise SpikevaeError(f"{f.metadata['flag']} {value}: must be {want(owner) if callable(want) else want}")
        if v.n_samples != d.n_samples:
            raise SpikevaeError(f"the network takes {v.n_samples}-sample waveforms, detection cuts {d.n_samples}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, *, result: bool = True) -> "SortConfig":
        """The inverse of ``to_dict``. Settings missing from ``d`` take their defaults, except in a
        result's run.json "config" (``result``), where settings added since take what the result
        ran with: no split step before there was one, no split of pieces of near-equal trough
        before ``min_alike_spikes``, no realignment before the split before ``max_shift`` and
        whole samples only before ``shift_step``, no units joined after it before
        ``split.join_valley``, a burst's whole cluster joined before ``followers_only``, its
        followers however many by chance before ``min_excess_share`` and never the whole cluster
        beside them before ``max_refractory_share``, mixtures on a latent without the contrastive
        term before ``method`` and no join by valley before ``cluster.join_valley``."""
        c = dict(d)
        c["band_hz"] = tuple(c["band_hz"])
        if result:
            for key, before in FORMER_SETTINGS.items():
                if key in c:
                    c[key] = {**before, **c[key]}
            c.setdefault("split", {"enabled": False})
        sections = {"detection": DetectionParams, "vae": VAEConfig, "cluster": ClusterParams,
                    "split": SplitParams, "curation": CurationParams, "quality": QualityParams}
        for key, kind in sections.items():
            c[key] = kind(**c.get(key, {}))
        return cls(**c)

    def waveform_settings(self) -> dict:
        """What a trained model depends on: how waveforms were filtered, cut and aligned."""
        d = self.detection
        return {"band_hz": [float(x) for x in self.band_hz], "filter_order": self.filter_order,
                "n_samples": d.n_samples, "align_sample": d.align_sample, "polarity": d.polarity}


def is_nev(path) -> bool:
    return isinstance(path, (str, Path)) and str(path).lower().endswith(".nev")


def default_band(paths) -> tuple[float, float]:
    """The band whose defaults a sort of ``paths`` takes when none is given: for .nev files only,
    that of the online filter that cut their waveforms (``NEV_BAND_HZ``), since the clustering and
    the contrastive term chosen for 250–750 Hz lose units on them (RESULTS.md, "Sorting a `.nev`")."""
    return NEV_BAND_HZ if paths and all(map(is_nev, paths)) else SortConfig().band_hz


def default_config(path=None) -> SortConfig:
    """The default settings for sorting ``path`` (``default_band``)."""
    return SortConfig(band_hz=default_band([path]))


def settings(cfg: SortConfig):
    """(owner, field) of every ``params.setting`` of ``cfg`` and of its sections, in their order:
    the owner is ``cfg`` itself or the section that holds the field."""
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if "flag" in f.metadata:
            yield cfg, f
        elif is_dataclass(value):
            yield from ((value, g) for g in fields(value) if "flag" in g.metadata)
