"""Fused per-frame kernels of the sub-pixel passes (numba, the GIL released).

A refinement pass does, per frame, three FFTs and about twenty whole-canvas numpy
operations around them (the frame moved in Fourier space, the common weight of frame
and reference, their cross spectrum; the diagnostics' derivative spectra and weighted
sums). Each numpy operation is a pass through memory and a temporary, and the Python
between them holds the interpreter lock the two frame threads share. Here each group
is one loop over the canvas, in single precision as the numpy formulas of
:mod:`._kernels` (their twins, same arguments); sums are taken in double precision,
in any order (LLVM vectorises them). :mod:`._kernels` chooses between the numpy
formulas, these and their C twins (``_canvas.c``): these only where the C ones were not
built at install (loading numba costs about 0.5 s per process).
"""

from __future__ import annotations

import numpy as np

from ..._cache import use_user_numba_cache

# cache=True below: the compiled kernels go to the user cache, not into this package.
use_user_numba_cache()

import numba  # noqa: E402 - after the cache folder is chosen

#: The sums may be reordered (vectorised): 2.4x faster, in double precision.
_SUMS = {"reassoc"}

__all__ = ["shift_spectrum", "add_shifted", "weigh", "cross_spectrum",
           "derivative_spectra", "weighted_power", "gradient_moments"]


@numba.njit(nogil=True, cache=True)
def shift_spectrum(spectrum, row_phase, column_phase, out):
    """:func:`._kernels.shift_spectrum` in one loop."""
    for i in range(spectrum.shape[0]):
        row = row_phase[i]
        for j in range(spectrum.shape[1]):
            out[i, j] = spectrum[i, j] * (row * column_phase[j])
    return out


@numba.njit(nogil=True, cache=True)
def add_shifted(total, spectrum, row_phase, column_phase, sign):
    """:func:`._kernels.add_shifted` in one loop."""
    for i in range(spectrum.shape[0]):
        row = row_phase[i]
        for j in range(spectrum.shape[1]):
            moved = spectrum[i, j] * (row * column_phase[j])
            if sign > 0:
                total[i, j] += moved
            else:
                total[i, j] -= moved


@numba.njit(nogil=True, cache=True, fastmath=_SUMS)
def weigh(summed, coverage, mine, placed, exclude, want_noise, frame_part, reference,
          noise):
    """:func:`._kernels.weigh` in one loop."""
    zero, one = np.float32(0.0), np.float32(1.0)
    total_weight = 0.0
    reference_weight = 0.0
    frame_weight = 0.0
    for i in range(summed.shape[0]):
        for j in range(summed.shape[1]):
            summed_here, covered, window = summed[i, j], coverage[i, j], placed[i, j]
            if exclude:
                summed_here = summed_here - mine[i, j]
                covered = covered - window
            # summed / max(coverage, 1) is the mean times min(coverage, 1): continuous
            # where the coverage runs out, as the same factor on the frame.
            weight = min(max(covered, zero), one)
            scale = window / max(covered, one)
            value = summed_here * scale
            reference[i, j] = value
            frame_part[i, j] = mine[i, j] * weight
            total_weight += window * weight
            reference_weight += value * weight
            frame_weight += frame_part[i, j] * weight
            if want_noise:
                noise[i, j] = scale * scale * max(covered, zero)
    if total_weight > 0:
        # Levels matched under the common weight, the frame's as the reference's.
        reference_level = np.float32(reference_weight / total_weight)
        frame_level = np.float32(frame_weight / total_weight)
        for i in range(summed.shape[0]):
            for j in range(summed.shape[1]):
                covered = coverage[i, j] - placed[i, j] if exclude else coverage[i, j]
                common = placed[i, j] * min(max(covered, zero), one)
                reference[i, j] -= reference_level * common
                frame_part[i, j] -= frame_level * common
    return total_weight


@numba.njit(nogil=True, cache=True)
def cross_spectrum(frame_spectrum, reference_spectrum, smoothing, out):
    """:func:`._kernels.cross_spectrum` in one loop."""
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = (frame_spectrum[i, j].conjugate() * reference_spectrum[i, j]
                         * smoothing[i, j])
    return out


@numba.njit(nogil=True, cache=True)
def derivative_spectra(spectrum, row_phase, column_phase, omega_y, omega_x, smoothing,
                       out_y, out_x):
    """:func:`._kernels.derivative_spectra` in one loop."""
    for i in range(spectrum.shape[0]):
        row = row_phase[i]
        along_y = np.complex64(1j * omega_y[i])
        for j in range(spectrum.shape[1]):
            value = spectrum[i, j] * (row * column_phase[j]) * smoothing[i, j]
            out_y[i, j] = value * along_y
            out_x[i, j] = value * np.complex64(1j * omega_x[j])


@numba.njit(nogil=True, cache=True, fastmath=_SUMS)
def weighted_power(spectrum, weights):
    """:func:`._kernels.weighted_power` in one loop."""
    total = 0.0
    for i in range(spectrum.shape[0]):
        for j in range(spectrum.shape[1]):
            value = spectrum[i, j]
            total += weights[i, j] * (value.real * value.real + value.imag * value.imag)
    return total


@numba.njit(nogil=True, cache=True, fastmath=_SUMS)
def gradient_moments(weight, scale, gradient_y, gradient_x):
    """:func:`._kernels.gradient_moments` in one loop."""
    yy = yx = xx = 0.0
    for i in range(weight.shape[0]):
        for j in range(weight.shape[1]):
            w = max(weight[i, j], 0.0) * scale
            gy, gx = gradient_y[i, j], gradient_x[i, j]
            yy += w * gy * gy
            yx += w * gy * gx
            xx += w * gx * gx
    return yy, yx, xx
