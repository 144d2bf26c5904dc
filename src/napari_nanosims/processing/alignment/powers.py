"""Power spectra for the band choice (:mod:`.weighting`): the frames' own, and white
noise's share of each ring of equal frequency, measured once per window, canvas and
background removal and kept on disk (the first call in a fresh process then reads it
instead of measuring it: 6-40 ms against 0.06-0.34 s at 256² and 0.23-0.77 s at
512² on a 2-core machine).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..._cache import load_cached_array, store_cached_array
from ..._version import __version__
from .._frames import map_frames

__all__ = ["NOISE_REALISATIONS"]

#: Frames of white noise whose power spectra give the noise's share of each ring.
NOISE_REALISATIONS = 32
#: Changed whenever the noise shapes are measured otherwise (the disk copies of the
#: old ones are then never read again).
NOISE_SHAPES_VERSION = 1
_noise_shapes_cache: dict = {}
_noise_shapes_lock = threading.Lock()


def _frame_powers(counts: np.ndarray, window: np.ndarray, shape: tuple[int, int],
                  background_fn, high_passes: Sequence[float]) -> list[np.ndarray]:
    """A frame's power spectrum after each background removal of ``high_passes`` (px;
    inf: none), done on the frame itself as the registration does it (in real space,
    before the window: near the frame's edges and where the scene is sparse its effect
    is not a filter on the spectrum), flattened over the half spectrum."""
    import scipy.fft

    window_sum = max(float(window.sum(dtype=np.float64)), 1e-30)
    # window x (counts - background - level), with the product of window and counts
    # taken once for all the removals asked for (few passes over the frame).
    windowed = window * counts
    powers = []
    for high_pass in high_passes:
        if np.isfinite(high_pass):
            removed = window * background_fn(counts, high_pass)
            image = np.subtract(windowed, removed, out=removed)
        else:
            image = windowed.copy()
        level = float(image.sum(dtype=np.float64)) / window_sum
        image -= np.float32(level) * window
        spectrum = scipy.fft.rfft2(image, s=shape, workers=1)
        # |spectrum|^2 in place: the real and imaginary parts squared, then paired.
        parts = spectrum.view(spectrum.real.dtype)  # (re, im) pairs along the last axis
        np.square(parts, out=parts)
        powers.append((parts[:, 0::2] + parts[:, 1::2]).ravel())
    return powers


def _summed_powers(frame_of, count: int, window: np.ndarray, shape: tuple[int, int],
                   background_fn, high_passes: Sequence[float]) -> list[np.ndarray]:
    """:func:`_frame_powers` summed over the frames ``frame_of(0 .. count - 1)`` (float32
    images), computed on the frame threads (and summed in order)."""
    totals = [np.zeros(shape[0] * (shape[1] // 2 + 1)) for _ in high_passes]
    for powers in map_frames(lambda index: _frame_powers(frame_of(index), window, shape,
                                                         background_fn, high_passes), count):
        for total, power in zip(totals, powers, strict=True):
            total += power
    return totals


def _ring_means(grid: Any, values: np.ndarray) -> np.ndarray:
    """The mean of ``values`` (flattened over the half spectrum) over each ring of the
    :class:`.weighting._Grid` ``grid``."""
    return (np.bincount(grid.ring, values, minlength=grid.ring_count.size)
            / np.maximum(grid.ring_count, 1))


def _noise_shapes(window: np.ndarray, shape: tuple[int, int], background_fn, grid: Any,
                  high_passes: Sequence[float]) -> dict[float, np.ndarray]:
    """Mean power of white noise per ring, after each background removal of
    ``high_passes`` and the window, in units of its mean power in the noise band (an
    array of rings per removal).

    The background removal is not a filter on the spectrum of the windowed frame: the
    window spreads every frequency over its neighbours, so near zero frequency, where a
    removal leaves almost nothing, the noise from the frequencies around is most of the
    power (2-6 times what the removal's own response leaves in the lowest rings of a
    256 px frame, 8 and 16 px). Measured on frames of white noise, processed as the
    frames are (a fixed seed: the same shapes every time), once per window, canvas and
    removal: a removal's only when its spectra are measured (rarely: see
    :data:`.weighting.MEASURE_REMOVALS_BELOW`), which keeps them out of the first call.
    Kept in memory for the process and on disk for later processes
    (:func:`napari_nanosims._cache.load_cached_array`): the same numbers, read instead
    of measured.
    """
    import hashlib

    digest = hashlib.blake2b(window.tobytes(), digest_size=16).digest()
    key = (shape, window.shape, id(background_fn), digest)
    with _noise_shapes_lock:
        known = _noise_shapes_cache.pop(key, {})
        _noise_shapes_cache[key] = known  # the most recently used go last, the oldest first
        while len(_noise_shapes_cache) > 4:
            _noise_shapes_cache.pop(next(iter(_noise_shapes_cache)))
        missing = tuple(h for h in high_passes if h not in known)
    if missing:
        shapes = _read_or_measure(window, shape, background_fn, grid, missing, digest)
        with _noise_shapes_lock:  # frame threads and patch threads may both be here
            known.update(shapes)
    return {high_pass: known[high_pass] for high_pass in high_passes}


def _white_noise(shape: tuple[int, int]):
    """The white-noise frames the shapes are measured on: ``frame(index)``, float32 of
    ``shape``, the same numbers every time (a fixed seed)."""
    seeds = np.random.SeedSequence(0).spawn(NOISE_REALISATIONS)

    def frame(index: int) -> np.ndarray:
        return np.random.default_rng(seeds[index]).standard_normal(shape, dtype=np.float32)

    return frame


def _read_or_measure(window: np.ndarray, shape: tuple[int, int], background_fn, grid: Any,
                     high_passes: tuple, window_digest: bytes) -> dict[float, np.ndarray]:
    """The noise shapes of ``high_passes`` (none known in memory): those an earlier
    process kept on disk read, the others measured together (one white-noise frame
    serves every removal) and kept."""
    import hashlib

    import scipy

    noise = _white_noise(window.shape)
    # What the numbers depend on, in the key: the window, the canvas, the grid's rings,
    # the removal and the libraries by name and version, and the first noise frame's
    # power spectra as measured here and now (1/32 of the work): a change of the
    # background's code, of an FFT or a BLAS on another processor changes them, so a
    # file is only read where it holds exactly what would be measured.
    canaries = [hashlib.blake2b(power.tobytes(), digest_size=16).digest() for power
                in _frame_powers(noise(0), window, shape, background_fn, high_passes)]
    rings = hashlib.blake2b(grid.ring.tobytes() + grid.noise_band.tobytes(),
                            digest_size=16).digest()
    common = (shape, window.shape, window_digest, rings,
              f"{background_fn.__module__}.{background_fn.__qualname__}",
              NOISE_REALISATIONS, NOISE_SHAPES_VERSION, __version__, np.__version__,
              scipy.__version__)
    keys = {high_pass: ("noise-shape", float(high_pass), canary) + common
            for high_pass, canary in zip(high_passes, canaries, strict=True)}
    shapes = {}
    for high_pass, key in keys.items():
        stored = load_cached_array("alignment", key, (grid.ring_count.size,))
        if stored is not None:
            shapes[high_pass] = stored
    left = tuple(h for h in high_passes if h not in shapes)
    if left:
        for high_pass, total in zip(left, _summed_powers(
                noise, NOISE_REALISATIONS, window, shape, background_fn, left), strict=True):
            shapes[high_pass] = (_ring_means(grid, total)
                                 / max(float(np.mean(total[grid.noise_band])), 1e-300))
            store_cached_array("alignment", keys[high_pass], shapes[high_pass])
    for shape_of_ring in shapes.values():
        shape_of_ring.flags.writeable = False  # shared by every later call
    return shapes
