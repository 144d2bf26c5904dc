"""Frame-by-frame work on stacks: input checks, a bounded two-core frame pool kept for
the process, and the freed memory given back before a large result."""

from __future__ import annotations

import ctypes
import functools
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import numpy as np

from .._progress import run_to_completion  # noqa: F401 - the one driver, for the frame loops

_SINGLE_THREADED = False  # set in batch workers: one thread per file, no oversubscription


def set_single_threaded(value: bool) -> None:
    """Make every frame loop of this process run on the calling thread alone (or not)."""
    global _SINGLE_THREADED
    _SINGLE_THREADED = bool(value)


def worker_count() -> int:
    """Threads for frame-parallel work: the cores this process may use (at most 8), or 1
    in a batch worker (:func:`set_single_threaded`)."""
    if _SINGLE_THREADED:
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


def check_stack(data, name: str = "data", ndim: int = 4):
    """Return ``data`` unchanged if it has ``ndim`` dimensions, else raise ValueError.

    Lazy arrays (memory maps, dask arrays) are accepted as they are; frames are
    converted to numpy one at a time by the callers.
    """
    shape = getattr(data, "shape", None)
    if shape is None:
        data = np.asarray(data)
        shape = data.shape
    layout = "(frames, detectors, height, width)" if ndim == 4 else "(frames, height, width)"
    if len(shape) != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions {layout}; got shape {tuple(shape)}")
    if any(size == 0 for size in tuple(shape)[-2:]) or (ndim == 4 and shape[1] == 0):
        raise ValueError(f"{name} must have at least one detector, row and column {layout}; "
                         f"got shape {tuple(shape)}")
    dtype = getattr(data, "dtype", None)
    if dtype is not None and np.dtype(dtype).kind not in "biuf":
        raise ValueError(f"{name} must hold numbers (counts), not {np.dtype(dtype)} values")
    return data


class FrameStack:
    """Several (frames, H, W) detector stacks seen as one (frames, detectors, H, W) stack.

    Lazy: reading frame ``f`` reads only frame ``f`` of each detector (numpy's fancy
    indexing of a memory map would copy the whole selection at once). Used for the
    ion detectors of a file and for the per-detector layers of the napari widgets.
    """

    def __init__(self, detectors):
        self.detectors = list(detectors)
        if not self.detectors:
            raise ValueError("need at least one detector stack")
        first = tuple(self.detectors[0].shape)
        if any(tuple(d.shape) != first or len(first) != 3 for d in self.detectors):
            raise ValueError("detector stacks must all have the same (frames, H, W) shape")
        self.shape = (first[0], len(self.detectors)) + first[1:]
        self.dtype = np.result_type(*[np.asarray(d[:0]).dtype for d in self.detectors])
        self.ndim = 4

    def __getitem__(self, key):
        axis = 0 if isinstance(key, (int, np.integer)) else 1
        return np.stack([np.asarray(d[key]) for d in self.detectors], axis=axis).astype(
            self.dtype, copy=False)

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self[:], dtype=dtype)

    def mass(self, index: int):
        """The (frames, height, width) stack of detector ``index``, as given."""
        return self.detectors[index]


@functools.lru_cache(maxsize=1)
def _blas_libraries():
    """threadpoolctl's view of the process's BLAS libraries, found once: finding them
    reads the process's memory map (0.5 ms), which every registration paid, and a
    non-rigid alignment registers hundreds of patches."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def single_threaded_blas():
    """A context in which BLAS (numpy's matrix products) uses one thread."""
    return _blas_libraries().limit(limits=1, user_api="blas")


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    """glibc's ``malloc_trim``, or None (another C library, another system)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # musl and others have no malloc_trim
        return None


def release_freed_memory() -> None:
    """Give the memory that earlier work freed back to the system, before a large result.

    glibc keeps freed blocks of a few MiB (a frame's spectra, its temporaries) for
    reuse instead of returning them; a registration at 512² leaves about 80 MiB so
    kept, which the moved stack allocated next (fresh pages) cannot use, so they add to
    the step's peak. ``malloc_trim`` returns the wholly free pages (about 50 MiB there,
    a few ms). Does nothing where the C library has no such call.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def frame(data, index: int) -> np.ndarray:
    """Frame ``index`` of a (possibly lazy) stack as a numpy array (never a view we may write)."""
    return np.asarray(data[index])


_POOL_LOCK = threading.Lock()
_POOLS: dict[int, ThreadPoolExecutor] = {}  # by number of threads
_IN_POOL = threading.local()  # .active is True on the pools' own threads


def _mark_pool_thread() -> None:
    _IN_POOL.active = True


def _forget_pools_in_child() -> None:
    """After a fork: the parent's threads are not in the child, and its lock may have
    been held by one of them at the fork."""
    global _POOL_LOCK
    _POOL_LOCK = threading.Lock()
    _POOLS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools_in_child)


def _frame_pool(workers: int) -> ThreadPoolExecutor:
    """The process's frame threads (``workers`` of them), started once and kept.

    Starting two threads for every loop cost about 1 ms each time (their first tasks
    run on fresh threads): a registration of 10 frames runs 6-8 loops, a tenth of its
    time. A forked child starts its own (:func:`_forget_pools_in_child`: it has none of
    the parent's threads); a loop asking for another number of threads gets a pool of
    its own, so that no pool is ever shut down under a loop still using it.
    """
    with _POOL_LOCK:
        if workers not in _POOLS:
            _POOLS[workers] = ThreadPoolExecutor(max_workers=workers,
                                                 thread_name_prefix="nanosims",
                                                 initializer=_mark_pool_thread)
        return _POOLS[workers]


def map_frames(function: Callable[[int], Any], n_frames: int,
               workers: int | None = None) -> Iterator[Any]:
    """Yield ``function(0), function(1), ...`` in order, computed on several threads.

    At most two tasks per thread are in flight, so stopping the iteration early
    (closing the generator) leaves little work behind: what has not started is
    cancelled, and what has is waited for, so no task outlives the loop. numpy releases
    the GIL in its array loops, which is where the time goes. Called from one of the
    frame threads themselves (a lazily moved frame read inside a frame task), it runs
    on that thread: waiting there for the same threads could deadlock.
    """
    workers = workers or worker_count()
    if workers == 1 or n_frames <= 1 or getattr(_IN_POOL, "active", False):
        for index in range(n_frames):
            yield function(index)
        return
    pool = _frame_pool(workers)
    pending: deque = deque()
    next_index = 0
    try:
        while next_index < n_frames or pending:
            while next_index < n_frames and len(pending) < 2 * workers:
                pending.append(pool.submit(function, next_index))
                next_index += 1
            result = pending[0].result()  # still pending if interrupted while waiting
            pending.popleft()
            yield result
    finally:
        for future in pending:
            future.cancel()
        # The started ones: no task may still write once the loop is left. Not on a
        # frame thread (an abandoned loop collected there): it could wait for itself.
        if not getattr(_IN_POOL, "active", False):
            wait(pending)
