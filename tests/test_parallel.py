"""Electrodes clustered and split on worker processes give what one process gives."""
import numpy as np
import pytest

import spikevae
from spikevae.sorting.clustering import ClusterParams, cluster_recording
from spikevae.sorting.parallel import MIN_POOL_ELECTRODES, available_cores, map_electrodes, pool_size


def test_pool_size_follows_the_request_else_the_recordings_size():
    assert pool_size(3, 8) == min(3, available_cores())
    assert pool_size(1000, 96) == available_cores() and pool_size(1000, 1) == 1  # capped by cores and electrodes
    assert pool_size(None, MIN_POOL_ELECTRODES - 1) == 1
    assert pool_size(None, 96) == available_cores() >= 1
    with pytest.raises(ValueError):
        pool_size(0, 96)


def test_results_come_back_in_task_order_and_are_counted():
    ticks = []
    out = list(map_electrodes(np.arange, ((n,) for n in (5, 1, 3, 0, 2)), 2, progress=ticks.append))
    assert [len(r) for r in out] == [5, 1, 3, 0, 2]
    assert sum(ticks) == 5


def test_a_sorts_latent_space_clusters_the_same_on_two_processes(sorted_small):
    result, _ = sorted_small
    spikes = spikevae.load_result(result.out)["spikes"]
    electrode = np.unique(spikes["electrode_id"], return_inverse=True)[1]
    params, runs = ClusterParams(), {}
    for workers in (1, 2):
        ticks = []
        unit, space = cluster_recording(spikes["latent"], electrode, params, 0, progress=ticks.append,
                                        workers=workers)
        runs[workers] = unit, space
        assert sum(ticks) == len(np.unique(electrode))
    np.testing.assert_array_equal(runs[1][0], runs[2][0])
    np.testing.assert_array_equal(runs[1][1], runs[2][1])
    assert len(np.unique(runs[2][0][runs[2][0] >= 0])) >= 4
