"""Feature spaces for clustering, all with one face: ``fit`` then ``transform``.

- ``vae``: the capacity-annealed β-VAE (the default);
- ``ae``: the same network as a plain auto-encoder (β = 0, z = μ);
- ``vae-plain``: a plain VAE (β = 1, no capacity);
- ``pca``: the classical baseline, principal components fitted on each electrode alone.

Inputs are waveforms in µV (n × samples, possibly memory-mapped), the channel index of
each spike and each channel's noise (``spikes.NoiseEstimate``: SD and autocorrelation).
``compare`` swaps one for another and keeps every other step identical.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
import torch
from sklearn.decomposition import PCA

from ..errors import SpikevaeError
from .model import VAEConfig
from ..io.store import groups
from .train import TrainedModel, encode, fit

if TYPE_CHECKING:
    from .spikes import Spikes

FEATURES = ("vae", "pca", "ae", "vae-plain")


def network_config(name: str, cfg: VAEConfig) -> VAEConfig:
    """The β-VAE settings for one of the three workshop implementations."""
    if name == "ae":
        return dataclasses.replace(cfg, variational=False, beta=0.0, c_max=0.0, contrast=0.0)
    if name == "vae-plain":
        return dataclasses.replace(cfg, beta=1.0, c_max=0.0, contrast=0.0)
    return cfg


class NetworkFeatures:
    """Posterior means of a (β-)VAE or auto-encoder trained on all electrodes at once."""

    def __init__(self, name: str, cfg: VAEConfig, device: torch.device, seed: int = 0,
                 model: TrainedModel | None = None):
        self.name = name
        self.cfg = network_config(name, cfg)
        self.device = device
        self.seed = seed
        self.model = model

    @property
    def dim(self) -> int:
        return (self.model.net.cfg if self.model is not None else self.cfg).latent_dim

    @property
    def trained(self) -> bool:
        return self.model is not None

    def fit(self, spikes: Spikes, progress=None) -> "NetworkFeatures":
        self.model = fit(spikes.waveform, spikes.electrode, spikes.noise, self.cfg, self.device, seed=self.seed,
                         progress=progress)
        return self

    def transform(self, spikes: Spikes, out: np.ndarray, progress=None) -> np.ndarray:
        return encode(self.model, spikes.waveform, spikes.electrode, spikes.noise, out, progress=progress)

    @property
    def history(self) -> dict:
        return self.model.history if self.model is not None else {}


class PCAFeatures:
    """``n_components`` principal components fitted per electrode (on at most ``max_fit`` spikes)."""

    name = "pca"

    def __init__(self, n_components: int = 3, seed: int = 0, max_fit: int = 50_000):
        if n_components < 1:
            raise SpikevaeError("--pca-components must be at least 1")
        self.n_components = n_components
        self.seed = seed
        self.max_fit = max_fit
        self.pcas: dict[int, PCA] = {}
        self.history: dict = {}

    @property
    def dim(self) -> int:
        return self.n_components

    @property
    def trained(self) -> bool:
        return bool(self.pcas)

    def fit(self, spikes: Spikes, progress=None) -> "PCAFeatures":
        rng = np.random.default_rng(self.seed)
        waveforms, electrode = spikes.waveform, np.asarray(spikes.electrode)
        for e, idx in groups(electrode).items():
            if len(idx) > self.max_fit:
                idx = np.sort(rng.choice(idx, self.max_fit, replace=False))
            if len(idx) > self.n_components:
                self.pcas[int(e)] = PCA(self.n_components, random_state=self.seed).fit(waveforms[idx])
        if progress is not None:
            progress(1)
        return self

    def transform(self, spikes: Spikes, out: np.ndarray, progress=None, batch: int = 65_536) -> np.ndarray:
        waveforms, electrode = spikes.waveform, spikes.electrode
        for i in range(0, len(waveforms), batch):
            w = np.asarray(waveforms[i:i + batch], dtype=np.float32)
            el = np.asarray(electrode[i:i + batch])
            block = np.zeros((len(w), self.n_components), np.float32)
            for e in np.unique(el):
                if int(e) in self.pcas:
                    block[el == e] = self.pcas[int(e)].transform(w[el == e])
            out[i:i + len(w)] = block
            if progress is not None:
                progress(len(w))
        return out


def make_features(name: str, vae: VAEConfig, device: torch.device, seed: int = 0,
                  pca_components: int = 3, model: TrainedModel | None = None):
    """The feature extractor called ``name``; ``model`` (network features only) skips training."""
    if name not in FEATURES:
        raise SpikevaeError(f"unknown feature space {name!r}; choose one of {', '.join(FEATURES)}")
    if name == "pca":
        if model is not None:
            raise SpikevaeError("--model applies to network features (vae, ae, vae-plain), not pca")
        return PCAFeatures(pca_components, seed)
    return NetworkFeatures(name, vae, device, seed, model)
