"""The 1D-convolutional β-VAE of the Sachs-lab workshop (2019), in PyTorch.

Encoder: three conv(25)+ELU+max-pool(2) stages, 48 → 24 → 12 → 6 samples, then dense 50 and
a dense layer giving the posterior mean and log-variance. Decoder mirrors it with
up-sampling. Loss = reconstruction (sum of squares per waveform) + β·|KL − C|, with the
capacity C raised linearly from 0 to ``c_max`` (Burgess et al. 2018). β = 0 is a plain
auto-encoder (z = μ), β = 1 with C = 0 a plain VAE. Training adds ``contrast`` × a contrastive
term on the encoder (``BetaVAE.contrastive``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..params import VAEConfig


class Encoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        c = cfg.channels
        self.conv = nn.Sequential(
            nn.Conv1d(1, c, 5, padding=2), nn.ELU(), nn.MaxPool1d(2),
            nn.Conv1d(c, c, 3, padding=1), nn.ELU(), nn.MaxPool1d(2),
            nn.Conv1d(c, c, 3, padding=1), nn.ELU(), nn.MaxPool1d(2),
        )
        self.dense = nn.Sequential(nn.Flatten(), nn.Linear(c * cfg.n_samples // 8, cfg.hidden), nn.ELU(),
                                   nn.Linear(cfg.hidden, 2 * cfg.latent_dim))

    def forward(self, x):  # x: (batch, n_samples)
        mu, logvar = self.dense(self.conv(x[:, None, :])).chunk(2, dim=1)
        return mu, logvar


class Decoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        c, self.c, self.t = cfg.channels, cfg.channels, cfg.n_samples // 8
        self.dense = nn.Sequential(nn.Linear(cfg.latent_dim, cfg.hidden), nn.ELU(),
                                   nn.Linear(cfg.hidden, c * self.t), nn.ELU())
        self.conv = nn.Sequential(
            nn.Upsample(scale_factor=2), nn.Conv1d(c, c, 3, padding=1), nn.ELU(),
            nn.Upsample(scale_factor=2), nn.Conv1d(c, c, 3, padding=1), nn.ELU(),
            nn.Upsample(scale_factor=2), nn.Conv1d(c, c, 5, padding=2), nn.ELU(),
            nn.Conv1d(c, 1, 1),
        )

    def forward(self, z):
        return self.conv(self.dense(z).view(-1, self.c, self.t))[:, 0, :]


class BetaVAE(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        if cfg.n_samples % 8:
            raise ValueError("n_samples must be divisible by 8")
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)

    def forward(self, x):
        mu, logvar = self.encoder(x)
        if self.cfg.variational and self.training:
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        else:
            z = mu
        return self.decoder(z), mu, logvar

    def loss(self, x, capacity: float):
        """(loss, reconstruction, KL), each the mean over the batch of per-waveform sums."""
        x_hat, mu, logvar = self(x)
        recon = ((x - x_hat) ** 2).sum(dim=1).mean()
        kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(dim=1)).mean()
        if not self.cfg.variational:
            return recon, recon, kl
        return recon + self.cfg.beta * (kl - capacity).abs(), recon, kl

    def contrastive(self, x, noise_sd: float, shift: int = 0):
        """InfoNCE of two views of each waveform in ``x`` (groups, spikes, samples; a group is one
        electrode's spikes), each moved by up to ``shift`` samples either way and given noise of SD
        ``noise_sd``: each view's posterior mean must pick its twin's out of its electrode's other
        spikes (Oord et al. 2018, as CEED, Vishnubhotla et al. 2023, for spikes). The reconstruction
        alone lets a capacity-limited code spend its nats on what varies across the array, amplitude
        mostly; this rewards what tells one electrode's spikes apart beyond the noise and the
        alignment's error (benchmarks/RESULTS.md, "Contrastive term")."""
        g, s, n = x.shape
        views = x.reshape(1, g * s, n).expand(2, g * s, n)
        if shift:
            moved = torch.arange(n, device=x.device) - torch.randint(-shift, shift + 1, (2, g * s, 1), device=x.device)
            views = torch.gather(views, 2, moved.clamp(0, n - 1))
        views = views + noise_sd * torch.randn(2, g * s, n, device=x.device)
        mu, _ = self.encoder(views.reshape(2 * g * s, n))
        a, b = mu.reshape(2, g, s, -1)
        logits = -torch.cdist(a, b) ** 2
        twin = torch.arange(s, device=x.device).repeat(g)
        return 0.5 * (F.cross_entropy(logits.reshape(g * s, s), twin)
                      + F.cross_entropy(logits.transpose(1, 2).reshape(g * s, s), twin))
