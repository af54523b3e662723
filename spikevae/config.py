"""All settings of a sort in one dataclass, written whole into ``run.json``."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from .errors import SpikevaeError
from .params import (ClusterParams, CurationParams, DetectionParams, QualityParams, SplitParams, VAEConfig,
                     default_mixed_ratio, default_split_ratio, default_threshold)

MIN_TRAIN_SPIKES = 200  # fewer waveforms than this cannot train the β-VAE
MAX_STEPS = 1_000_000   # ~10 h on 2 cores; more is a typo, not a plan
MAX_TRAIN = 50_000_000  # training waveforms held in memory: ~10 GB


@dataclass
class SortConfig:
    channels: str | None = None            # e.g. "1-32,40"; None = every electrode
    band_hz: tuple[float, float] = (250.0, 750.0)
    filter_order: int = 4
    gap_tolerance_ms: float = 1.0          # PTP files: gaps up to this are not pauses
    features: str = "vae"                  # vae, pca, ae or vae-plain
    pca_components: int = 3                # for features="pca"
    device: str = "auto"                   # auto, cpu or cuda
    seed: int = 0
    workers: int | None = None             # processes for clustering and split; None = parallel.pool_size's choice
    threads: int | None = None             # PyTorch CPU threads; None = parallel.torch_threads's choice
    electrode_map: str | None = None       # Blackrock .cmp placing the electrodes; None = the Utah grid
    pitch_um: float | None = None          # the map's site spacing; None = as the map states, else 400
    allow_dense: bool = False              # sort electrodes closer than a cell's reach, each alone
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
        if self.split.min_amplitude_ratio is None:
            self.split = replace(self.split, min_amplitude_ratio=default_split_ratio(self.band_hz))
        if self.quality.noise_mixed_ratio is None:
            self.quality = replace(self.quality, noise_mixed_ratio=default_mixed_ratio(self.band_hz))
        self._check()

    def _check(self) -> None:
        """Refuse settings that cannot give a meaningful sort, before any work, naming the option."""
        d, v = self.detection, self.vae
        rules = [
            ("--threshold", d.threshold, d.threshold > 0, "> 0 (× noise SD)"),
            ("--dead-time-ms", d.dead_time_ms, d.dead_time_ms >= 0, ">= 0"),
            ("--align-sample", d.align_sample, 0 <= d.align_sample < d.n_samples, f"within 0..{d.n_samples - 1}"),
            ("--artifact-fraction", d.artifact_fraction, 0 < d.artifact_fraction <= 1, "in (0, 1]"),
            ("--max-amplitude", d.max_amplitude_uv, d.max_amplitude_uv > 0, "> 0 µV"),
            ("--latent-dim", v.latent_dim, 1 <= v.latent_dim <= v.n_samples, f"within 1..{v.n_samples}"),
            ("--beta", v.beta, v.beta >= 0, ">= 0"),
            ("--c-max", v.c_max, v.c_max >= 0, ">= 0 nats"),
            ("--steps", v.steps, 1 <= v.steps <= MAX_STEPS, f"within 1..{MAX_STEPS}"),
            ("--max-train", v.max_train, MIN_TRAIN_SPIKES <= v.max_train <= MAX_TRAIN,
             f"within {MIN_TRAIN_SPIKES}..{MAX_TRAIN}"),
            ("--seed", self.seed, 0 <= self.seed < 2**32, "within 0..2^32-1"),
            ("--pca-components", self.pca_components, 1 <= self.pca_components <= d.n_samples,
             f"within 1..{d.n_samples} (the waveform's samples)"),
            ("--workers", self.workers, self.workers is None or self.workers >= 1, ">= 1"),
            ("--threads", self.threads, self.threads is None or self.threads >= 1, ">= 1"),
            ("--gap-tolerance-ms", self.gap_tolerance_ms, self.gap_tolerance_ms >= 0, ">= 0"),
            ("--pitch-um", self.pitch_um, self.pitch_um is None or self.pitch_um > 0, "> 0 µm"),
        ]
        for option, value, ok, want in rules:
            if not ok:
                raise SpikevaeError(f"{option} {value}: must be {want}")
        if v.n_samples != d.n_samples:
            raise SpikevaeError(f"the network takes {v.n_samples}-sample waveforms, detection cuts {d.n_samples}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SortConfig":
        """The inverse of ``to_dict`` (a run.json's "config"); sections a result predates take
        their defaults, except the split step, which such results ran without."""
        c = dict(d)
        c["band_hz"] = tuple(c["band_hz"])
        sections = {"detection": DetectionParams, "vae": VAEConfig, "cluster": ClusterParams,
                    "curation": CurationParams, "quality": QualityParams}
        for key, kind in sections.items():
            c[key] = kind(**c.get(key, {}))
        c["split"] = SplitParams(**c["split"]) if "split" in c else SplitParams(enabled=False)
        return cls(**c)

    def waveform_settings(self) -> dict:
        """What a trained model depends on: how waveforms were filtered, cut and aligned."""
        d = self.detection
        return {"band_hz": [float(x) for x in self.band_hz], "filter_order": self.filter_order,
                "n_samples": d.n_samples, "align_sample": d.align_sample, "polarity": d.polarity}
