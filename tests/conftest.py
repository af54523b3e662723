import dataclasses

import numpy as np
import pytest
from scipy import signal

import spikevae
from spikevae.sorting.detection import autocorr_from_sums, noise_autocorr
from spikevae.sorting.model import VAEConfig
from spikevae.simulators.simulation import SimulationConfig, simulate
from spikevae.sorting.spikes import NoiseEstimate, Spikes



@pytest.fixture(scope="session")
def small_recording(tmp_path_factory):
    """8 electrodes, 20 s in two segments, spec 2.3: small enough for every test to sort."""
    path = tmp_path_factory.mktemp("rec") / "small.ns6"
    cfg = SimulationConfig(n_electrodes=8, duration_s=20.0, n_segments=2, seed=3,
                           units_per_electrode=(0.0, 0.5, 0.5), rate_hz=(4.0, 20.0),
                           amplitude_uv=(120.0, 400.0))
    gt = simulate(path, cfg)
    return path, gt


def noise_with_spikes(n_channels=4, n_samples=90_000, seed=0):
    """White noise (5 µV) with a large biphasic spike every 50 ms on channel 1 only."""
    rng = np.random.default_rng(seed)
    x = 5.0 * rng.standard_normal((n_samples, n_channels))
    t = np.arange(-20, 28)
    shape = -np.exp(-t**2 / 8.0) + 0.3 * np.exp(-(t - 10) ** 2 / 30.0)
    ticks = np.arange(3000, n_samples - 3000, 1500)
    for k in ticks:
        x[k - 20:k + 28, 1] += 250 * shape
    return x, ticks


def band_noise(rng, n, band=(250, 7500), sd=1.0, n_samples=48):
    """Band-passed white noise of SD ``sd`` as n windows of ``n_samples``, and its
    autocorrelation as ``detect`` measures it."""
    sos = signal.butter(4, band, btype="bandpass", fs=30_000, output="sos")
    x = signal.sosfiltfilt(sos, rng.standard_normal(n * n_samples + 2000))[1000:-1000]
    x /= x.std() / sd
    return x.reshape(n, n_samples), autocorr_from_sums(*noise_autocorr(x[None], np.full(1, sd), n_samples))[0]


def as_spikes(waveform, electrode=None, amplitude=None, timestamp=None, autocorr=None, threshold_uv=None,
               duration_s=20.0):
    """A ``Spikes`` of synthetic waveforms (one electrode unless told), for the steps after detection."""
    n = len(waveform)
    electrode = np.zeros(n, int) if electrode is None else np.asarray(electrode)
    n_el = int(electrode.max(initial=0)) + 1
    noise = NoiseEstimate(noise_uv=np.ones(n_el), skipped={},
                          autocorr=np.stack([autocorr[c] for c in range(n_el)]) if autocorr else None)
    return Spikes(np.arange(n) if timestamp is None else timestamp, electrode,
                  waveform[:, 16] if amplitude is None else amplitude, waveform, np.arange(1, n_el + 1), noise,
                  np.ones(n_el) if threshold_uv is None else np.asarray(threshold_uv),
                  [(0, int(duration_s * 30_000))])


FAST = dataclasses.replace(VAEConfig(), max_train=4000)  # the default steps, on fewer waveforms


def fast_config(**kw):
    return spikevae.SortConfig(vae=FAST, device="cpu", **kw)


@pytest.fixture(scope="session")
def sorted_small(small_recording, tmp_path_factory):
    path, gt = small_recording
    out = tmp_path_factory.mktemp("sorted") / "result"
    return spikevae.sort(path, fast_config(), out=out), gt


