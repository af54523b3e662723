import dataclasses

import numpy as np
import pytest
import torch
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.model_selection import cross_val_score

from spikevae.sorting.spikes import NoiseEstimate
from spikevae.sorting.model import BetaVAE, VAEConfig
from spikevae.sorting.train import TrainedModel, balanced_sample, encode, fit


def test_capacity_rises_linearly_then_holds():
    cfg = VAEConfig(c_max=10.0, steps=10, anneal_fraction=0.5)
    assert [cfg.capacity(s) for s in range(7)] == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 10.0]


def test_loss_is_reconstruction_plus_beta_times_abs_kl_minus_capacity():
    torch.manual_seed(0)
    net = BetaVAE(VAEConfig(beta=7.0)).eval()  # eval: z = mu, so the loss is deterministic
    x = torch.randn(16, 48)
    loss, recon, kl = net.loss(x, capacity=3.0)
    x_hat, mu, logvar = net(x)
    want_recon = ((x - x_hat) ** 2).sum(1).mean()
    want_kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)).mean()
    assert torch.allclose(recon, want_recon) and torch.allclose(kl, want_kl)
    assert torch.allclose(loss, want_recon + 7.0 * (want_kl - 3.0).abs())
    ae = BetaVAE(dataclasses.replace(VAEConfig(), variational=False, beta=0.0)).eval()
    loss, recon, _ = ae.loss(x, 3.0)
    assert torch.equal(loss, recon)


def test_contrastive_term_is_infonce_of_each_view_against_its_electrodes_other_spikes():
    torch.manual_seed(0)
    net = BetaVAE(VAEConfig()).eval()
    x = torch.randn(3, 5, 48)
    # without added noise the twin is the same waveform: logits are minus squared distances
    mu, _ = net.encoder(x.reshape(15, 48))
    mu = mu.reshape(3, 5, -1)
    logits = -torch.cdist(mu, mu) ** 2
    want = torch.nn.functional.cross_entropy(logits.reshape(15, 5), torch.arange(5).repeat(3))
    assert torch.allclose(net.contrastive(x, noise_sd=0.0), want, atol=1e-5)
    # spikes alike cannot be told apart: the loss is log(spikes per electrode)
    same = torch.randn(1, 1, 48).expand(2, 4, 48)
    assert torch.allclose(net.contrastive(same, noise_sd=0.0), torch.tensor(np.log(4.0), dtype=torch.float32))


def test_contrastive_views_move_along_time_by_up_to_the_shift():
    torch.manual_seed(0)
    net = BetaVAE(VAEConfig()).eval()
    flat = torch.randn(2, 6, 1).expand(2, 6, 48).contiguous()  # a shift of a flat waveform is itself
    torch.manual_seed(1)
    assert torch.allclose(net.contrastive(flat, noise_sd=0.0, shift=1), net.contrastive(flat, noise_sd=0.0), atol=1e-6)
    shaped = torch.randn(2, 6, 48)
    moved = [net.contrastive(shaped, noise_sd=0.0, shift=1) for _ in range(3)]
    assert all(m > net.contrastive(shaped, noise_sd=0.0) for m in moved)  # twins no longer identical


def _look_alikes(n=3000, seed=0):
    """Three electrodes of one unit each, 40 to 400 µV, and a fourth with two units of 80 µV and
    different width: the reconstruction alone spends a small code on the sizes."""
    rng = np.random.default_rng(seed)
    t = np.arange(48)
    el = rng.integers(0, 4, n)
    amp = np.array([40.0, 120.0, 400.0, 80.0])[el] * np.exp(0.15 * rng.standard_normal(n))
    wide = (el == 3) & (rng.random(n) < 0.5)
    narrow_shape = -np.exp(-(t - 11) ** 2 / 4.0) + 0.3 * np.exp(-(t - 18) ** 2 / 10.0)
    wide_shape = -np.exp(-(t - 11) ** 2 / 9.0) + 0.15 * np.exp(-(t - 24) ** 2 / 30.0)
    w = amp[:, None] * np.where(wide[:, None], wide_shape, narrow_shape) + 8 * rng.standard_normal((n, 48))
    return w.astype(np.float32), el.astype(np.int16), wide


def test_contrastive_term_keeps_what_tells_one_electrodes_units_apart():
    w, el, wide = _look_alikes()
    noise = NoiseEstimate(noise_uv=np.full(4, 8.0), skipped={})
    pair = el == 3

    def accuracy(contrast):  # a linear classifier that knows the units, on the latent, two seeds
        scores = []
        for seed in (0, 1):
            cfg = VAEConfig(steps=60, batch_size=128, latent_dim=2, contrast=contrast)
            m = fit(w, el, noise, cfg, torch.device("cpu"), seed=seed)
            z = encode(m, w, el, noise, np.zeros((len(w), 2), np.float32))
            scores.append(cross_val_score(LinearDiscriminantAnalysis(), z[pair], wide[pair], cv=5).mean())
        return np.mean(scores), m.history["contrast"]

    plain, history = accuracy(0.0)
    assert history[-1] == 0.0
    contrasted, history = accuracy(1000.0)
    assert history[-1] < np.log(32)  # better than chance among 32 spikes
    assert contrasted > plain + 0.08, (plain, contrasted)


def test_shapes_match_the_workshop_network():
    net = BetaVAE(VAEConfig(latent_dim=2))
    mu, logvar = net.encoder(torch.zeros(3, 48))
    assert mu.shape == logvar.shape == (3, 2)
    assert net.decoder(mu).shape == (3, 48)
    assert 20_000 < sum(p.numel() for p in net.parameters()) < 30_000  # "about 26 k parameters"


def _toy_spikes(n=1200, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(48)
    a = -np.exp(-(t - 11) ** 2 / 6.0)
    b = -0.6 * np.exp(-(t - 11) ** 2 / 20.0) + 0.4 * np.exp(-(t - 22) ** 2 / 30.0)
    which = rng.integers(0, 2, n)
    w = 80 * np.where(which[:, None] == 0, a, b) + 8 * rng.standard_normal((n, 48))
    return w.astype(np.float32), rng.integers(0, 3, n).astype(np.int16), which


def test_training_lowers_the_loss_and_is_reproducible_with_a_seed(tmp_path):
    w, el, _ = _toy_spikes()
    noise = NoiseEstimate(noise_uv=np.full(3, 8.0), skipped={})  # white noise: nothing to whiten
    cfg = VAEConfig(steps=60, batch_size=128, latent_dim=2, c_max=3.0)
    m1 = fit(w, el, noise, cfg, torch.device("cpu"), seed=5)
    m2 = fit(w, el, noise, cfg, torch.device("cpu"), seed=5)
    assert m1.history["recon"][-1] < 0.5 * m1.history["recon"][0]
    for (k, a), (_, b) in zip(m1.net.state_dict().items(), m2.net.state_dict().items()):
        assert torch.equal(a, b), k
    z1 = encode(m1, w, el, noise, np.zeros((len(w), 2), np.float32))
    m1.save(tmp_path / "m.pt")
    z2 = encode(TrainedModel.load(tmp_path / "m.pt"), w, el, noise, np.zeros((len(w), 2), np.float32))
    np.testing.assert_array_equal(z1, z2)


def test_a_model_saved_before_whitening_still_takes_sd_units(tmp_path):
    w, el, _ = _toy_spikes(400)
    noise = NoiseEstimate(noise_uv=np.full(3, 8.0), skipped={}, autocorr=np.tile(0.9 ** np.arange(48), (3, 1)))
    m = fit(w, el, noise, VAEConfig(steps=5, latent_dim=2, whiten=False), torch.device("cpu"))
    m.save(tmp_path / "m.pt")
    ckpt = torch.load(tmp_path / "m.pt", weights_only=True)
    del ckpt["config"]["whiten"]
    torch.save(ckpt, tmp_path / "old.pt")
    old = TrainedModel.load(tmp_path / "old.pt")
    assert old.net.cfg.whiten is False
    z = [encode(model, w, el, noise, np.zeros((len(w), 2), np.float32)) for model in (m, old)]
    np.testing.assert_array_equal(z[0], z[1])


def test_balanced_sample_spreads_over_electrodes():
    el = np.repeat([0, 1, 2], [1000, 50, 300])
    idx = balanced_sample(el, 400, np.random.default_rng(0))
    assert len(idx) <= 400 and len(np.unique(idx)) == len(idx)
    counts = np.bincount(el[idx])
    assert counts[1] == 50 and abs(int(counts[0]) - int(counts[2])) <= 1
    assert len(balanced_sample(el, 10_000, np.random.default_rng(0))) == len(el)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_trains_on_cuda():
    w, el, _ = _toy_spikes(600)
    noise = NoiseEstimate(noise_uv=np.full(3, 8.0), skipped={})
    m = fit(w, el, noise, VAEConfig(steps=20, latent_dim=2), torch.device("cuda"))
    assert next(m.net.parameters()).is_cuda
