"""Train the β-VAE on detected waveforms, encode them, save and load the model.

Waveforms enter the network in units of their electrode's noise, whitened by its measured
autocorrelation (``whitening.py``; so one model serves every electrode and every session,
and its squared-error loss is the noise's likelihood), then z-scored with one global mean
and SD kept in the model file. Training draws at most ``max_train`` waveforms, balanced
across electrodes.
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from .. import __version__
from ..errors import SpikevaeError
from .model import BetaVAE, VAEConfig
from .spikes import NoiseEstimate
from ..io.store import groups
from .whitening import noise_transforms, to_noise_units


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` takes CUDA when present; ``cuda`` without a GPU is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SpikevaeError("--device cuda: no CUDA GPU is available to PyTorch on this machine")
    if name not in ("cpu", "cuda"):
        raise SpikevaeError(f"--device {name}: choose auto, cpu or cuda")
    return torch.device(name)


@dataclass
class TrainedModel:
    """The network with the normalisation it was trained under, and its training curves."""

    net: BetaVAE
    mean: float
    sd: float
    history: dict = field(default_factory=dict)
    trained_on: dict = field(default_factory=dict)  # the waveform settings the model expects

    def check_compatible(self, expected: dict, name) -> None:
        """A model embeds only waveforms cut the way it was trained on."""
        for key, want in expected.items():
            have = self.trained_on.get(key)
            if have is not None and have != want:
                raise SpikevaeError(f"{name}: trained with {key} = {have}, this run uses {want}")

    def prepare(self, waveforms: np.ndarray, electrode: np.ndarray, transforms: np.ndarray) -> np.ndarray:
        """µV waveforms (n, samples) of these electrodes (``input_transforms``) → network input."""
        return (to_noise_units(waveforms, electrode, transforms) - self.mean) / self.sd

    def save(self, path) -> None:
        torch.save({"format": "spikevae-vae-1", "spikevae_version": __version__,
                    "config": asdict(self.net.cfg), "state_dict": self.net.state_dict(),
                    "mean": self.mean, "sd": self.sd, "history": self.history, "trained_on": self.trained_on}, path)

    @classmethod
    def load(cls, path, device: torch.device | str = "cpu") -> "TrainedModel":
        try:
            ckpt = torch.load(path, map_location=device, weights_only=True)
            # models saved before whitening took SD units
            net = BetaVAE(VAEConfig(**{"whiten": False, **ckpt["config"]}))
            net.load_state_dict(ckpt["state_dict"])
        except FileNotFoundError:
            raise SpikevaeError(f"--model {path}: no such file") from None
        except Exception as exc:
            raise SpikevaeError(f"--model {path}: not a spikevae model ({type(exc).__name__})") from exc
        return cls(net=net.to(device).eval(), mean=ckpt["mean"], sd=ckpt["sd"], history=ckpt.get("history", {}),
                   trained_on=ckpt.get("trained_on", {}))


@contextmanager
def cpu_threads(n: int):
    """PyTorch's intra-op threads set to ``n`` for a block, then restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def input_transforms(noise: NoiseEstimate, cfg: VAEConfig) -> np.ndarray:
    """Each electrode's matrix from µV to the noise units a network of ``cfg`` takes."""
    return noise_transforms(noise.noise_uv, noise.autocorr, cfg.n_samples, cfg.whiten)


def balanced_sample(electrode: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of at most ``cap`` spikes, as evenly spread over electrodes as they allow:
    each electrode gives min(its spikes, q) with the largest quota q that fits in ``cap``."""
    by_electrode = list(groups(electrode).values())
    sizes = np.array([len(g) for g in by_electrode], dtype=np.int64)
    lo, hi = 0, int(sizes.max(initial=0))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if np.minimum(sizes, mid).sum() <= cap else (lo, mid - 1)
    picks = [rng.choice(g, size=min(len(g), lo), replace=False) for g in by_electrode]
    return np.sort(np.concatenate(picks + [np.zeros(0, np.int64)]))


def contrast_groups(group: np.ndarray, cfg: VAEConfig) -> tuple[list[torch.Tensor], int]:
    """Row indices of each group (electrode) with enough rows for the contrastive batch, and how
    many of each one step takes; none when the term is off or no group has two rows."""
    members = list(groups(group).values()) if cfg.contrast else []
    size = min(cfg.contrast_spikes, max((len(m) for m in members), default=0))
    return ([torch.as_tensor(m) for m in members if len(m) >= size], size) if size >= 2 else ([], 0)


def train(x: np.ndarray, cfg: VAEConfig, device: torch.device, seed: int = 0, progress=None,
          group: np.ndarray | None = None, noise_sd: float = 1.0) -> TrainedModel:
    """Train on network-ready waveforms ``x`` (n, samples), already normalised, whose noise has
    SD ``noise_sd``; ``group`` (n,) names each row's electrode for the contrastive term. See ``fit``."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    n_val = int(len(x) * cfg.val_fraction) if len(x) >= 200 else 0
    perm = torch.randperm(len(x), generator=gen)
    data = torch.as_tensor(x, dtype=torch.float32)
    val, trn = data[perm[:n_val]].to(device), data[perm[n_val:]].to(device)
    by_group, per_group = contrast_groups(np.asarray(group)[perm[n_val:].numpy()], cfg) if group is not None \
        else ([], 0)
    net = BetaVAE(cfg).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    history = {k: [] for k in ("step", "loss", "recon", "kl", "contrast", "capacity", "val_recon", "val_kl", "seconds")}
    log_every = max(1, cfg.steps // 20)  # about twenty points on the training curves
    t0 = time.perf_counter()
    order, pos = torch.randperm(len(trn), generator=gen).to(device), 0
    sums, count = torch.zeros(4, device=device), 0
    for step in range(cfg.steps):
        if pos + cfg.batch_size > len(trn) and pos > 0:  # next pass over the data
            order, pos = torch.randperm(len(trn), generator=gen).to(device), 0
        xb = trn[order[pos:pos + cfg.batch_size]]
        pos += cfg.batch_size
        c = cfg.capacity(step)
        net.train()
        loss, recon, kl = net.loss(xb, c)
        nce = torch.zeros((), device=device)
        if by_group:
            picked = torch.randperm(len(by_group), generator=gen)[:cfg.contrast_electrodes]
            rows = torch.stack([by_group[k][torch.randperm(len(by_group[k]), generator=gen)[:per_group]]
                                for k in picked])
            nce = net.contrastive(trn[rows.to(device)], cfg.contrast_noise * noise_sd, cfg.contrast_shift)
            loss = loss + cfg.contrast * nce
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sums += torch.stack([loss.detach(), recon.detach(), kl.detach(), nce.detach()]) * len(xb)
        count += len(xb)
        if (step + 1) % log_every and step + 1 < cfg.steps:
            continue
        loss, recon, kl, nce = (sums / count).tolist()
        sums, count = torch.zeros(4, device=device), 0
        if not math.isfinite(loss):
            raise SpikevaeError(f"training diverged at step {step + 1} (loss {loss}); lower the learning rate")
        net.eval()
        with torch.no_grad():
            _, v_recon, v_kl = net.loss(val, c) if n_val else (0, torch.tensor(0.0), torch.tensor(0.0))
        for k, v in zip(history, (step + 1, loss, recon, kl, nce, c, float(v_recon), float(v_kl),
                                  time.perf_counter() - t0)):
            history[k].append(v)
        if progress is not None:
            progress(step + 1 - (history["step"][-2] if len(history["step"]) > 1 else 0),
                     loss=loss, recon=recon, kl=kl, C=c)
    return TrainedModel(net=net.eval(), mean=0.0, sd=1.0, history=history)


def fit(waveforms: np.ndarray, electrode: np.ndarray, noise: NoiseEstimate, cfg: VAEConfig,
        device: torch.device, *, seed: int = 0, progress=None) -> TrainedModel:
    """Draw a balanced training set from (possibly memory-mapped) spikes and train on it."""
    rng = np.random.default_rng(seed)
    electrode = np.asarray(electrode)
    idx = balanced_sample(electrode, cfg.max_train, rng)
    x = to_noise_units(waveforms[idx], electrode[idx], input_transforms(noise, cfg))
    return fit_normalised(x, cfg, device, seed, progress, group=electrode[idx])


def fit_normalised(x: np.ndarray, cfg: VAEConfig, device: torch.device, seed: int = 0, progress=None,
                   group: np.ndarray | None = None) -> TrainedModel:
    """Train on waveforms already in noise units (``whitening.to_noise_units``; pooled from
    several sessions, say), ``group`` naming each one's electrode (and session)."""
    mean, sd = float(x.mean()), float(x.std()) or 1.0
    model = train((x - mean) / sd, cfg, device, seed, progress, group=group, noise_sd=1.0 / sd)
    model.mean, model.sd = mean, sd
    return model


@torch.no_grad()
def encode(model: TrainedModel, waveforms: np.ndarray, electrode: np.ndarray, noise: NoiseEstimate,
           out: np.ndarray, *, batch: int = 4096, progress=None) -> np.ndarray:
    """Posterior means of every waveform, written batch by batch into ``out`` (n, latent)."""
    device = next(model.net.parameters()).device
    model.net.eval()
    transforms = input_transforms(noise, model.net.cfg)
    for i in range(0, len(waveforms), batch):
        w = np.asarray(waveforms[i:i + batch], dtype=np.float32)
        x = model.prepare(w, electrode[i:i + batch], transforms).astype(np.float32)
        mu, _ = model.net.encoder(torch.as_tensor(x, device=device))
        out[i:i + len(w)] = mu.cpu().numpy()
        if progress is not None:
            progress(len(w))
    return out

