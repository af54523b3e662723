"""Per-electrode clustering of feature vectors into units, with an "unsorted" label.

Each electrode is clustered on its own (one electrode per unit on a Utah array), on ``n_dims``
principal axes of that electrode's features, by one of two methods (``ClusterParams.method``):

- ``graph``: each spike of a fit sample is joined to its ``neighbours`` nearest, the graph is cut
  into communities by Leiden's modularity (Traag et al. 2019; as Kilosort 4 clusters), and
  communities joined while many of their edges run between them, or while their density along
  the axis that best tells them apart has no valley between them (one unit whose troughs
  spread, as a fast cell's shrink after short intervals, is cut by modularity but shows no
  valley; two cells do). Every spike then takes the community most of its neighbours in the
  sample hold. A neighbour graph follows units of any shape, where a mixture spends Gaussians
  on the hash of distant cells and joins units to it.
- ``mixture``: Gaussian mixtures of 1..``max_units`` components, the one with the lowest BIC
  kept. BIC spends two Gaussians on one unit whose cloud is skewed (amplitude spread, drift), so
  components that overlap are then merged into one unit: a pair whose shared posterior mass
  (Σ min(p_i, p_j)) exceeds ``merge_overlap`` of the smaller one's (after Hennig 2010).

A spike is left unsorted (−1) when its unit claims it with less than ``min_confidence`` (the
share of its neighbours, or its posterior) or, in a mixture, it lies beyond the
``outlier_quantile`` of every Gaussian of its unit; a cluster with fewer than ``min_spikes``
members is dissolved into unsorted.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import linalg, stats
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import NearestNeighbors

from .parallel import map_electrodes
from ..params import ClusterParams
from ..io.store import groups

UNSORTED = -1
VOTE_CHUNK = 65_536  # spikes placed at once by their neighbours' vote


def principal_space(x: np.ndarray, n_dims: int, seed: int = 0, fit_idx: np.ndarray | None = None) -> np.ndarray:
    """``x`` on its ``n_dims`` principal axes (fitted on ``fit_idx``), all scaled by the first
    axis' SD so that their ratios are kept: the space units are clustered and split in."""
    pca = PCA(min(n_dims, x.shape[1]), random_state=seed).fit(x if fit_idx is None else x[fit_idx])
    return pca.transform(x) / (np.sqrt(pca.explained_variance_[0]) or 1.0)


def posterior_overlap(p: np.ndarray, q: np.ndarray) -> float:
    """Posterior mass two components share (Σ min(p, q)), as a share of the smaller one's."""
    return float(np.minimum(p, q).sum() / max(min(p.sum(), q.sum()), 1e-12))


def merge_overlapping(post: np.ndarray, max_overlap: float) -> np.ndarray:
    """Unit index of each mixture component: the most overlapping pair of units is joined
    while its shared posterior mass exceeds ``max_overlap`` of the smaller unit's mass."""
    group = np.arange(post.shape[1])
    while True:
        ids = np.unique(group)
        p = np.stack([post[:, group == g].sum(axis=1) for g in ids], axis=1)
        best, pair = max_overlap, None
        for i in range(len(ids)):
            for j in range(i + 1, len(ids)):
                overlap = posterior_overlap(p[:, i], p[:, j])
                if overlap > best:
                    best, pair = overlap, (ids[i], ids[j])
        if pair is None:
            return np.unique(group, return_inverse=True)[1]
        group[group == pair[1]] = pair[0]


def mixture_units(z: np.ndarray, fit_idx: np.ndarray, params: ClusterParams, seed: int = 0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Each spike's unit in the BIC-best Gaussian mixture fitted on ``z[fit_idx]``, its
    overlapping components merged, and whether the unit claims it (confident, not an outlier)."""
    best, best_bic = None, np.inf
    for k in range(1, min(params.max_units, len(fit_idx) // params.min_spikes) + 1):
        gmm = GaussianMixture(k, covariance_type="full", random_state=seed, reg_covar=1e-4,
                              n_init=1, max_iter=200).fit(z[fit_idx])
        bic = gmm.bic(z[fit_idx])
        if bic < best_bic:
            best, best_bic = gmm, bic
    post = best.predict_proba(z)
    group = merge_overlapping(post[fit_idx], params.merge_overlap)
    unit_post = np.stack([post[:, group == g].sum(axis=1) for g in range(group.max() + 1)], axis=1)
    lab = unit_post.argmax(axis=1)
    d2 = np.full(len(z), np.inf)
    for c in range(best.n_components):
        diff = z - best.means_[c]
        d2_c = np.einsum("ni,ij,nj->n", diff, best.precisions_[c], diff)
        d2 = np.where(group[c] == lab, np.minimum(d2, d2_c), d2)
    ok = (unit_post.max(axis=1) >= params.min_confidence) & (d2 <= stats.chi2.ppf(params.outlier_quantile, z.shape[1]))
    return lab, ok


def merge_linked(community: np.ndarray, near: np.ndarray, max_share: float) -> np.ndarray:
    """Community index of each node after joining, most linked pair first, the communities
    between which more than ``max_share`` of the smaller one's edges (``near``: each node's
    neighbours) run."""
    k = near.shape[1]
    m = community.max() + 1
    links = np.zeros((m, m))
    np.add.at(links, (np.repeat(community, k), community[near].ravel()), 1)
    links = links + links.T
    edges = np.bincount(community, minlength=m) * float(k)
    target = np.arange(m)  # a community joined into another points at it
    while (target == np.arange(m)).sum() > 1:
        share = links / np.maximum(np.minimum.outer(edges, edges), 1)
        np.fill_diagonal(share, 0)
        joined = target != np.arange(m)
        share[joined] = share[:, joined] = 0
        i, j = np.unravel_index(share.argmax(), share.shape)
        if share[i, j] <= max_share:
            break
        links[i] += links[j]
        links[:, i] += links[:, j]
        edges[i] += edges[j]
        target[target == j] = i
    return np.unique(target[community], return_inverse=True)[1]


def valley_ratio(a: np.ndarray, b: np.ndarray, seed: int = 0, most: int = 4_000) -> float:
    """Lowest density between two clouds' medians along their discriminant (Fisher's) axis, over
    the density at the less dense of the two medians (Gaussian KDE of at most ``most`` points): 1
    when the density falls monotonically from one cloud to the other, near 0 for a deep valley."""
    w = linalg.solve(np.cov(a.T) + np.cov(b.T) + 1e-9 * np.eye(a.shape[1]), a.mean(0) - b.mean(0))
    pa, pb = a @ w, b @ w
    x = np.r_[pa, pb]
    if np.ptp(x) == 0:  # one point repeated: nothing to tell apart
        return 1.0
    if len(x) > most:
        x = np.random.default_rng(seed).choice(x, most, replace=False)
    kde = stats.gaussian_kde(x)
    ma, mb = np.median(pa), np.median(pb)
    between = kde(np.linspace(min(ma, mb), max(ma, mb), 64))  # from one median to the other, both included
    return float(between.min() / max(min(between[0], between[-1]), 1e-300))


def join_best_first(labels: np.ndarray, score: Callable[[np.ndarray, np.ndarray], float | None], least: float,
                    larger_stays: bool = False) -> np.ndarray:
    """``labels`` (−1 stays) after joining, the best pair first, pairs whose ``score`` (of the two
    groups' indices; None: never) is at least ``least``; a pair's score is kept until either side
    changes. A joined pair takes its first group's label, or with ``larger_stays`` the larger's."""
    labels = labels.copy()
    tried: dict[tuple[int, int], float | None] = {}
    while True:
        members = {c: np.flatnonzero(labels == c) for c in np.unique(labels[labels != UNSORTED])}
        ids = list(members)
        best, pair = least, None
        for i, a in enumerate(ids):
            for b in ids[i + 1:]:
                if (a, b) not in tried:
                    tried[a, b] = score(members[a], members[b])
                if tried[a, b] is not None and tried[a, b] >= best:
                    best, pair = tried[a, b], (a, b)
        if pair is None:
            return labels
        keep, gone = pair
        if larger_stays and len(members[gone]) > len(members[keep]):
            keep, gone = gone, keep
        labels[labels == gone] = keep
        tried = {k: v for k, v in tried.items() if not set(k) & set(pair)}


def join_without_valley(community: np.ndarray, z: np.ndarray, min_ratio: float, seed: int = 0) -> np.ndarray:
    """Community index of each point after joining, the pair with the shallowest valley first,
    communities whose ``valley_ratio`` is at least ``min_ratio``."""
    def valley(a: np.ndarray, b: np.ndarray) -> float | None:
        return valley_ratio(z[a], z[b], seed) if min(len(a), len(b)) > z.shape[1] + 1 else None
    return np.unique(join_best_first(community, valley, min_ratio), return_inverse=True)[1]


def graph_units(z: np.ndarray, fit_idx: np.ndarray, params: ClusterParams, seed: int = 0
                ) -> tuple[np.ndarray, np.ndarray]:
    """Each spike's community in the neighbour graph of ``z[fit_idx]`` (Leiden, then linked
    communities joined), by the vote of its nearest spikes in that sample, and whether at least
    ``min_confidence`` of them vote for it."""
    import random
    import igraph

    sample = z[fit_idx]
    k = min(params.neighbours, len(fit_idx) - 1)
    index = NearestNeighbors(n_neighbors=k).fit(sample)
    near = index.kneighbors(return_distance=False)  # a sample spike is not its own neighbour
    graph = igraph.Graph(n=len(fit_idx), edges=np.c_[np.repeat(np.arange(len(fit_idx)), k), near.ravel()])
    graph.simplify()
    igraph.set_random_number_generator(random.Random(seed))
    found = np.asarray(graph.community_leiden(objective_function="modularity", resolution=params.resolution,
                                              n_iterations=-1).membership)
    community = merge_linked(found, near, params.merge_edges)
    if params.join_valley <= 1:
        community = join_without_valley(community, sample, params.join_valley, seed)
    m = community.max() + 1
    in_sample = np.full(len(z), -1)
    in_sample[fit_idx] = np.arange(len(fit_idx))
    unit, sure = np.empty(len(z), np.int64), np.empty(len(z), bool)
    for lo in range(0, len(z), VOTE_CHUNK):  # bounded memory for an hours-long electrode
        pos = in_sample[lo:lo + VOTE_CHUNK]
        voters = np.empty((len(pos), k), np.int64)
        voters[pos >= 0] = near[pos[pos >= 0]]
        if (pos < 0).any():
            voters[pos < 0] = index.kneighbors(z[lo:lo + VOTE_CHUNK][pos < 0], return_distance=False)
        votes = np.bincount((np.arange(len(pos))[:, None] * m + community[voters]).ravel(),
                            minlength=len(pos) * m).reshape(len(pos), m)
        unit[lo:lo + len(pos)] = votes.argmax(axis=1)
        sure[lo:lo + len(pos)] = votes.max(axis=1) >= params.min_confidence * k
    return unit, sure


def cluster_electrode(features: np.ndarray, params: ClusterParams, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Local unit labels 0..k−1 (by decreasing size) or −1 for one electrode's spikes, and the
    clustering-space coordinates of each spike (n × ``n_dims``; zeros when too few spikes)."""
    n = len(features)
    labels = np.full(n, UNSORTED, np.int64)
    dims = min(params.n_dims, features.shape[1])
    if n < max(params.min_spikes, dims + 1):
        return labels, np.zeros((n, dims))
    rng = np.random.default_rng(seed)
    graph = params.method == "graph"
    most = params.graph_fit if graph else params.max_fit
    fit_idx = rng.choice(n, most, replace=False) if n > most else np.arange(n)
    z = principal_space(features, params.n_dims, seed, fit_idx)
    lab, ok = (graph_units if graph else mixture_units)(z, fit_idx, params, seed)
    labels[ok] = lab[ok]
    n_units = lab.max() + 1
    sizes = np.bincount(labels[labels >= 0], minlength=n_units)
    keep = np.flatnonzero(sizes >= params.min_spikes)
    keep = keep[np.argsort(-sizes[keep], kind="stable")]
    remap = np.full(n_units, UNSORTED)
    remap[keep] = np.arange(len(keep))
    labels[labels >= 0] = remap[labels[labels >= 0]]
    return labels, z


def cluster_recording(features: np.ndarray, electrode: np.ndarray, params: ClusterParams, seed: int = 0,
                      *, progress=None, workers: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Global unit ids (numbered electrode by electrode, −1 = unsorted) for every spike, and its
    clustering-space coordinates (n × ``n_dims`` float32, 16–20 bytes a spike: the units' isolation
    is measured there). Electrodes are clustered on ``workers`` processes (the same labels for
    any number)."""
    electrode = np.asarray(electrode)
    unit = np.full(len(electrode), UNSORTED, np.int64)
    space = np.zeros((len(electrode), params.n_dims), np.float32)
    next_id = 0
    by_electrode = list(groups(electrode).values())
    tasks = ((np.asarray(features[idx]), params, seed) for idx in by_electrode)
    for idx, (local, z) in zip(by_electrode, map_electrodes(cluster_electrode, tasks, workers, progress)):
        space[idx, :z.shape[1]] = z
        unit[idx[local >= 0]] = local[local >= 0] + next_id
        next_id += local.max(initial=-1) + 1
    return unit, space
