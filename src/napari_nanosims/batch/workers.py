"""How many local worker processes a batch gets by default: one after the other for a
few small files, processes when the work pays for their start (see docs/batch.md)."""

from __future__ import annotations

import os
import time

#: Seconds a local worker process costs before it processes files at full speed:
#: starting Python, importing numpy, scipy, numba and this package, and loading the
#: compiled kernels from numba's disk cache (0.9-1 s more than the same batch one after
#: the other, on a 2-core machine: ``benchmarks/bench_batch.py``).
WORKER_START_S = 1.0

#: Seconds of processing per MiB of input file, and per file, with the default recipe
#: (clean, align, sum, write): a demo file (35 MiB) in 0.13-0.15 s on one core.
#: Costlier recipes (sub-pixel alignment, ROI steps) only make a pool pay off sooner.
SECONDS_PER_MIB = 0.004
SECONDS_PER_FILE = 0.01

#: A pool is chosen only when it is estimated to take at most this fraction of the time of
#: the files one after the other: the estimate is rough, and the default must never be
#: slower than ``--workers 1``.
POOL_MARGIN = 0.75

__all__ = ["choose_workers", "default_workers", "free_cores", "workers_for",
           "WORKER_START_S", "SECONDS_PER_MIB", "SECONDS_PER_FILE", "POOL_MARGIN"]


def default_workers() -> int:
    """The cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def choose_workers(sizes, cores: int) -> int:
    """How many local worker processes make a batch fastest: 1 (one after the other,
    in this process) unless processes clearly pay for their start.

    The work of a file is estimated from its size (``SECONDS_PER_FILE + SECONDS_PER_MIB x
    MiB``); ``w`` workers are estimated to take ``WORKER_START_S`` (they start at the same
    time) plus the larger of an even share of the work and the largest file. The most
    workers up to ``cores`` and the number of files whose estimate is lowest is chosen, if
    that is at most ``POOL_MARGIN`` times the estimate one after the other.

    Parameters
    ----------
    sizes : sequence of int
        The files' sizes, bytes (a file that cannot be read: 0).
    cores : int
        The cores free for the batch (:func:`free_cores`).

    Returns
    -------
    int
        The number of workers, 1 to ``min(cores, len(sizes))`` (1 for no file).
    """
    costs = [SECONDS_PER_FILE + max(0, size) / 2**20 * SECONDS_PER_MIB for size in sizes]
    serial = sum(costs)
    best, best_seconds = 1, POOL_MARGIN * serial
    for workers in range(2, min(cores, len(costs)) + 1):
        seconds = WORKER_START_S + max(serial / workers, max(costs))
        if seconds < best_seconds:
            best, best_seconds = workers, seconds
    return best


def _file_size(path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:  # missing, unreadable: it fails at once when processed
        return 0


def _busy_cores(seconds: float) -> float | None:
    """Cores other processes kept busy over the next ``seconds`` (this one sleeps
    meanwhile), from Linux's ``/proc/stat``; None where there is none."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            ticks = [int(value) for value in stat.readline().split()[1:9]]
        return sum(ticks), ticks[3] + ticks[4]  # all, idle + waiting for the disk

    try:
        total, idle = sample()
        time.sleep(seconds)
        total_after, idle_after = sample()
    except (OSError, ValueError, IndexError):
        return None
    if total_after <= total:
        return None
    busy = 1.0 - (idle_after - idle) / (total_after - total)
    return busy * (os.cpu_count() or 1)


def free_cores(seconds: float = 0.1) -> int:
    """The cores this process may use less those other programs keep busy now (measured
    over ``seconds``; elsewhere than Linux, the load average of the last minute), at
    least 1: on a shared machine a pool competes with the others for the same cores and
    gains less than it costs."""
    busy = _busy_cores(seconds)
    if busy is None:
        try:
            busy = os.getloadavg()[0]
        except (OSError, AttributeError):  # pragma: no cover - no load average either
            busy = 0.0
    return max(1, default_workers() - int(busy + 0.5))


def workers_for(paths) -> int:
    """The default ``--workers`` for these files: :func:`choose_workers` with their sizes
    and the cores, then, when that gives a pool, with the :func:`free_cores` (a look of
    0.1 s at what else runs, spent only where the work is seconds)."""
    sizes = [_file_size(path) for path in paths]
    workers = choose_workers(sizes, default_workers())
    if workers > 1:
        workers = choose_workers(sizes, free_cores())
    return workers
