"""Per-electrode clustering: a skewed or widely spread unit stays one unit, distinct units stay
apart, and the neighbour graph keeps a small unit apart from the hash of distant cells."""
import dataclasses

import numpy as np
import pytest

from spikevae.cli import build_config
from spikevae.comparison import baseline_settings
from spikevae.config import SortConfig
from spikevae.params import VAEConfig
from spikevae.sorting import clustering
from spikevae.sorting.clustering import ClusterParams, cluster_electrode

T = np.arange(48)


def spikes(rng, n, trough_uv, width, amp_sd=0.0):
    """Waveforms of one unit: a trough at sample 11, its size log-normally spread, noise 10 µV."""
    shape = -np.exp(-0.5 * ((T - 11) / width) ** 2) + 0.35 * np.exp(-0.5 * ((T - 11 - 4 * width) / (2 * width)) ** 2)
    scale = trough_uv * rng.lognormal(0.0, amp_sd, n)
    return scale[:, None] * shape + rng.normal(0, 10, (n, 48))


def params(method, **changes):
    return dataclasses.replace(ClusterParams(), method=method, **changes)


@pytest.mark.parametrize("method, unmerged", [("mixture", {"merge_overlap": 1.0}),
                                              ("graph", {"merge_edges": 0.1, "join_valley": 2.0})])
def test_a_skewed_unit_is_one_unit_not_two(method, unmerged):
    rng = np.random.default_rng(0)
    wf = spikes(rng, 3000, 120, 2.0, amp_sd=0.3)
    cut, _ = cluster_electrode(wf, params(method, **unmerged))
    assert cut.max() >= 1  # BIC's Gaussians, or Leiden's communities, cut the skewed cloud
    labels, z = cluster_electrode(wf, params(method))
    assert labels.max() == 0 and (labels == 0).mean() > 0.9
    assert z.shape == (3000, ClusterParams().n_dims)


@pytest.mark.parametrize("method", ["mixture", "graph"])
def test_distinct_units_on_one_electrode_stay_apart(method):
    rng = np.random.default_rng(1)
    wf = np.r_[spikes(rng, 1500, 150, 2.0, 0.1), spikes(rng, 1500, 70, 4.0, 0.1)]
    truth = np.r_[np.zeros(1500, int), np.ones(1500, int)]
    labels, _ = cluster_electrode(wf, params(method))
    assert labels.max() == 1
    for u in (0, 1):
        members = truth[labels == u]
        assert len(members) > 1300 and np.bincount(members).max() / len(members) > 0.98


def accuracy(labels, members):
    """The accuracy of the cluster that holds most of ``members`` (a boolean mask)."""
    best = np.bincount(labels[members & (labels >= 0)], minlength=labels.max() + 1).argmax()
    hit = (labels[members] == best).sum()
    return hit / (members.sum() + (labels == best).sum() - hit)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_graph_joins_a_widely_spread_unit_but_not_two_units_of_one_shape(seed):
    """A unit whose troughs spread ±40 % is cut by modularity into communities that share too few
    edges to be joined; no valley lies between them, so they are joined. Two units of one shape,
    150 and 100 µV, have a valley between them and stay apart."""
    rng = np.random.default_rng(seed)
    spread = spikes(rng, 3000, 120, 2.0, amp_sd=0.4)
    cut, _ = cluster_electrode(spread, params("graph", join_valley=2.0))
    assert cut.max() >= 1
    labels, _ = cluster_electrode(spread, params("graph"))
    assert labels.max() == 0 and (labels == 0).mean() > 0.9
    two = np.r_[spikes(rng, 1500, 150, 2.0, 0.08), spikes(rng, 1500, 100, 2.0, 0.08)]
    truth = np.r_[np.zeros(1500, int), np.ones(1500, int)]
    labels, _ = cluster_electrode(two, params("graph"))
    assert labels.max() == 1
    for u in (0, 1):
        assert accuracy(labels, truth == u) > 0.95


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_graph_keeps_a_small_unit_apart_from_the_hash(seed):
    """Features of one electrode: a large unit, a small one beside the hash of many distant cells
    (small clouds spread wide). A mixture of at most 5 Gaussians spends them on the hash and
    gives the small unit to it; the neighbour graph keeps the small unit whole."""
    rng = np.random.default_rng(seed)
    cells = rng.uniform(-6, 6, (60, 5))
    cells[:, 0] = rng.uniform(-2, 4, 60)
    hash_ = cells[rng.integers(0, 60, 3000)] + rng.normal(0, 0.8, (3000, 5))
    large = rng.normal(0, 0.4, (1500, 5)) + [12, 0, 0, 0, 0]
    small = rng.normal(0, 0.3, (300, 5)) + [2, 8, 0, 0, 0]
    x = np.r_[hash_, large, small]
    unit = np.r_[np.full(3000, -1), np.zeros(1500, int), np.ones(300, int)]
    graph, _ = cluster_electrode(x, params("graph"))
    mixture, _ = cluster_electrode(x, params("mixture"))
    assert accuracy(graph, unit == 0) > 0.95 and accuracy(mixture, unit == 0) > 0.95
    assert accuracy(graph, unit == 1) > 0.9
    assert accuracy(mixture, unit == 1) < 0.7


def test_the_graph_clusters_the_same_for_a_seed_and_assigns_every_spike_by_its_neighbours(monkeypatch):
    rng = np.random.default_rng(3)
    wf = np.r_[spikes(rng, 4000, 150, 2.0, 0.1), spikes(rng, 3000, 70, 4.0, 0.1)]
    truth = np.r_[np.zeros(4000, int), np.ones(3000, int)]
    few = params("graph", graph_fit=2000)  # 5 000 spikes left out of the graph, placed by their neighbours
    labels, _ = cluster_electrode(wf, few)
    again, _ = cluster_electrode(wf, few)
    assert np.array_equal(labels, again)
    monkeypatch.setattr(clustering, "VOTE_CHUNK", 1000)  # placed a chunk at a time, as a long recording is
    chunked, _ = cluster_electrode(wf, few)
    assert np.array_equal(labels, chunked)
    for u in (0, 1):
        assert accuracy(labels, truth == u) > 0.97


def test_the_band_picks_the_clustering_the_contrastive_term_and_the_training_steps():
    narrow, wide = SortConfig(), SortConfig(band_hz=(250.0, 7500.0))
    assert (narrow.cluster.method, narrow.vae.contrast, narrow.vae.steps) == ("graph", 1000.0, 180)
    assert (wide.cluster.method, wide.vae.contrast, wide.vae.steps) == ("mixture", 0.0, 90)
    # the steps follow the term the trained network has, and one asked for stays
    assert SortConfig(vae=VAEConfig(contrast=0.0)).vae.steps == SortConfig(features="ae").vae.steps == 90
    assert build_config(steps=30).vae.steps == 30
    chosen = SortConfig(cluster=ClusterParams(method="mixture"))
    assert chosen.cluster.method == "mixture" and chosen.vae.contrast == 1000.0
    # an option of the same section on the command line leaves the band's defaults to the band
    wide = build_config(band_hz=(250.0, 7500.0), max_train=4000, dead_time_ms=1.0)
    assert (wide.cluster.method, wide.vae.contrast, wide.detection.threshold) == ("mixture", 0.0, 3.5)


def test_a_variational_code_without_the_contrastive_term_keeps_the_mixture():
    # its code is nearly one curve along amplitude, whose neighbour graph is a chain
    assert SortConfig(features="vae-plain").cluster.method == "mixture"
    assert SortConfig(vae=VAEConfig(contrast=0.0)).cluster.method == "mixture"
    assert SortConfig(features="ae").cluster.method == SortConfig(features="pca").cluster.method == "graph"
    # compare clusters each baseline as a sort with its features would, unless the result chose otherwise
    graph = SortConfig()
    assert [baseline_settings(graph, f).cluster.method for f in ("vae", "pca", "ae", "vae-plain")] == \
        ["graph", "graph", "graph", "mixture"]
    chosen = SortConfig(band_hz=(250.0, 7500.0), cluster=ClusterParams(method="graph"))
    assert baseline_settings(chosen, "pca").cluster.method == "graph"
    assert baseline_settings(SortConfig(cluster=ClusterParams(method="mixture")), "pca").cluster.method == "mixture"
    # and trains each network for its own default steps, unless the result chose its own
    assert [baseline_settings(graph, f).vae.steps for f in ("vae", "ae", "vae-plain")] == [180, 90, 90]
    assert baseline_settings(SortConfig(features="pca"), "vae").vae.steps == 180
    assert baseline_settings(SortConfig(vae=VAEConfig(steps=30)), "ae").vae.steps == 30
