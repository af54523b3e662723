import numpy as np

from spikevae.sorting.whitening import noise_transforms, to_noise_units

from .conftest import band_noise

N = 48


def test_whitening_gives_band_passed_noise_sd_one_in_every_direction_it_occupies():
    rng = np.random.default_rng(0)
    x, autocorr = band_noise(rng, 20_000, (250, 750), sd=7.0)
    raw = np.linalg.eigvalsh(np.cov(x / 7.0, rowvar=False))[::-1]
    white = to_noise_units(x, np.zeros(len(x), int), noise_transforms(np.array([7.0]), autocorr[None], N))
    flat = np.linalg.eigvalsh(np.cov(white, rowvar=False))[::-1]
    # At 250–750 Hz the noise of a 48-sample window lies in about 4 directions, with variances
    # spread over a factor of 10 or more; whitened, each has variance near 1 and none more.
    assert raw[0] > 10 * raw[3] and raw[4] < 0.1
    assert flat[0] < 1.05 and flat[3] > 0.9


def test_without_whitening_or_an_autocorrelation_waveforms_are_in_sd_units():
    rng = np.random.default_rng(1)
    _, autocorr = band_noise(rng, 500, (250, 7500), sd=1.0)
    w = rng.standard_normal((6, N)).astype(np.float32)
    el = np.array([0, 1, 0, 1, 1, 0])
    sd = np.array([4.0, 10.0])
    expected = w / sd[el][:, None]
    for t in (noise_transforms(sd, None, N), noise_transforms(sd, np.stack([autocorr] * 2), N, whiten=False)):
        np.testing.assert_allclose(to_noise_units(w, el, t), expected, rtol=1e-6)
    whitened = to_noise_units(w, el, noise_transforms(sd, np.stack([autocorr] * 2), N))
    assert not np.allclose(whitened, expected)
