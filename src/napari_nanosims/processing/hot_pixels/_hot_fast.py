"""The fused hot-pixel path: which frames it takes, and its per-thread work arrays.

Without numba (an unusual platform) every frame takes the numpy path of
:mod:`.hot_pixels`; the results are the same.
"""

from __future__ import annotations

import functools
import numbers
import threading
import types

import numpy as np

from .median import _work_dtype

__all__ = ["kernel_applies", "kernel_candidates", "replace_at", "kernel"]


@functools.lru_cache(maxsize=1)
def kernel():
    """The compiled kernels' module, imported on first use (numba takes a tenth of a
    second to import: not at ``import napari_nanosims``); None without numba."""
    try:
        from . import _hot_kernel
    except ImportError:  # pragma: no cover - numba is a dependency
        return None
    return _hot_kernel


def replace_at(image, hot_mask, flat, values) -> None:
    """:func:`._hot_kernel.replace_at` (the caller checks :func:`kernel` first)."""
    kernel().replace_at(image, hot_mask, flat, values)


def kernel_applies(dtype: np.dtype, outlier_factor, min_count) -> bool:
    """The fused kernel's float64 test is the seed's exactly: integer counts, a float factor."""
    # numba compiles native byte order only: a big-endian stack takes the numpy path.
    return (dtype.kind in "ui" and dtype.isnative and kernel() is not None
            and isinstance(outlier_factor, (float, np.float64))
            and isinstance(min_count, (numbers.Real,)) and not isinstance(min_count, bool)
            and type(min_count) in (int, float, np.float64))


# Per thread: the kernel's work arrays, reused from frame to frame and freed after each
# run (release_scratch): the frame threads live as long as the process, and at 512² with
# seven detectors a thread's arrays are 11 MiB.
_scratches: dict[int, types.SimpleNamespace] = {}
_scratches_lock = threading.Lock()


def _thread_scratch() -> types.SimpleNamespace:
    with _scratches_lock:
        return _scratches.setdefault(threading.get_ident(), types.SimpleNamespace())


def release_scratch() -> None:
    """Free every thread's work arrays (a thread still in a frame keeps its own until
    that frame is done)."""
    with _scratches_lock:
        _scratches.clear()


def _scratch_arrays(images, wide: bool = False):
    """The calling thread's work arrays for a frame like ``images`` (reused, zeroed).

    Medians are kept as uint16 (NanoSIMS counts per pixel and frame stay far below
    65536; half the memory of 32-bit counts) unless ``wide``: then in the counts' type.
    """
    medians_type = images.dtype if wide or images.dtype.itemsize <= 2 else np.dtype(np.uint16)
    key = (images.shape, medians_type.str)
    _scratch = _thread_scratch()
    if getattr(_scratch, "key", None) != key:
        height, width = images.shape[1:]
        _scratch.key = key
        _scratch.votes = np.empty((height, width), np.uint8)
        _scratch.nonzero = np.empty((height, width), np.uint8)
        _scratch.medians = np.empty(images.shape, medians_type)
    _scratch.votes.fill(0)
    _scratch.nonzero.fill(0)
    return _scratch.votes, _scratch.nonzero, _scratch.medians


def _sink(images):
    _scratch = _thread_scratch()
    if getattr(_scratch, "sink_key", None) != (images.shape, images.dtype.str):
        _scratch.sink_key = (images.shape, images.dtype.str)
        _scratch.sink = np.empty_like(images)
    return _scratch.sink


def kernel_candidates(images, num_outliers, outlier_factor, min_count, num_nonzero,
                      copy_to=None):
    """Seed steps 1-4 for one frame with the fused kernel (3 x 3 window); the frame is
    also copied into ``copy_to`` when given (a C-contiguous array of its dtype)."""
    images = np.ascontiguousarray(images)
    fused = (copy_to is not None and copy_to.dtype == images.dtype
             and copy_to.flags.c_contiguous and copy_to.shape == images.shape)
    if copy_to is not None and not fused:
        copy_to[...] = images
    # Without a target of its own, the kernel's copy goes to a per-thread scratch frame.
    target = copy_to if fused else _sink(images)
    votes, nonzero, medians = _scratch_arrays(images)
    compiled = kernel()
    smallest, largest = compiled.frame_votes(images, float(outlier_factor), float(min_count),
                                             votes, nonzero, medians, target)
    if medians.dtype != images.dtype and (smallest < 0 or largest > 65535):
        # Counts beyond 16 bits: the stored medians were cut; again with wide ones.
        votes, nonzero, medians = _scratch_arrays(images, wide=True)
        compiled.frame_votes(images, float(outlier_factor), float(min_count), votes, nonzero,
                             medians, target)
    candidates = (votes >= num_outliers) & (nonzero >= num_nonzero)
    flat = np.flatnonzero(candidates)
    if candidates.size < 2**31:
        flat = flat.astype(np.int32)  # kept for every frame until the end: keep it small
    values = medians.reshape(images.shape[0], -1)[:, flat]
    # The smallest type that holds them (medians never exceed the frame's counts).
    return candidates, flat, values.astype(_work_dtype(values), copy=False), None
