"""Per-electrode clustering: a skewed unit stays one unit, distinct units stay apart."""
import dataclasses

import numpy as np

from spikevae.sorting.clustering import ClusterParams, cluster_electrode

T = np.arange(48)


def spikes(rng, n, trough_uv, width, amp_sd=0.0):
    """Waveforms of one unit: a trough at sample 11, its size log-normally spread, noise 10 µV."""
    shape = -np.exp(-0.5 * ((T - 11) / width) ** 2) + 0.35 * np.exp(-0.5 * ((T - 11 - 4 * width) / (2 * width)) ** 2)
    scale = trough_uv * rng.lognormal(0.0, amp_sd, n)
    return scale[:, None] * shape + rng.normal(0, 10, (n, 48))


def test_a_skewed_unit_is_one_unit_not_two():
    rng = np.random.default_rng(0)
    wf = spikes(rng, 3000, 120, 2.0, amp_sd=0.3)
    unmerged, _ = cluster_electrode(wf, dataclasses.replace(ClusterParams(), merge_overlap=1.0))
    assert unmerged.max() >= 1  # BIC alone spends several Gaussians on the skewed cloud
    labels, z = cluster_electrode(wf, ClusterParams())
    assert labels.max() == 0 and (labels == 0).mean() > 0.9
    assert z.shape == (3000, ClusterParams().n_dims)


def test_distinct_units_on_one_electrode_stay_apart():
    rng = np.random.default_rng(1)
    wf = np.r_[spikes(rng, 1500, 150, 2.0, 0.1), spikes(rng, 1500, 70, 4.0, 0.1)]
    truth = np.r_[np.zeros(1500, int), np.ones(1500, int)]
    labels, _ = cluster_electrode(wf, ClusterParams())
    assert labels.max() == 1
    for u in (0, 1):
        members = truth[labels == u]
        assert len(members) > 1300 and np.bincount(members).max() / len(members) > 0.98
