"""All settings of a sort in one dataclass, written whole into ``run.json``."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from .clustering import ClusterParams
from .curation import CurationParams
from .detection import DetectionParams, default_threshold
from .model import VAEConfig
from .splitting import SplitParams, default_split_ratio


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
    detection: DetectionParams = field(default_factory=DetectionParams)
    vae: VAEConfig = field(default_factory=VAEConfig)
    cluster: ClusterParams = field(default_factory=ClusterParams)
    split: SplitParams = field(default_factory=SplitParams)
    curation: CurationParams = field(default_factory=CurationParams)

    def __post_init__(self):
        # Band defaults resolved here so that run.json records the numbers.
        if self.detection.threshold is None:
            self.detection = replace(self.detection, threshold=default_threshold(self.band_hz))
        if self.split.min_amplitude_ratio is None:
            self.split = replace(self.split, min_amplitude_ratio=default_split_ratio(self.band_hz))

    def to_dict(self) -> dict:
        return asdict(self)

    def waveform_settings(self) -> dict:
        """What a trained model depends on: how waveforms were filtered, cut and aligned."""
        d = self.detection
        return {"band_hz": [float(x) for x in self.band_hz], "filter_order": self.filter_order,
                "n_samples": d.n_samples, "align_sample": d.align_sample, "polarity": d.polarity}
