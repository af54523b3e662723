"""Per-electrode work spread over worker processes, results back in electrode order.

Clustering and the look-alike split fit many small Gaussian mixtures, one electrode after
another. That work is bound by the Python interpreter, so threads gain nothing and
electrodes go to processes instead:
joblib's loky pool, which is reused from clustering to split (and from one sort to the next
in one Python process), so its workers start and import spikevae once. Each task runs on
one BLAS/OpenMP thread: on matrices of at most 2000 × a few columns the threads cost more
in synchronisation than they gain (clustering took twice as long on two threads as on one,
benchmarks/ARCHIVE.md, "Speed and memory"). Results are the same for any number of workers.

The pool's start (each worker imports scikit-learn) costs what clustering and split of some
30 electrodes take on one core, so by default a recording of fewer than
``MIN_POOL_ELECTRODES`` electrodes stays in this process (the timings: benchmarks/RESULTS.md,
"Timings behind the code's design").
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from joblib import Parallel, delayed, parallel_config
from threadpoolctl import threadpool_limits


def available_cores() -> int:
    """Cores this process may run on (a batch scheduler's allocation, not the whole node)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def torch_threads(requested: int | None, jobs: int = 1) -> int:
    """PyTorch threads for one sort: ``requested`` if given, else the cores this process may use
    shared among ``jobs`` sorts running side by side. More threads than free cores make each
    step wait for the slowest (RESULTS.md, "Training threads")."""
    return requested if requested is not None else max(1, available_cores() // max(1, jobs))


MIN_POOL_ELECTRODES = 32


def pool_size(requested: int | None, n_electrodes: int) -> int:
    """Worker processes for ``n_electrodes``: ``requested`` if given, else every available core
    for a recording of at least ``MIN_POOL_ELECTRODES`` electrodes and 1 for a smaller one;
    never more than the cores available or the electrodes (the result is the same for any number)."""
    if requested is not None:
        if requested < 1:
            raise ValueError(f"workers must be at least 1, not {requested}")
        return max(1, min(requested, available_cores(), n_electrodes))
    return available_cores() if n_electrodes >= MIN_POOL_ELECTRODES else 1


def map_electrodes(fn: Callable, tasks: Iterable[tuple], workers: int, progress=None) -> Iterator:
    """``fn(*task)`` for every task, in order, on ``workers`` processes (1: in this one).
    ``tasks`` is consumed lazily, so only a few electrodes' data are in flight at once."""
    if workers <= 1:
        with threadpool_limits(1):  # once per call: entering it costs ~3 ms
            for task in tasks:
                result = fn(*task)
                if progress is not None:
                    progress(1)
                yield result
        return
    with parallel_config(backend="loky", inner_max_num_threads=1):  # set as each worker starts
        for result in Parallel(n_jobs=workers, return_as="generator", initializer=_watch_parent,
                               initargs=(os.getpid(),))(
                delayed(fn)(*task) for task in tasks):
            if progress is not None:
                progress(1)
            yield result


def _watch_parent(parent: int) -> None:
    """Each pool worker ends itself once the sort that started it (``parent``) is gone: loky
    keeps idle workers for minutes, and a sort killed outright (kill -9, an OOM kill) cannot
    tell them to go."""
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()


def _exit_when_orphaned(parent: int, every_s: float = 0.5) -> None:
    while os.getppid() == parent:
        time.sleep(every_s)
    os._exit(1)
