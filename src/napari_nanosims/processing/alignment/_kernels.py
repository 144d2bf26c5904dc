"""The whole-canvas arithmetic of the sub-pixel passes, as numpy formulas, and the
choice between them and their compiled twins.

The twins do the same in one loop each with the interpreter lock released: about 20 %
less time per frame at 256² and 512² (``benchmarks/bench_alignment.py``). There are two:

- :mod:`._canvas`, in C, built at install where a C compiler is found (``setup.py``, an
  optional extension). It loads in about a millisecond, so every registration uses it.
- :mod:`._fused`, in numba, where the C ones were not built. Loading them costs about
  0.5 s once per process, numba's own start (its typing tables, scipy.linalg), even
  from the disk cache; more than they save on a small stack. So a registration uses
  them when its work (frames times the padded canvas's pixels) pays for loading them,
  :data:`FUSED_MIN_WORK`, and these formulas otherwise.

The choice depends on the stack and the installation alone, never on what ran before
in the process, so that a file gives the same result in a fresh process, in a session
and in a batch of any order (the three agree only to single-precision rounding, not
bit for bit: sums are taken in another order, and a translation rounded to 0.01 px can
fall the other way at a tie).

Every function writes into ``out`` arrays given by the caller (as the twins).
"""

from __future__ import annotations

import importlib
import sys
import threading
from types import ModuleType

import numpy as np


def _import_compiled() -> ModuleType | None:
    """The C kernels (:mod:`._canvas`), or None where they were not built."""
    try:
        return importlib.import_module(f"{__package__}._canvas")
    except ImportError:  # built without a C compiler: numba and numpy (see above)
        return None


#: The C kernels, or None where they were not built at install.
compiled_kernels = _import_compiled()

__all__ = ["FUSED_MIN_WORK", "choose", "compiled_kernels", "load_fused", "shift_spectrum",
           "add_shifted", "weigh", "cross_spectrum", "derivative_spectra", "weighted_power",
           "gradient_moments"]

#: Without the C kernels: frames times padded canvas pixels from which a registration
#: loads the fused (numba) kernels, about 155 frames of 256² (a 320² canvas), 40 of 512²
#: (640²). There the time they save (20 %: 3.5 ms a frame at 256², 11.5 ms at 512², on
#: a 2-core machine whose one FFT correlation takes 2.3 ms at 256²) passes the 0.5 s of
#: loading them.
FUSED_MIN_WORK = 1.6e7

_fused: ModuleType | None = None
_lock = threading.Lock()


def load_fused() -> ModuleType | None:
    """Load the fused kernels (numba) for this process; None when numba cannot be
    imported. Returns the module whose functions :func:`choose` hands out."""
    global _fused
    with _lock:
        if _fused is None:
            try:
                from . import _fused as fused
            except ImportError:  # pragma: no cover - numba is a dependency
                return None
            _fused = fused
    return _fused


def choose(work: float) -> ModuleType:
    """The kernels for ``work`` (frames x canvas pixels): the C ones where they were
    built; else the fused ones from :data:`FUSED_MIN_WORK` on (loaded then if not yet),
    and these numpy formulas below it."""
    if compiled_kernels is not None:
        return compiled_kernels
    fused = load_fused() if work >= FUSED_MIN_WORK else None
    return fused if fused is not None else sys.modules[__name__]


def shift_spectrum(spectrum, row_phase, column_phase, out):
    """``out = spectrum * outer(row_phase, column_phase)`` (``out`` may be ``spectrum``)."""
    return np.multiply(spectrum, np.multiply.outer(row_phase, column_phase), out=out)


def add_shifted(total, spectrum, row_phase, column_phase, sign):
    """``total += sign * spectrum * outer(row_phase, column_phase)``, in place."""
    moved = shift_spectrum(spectrum, row_phase, column_phase, None)
    if sign > 0:
        total += moved
    else:
        total -= moved


def weigh(summed, coverage, mine, placed, exclude, want_noise, frame_part, reference,
          noise):
    """Frame and reference under their common weight, into ``frame_part`` and
    ``reference`` (and the reference's variance into ``noise`` when ``want_noise``);
    see ``_Sums.correlate``. With ``exclude`` the frame (``mine``, at ``placed``) is
    taken out of the sums first. Returns the total weight (the frame's window times
    the coverage up to one frame)."""
    if exclude:
        summed, coverage = summed - mine, coverage - placed
    # summed / max(coverage, 1) is the mean times min(coverage, 1): continuous where
    # the coverage runs out, as the same factor on the frame.
    weight = np.clip(coverage, 0.0, 1.0)
    scale = placed / np.maximum(coverage, 1.0)
    np.multiply(summed, scale, out=reference)
    np.multiply(mine, weight, out=frame_part)
    # Levels matched under the common weight, the frame's as the reference's: its level
    # is zero under its own window, not where the others' coverage runs out (one frame
    # as the reference: its taper), and a level left there biased the fixed point.
    total_weight = float(np.vdot(placed, weight))
    if total_weight > 0:
        common = placed * weight
        reference -= (float(np.vdot(reference, weight)) / total_weight) * common
        frame_part -= (float(np.vdot(frame_part, weight)) / total_weight) * common
    if want_noise:
        np.multiply(scale * scale, np.maximum(coverage, 0.0), out=noise)
    return total_weight


def cross_spectrum(frame_spectrum, reference_spectrum, smoothing, out):
    """``out = conj(frame_spectrum) * reference_spectrum * smoothing``."""
    np.conj(frame_spectrum, out=out)
    out *= reference_spectrum
    out *= smoothing
    return out


def derivative_spectra(spectrum, row_phase, column_phase, omega_y, omega_x, smoothing,
                       out_y, out_x):
    """The spectra of the smoothed image's derivatives along rows and columns, the image
    moved by the phase factors first: ``spectrum * phase * smoothing`` times ``1j *
    omega_y`` (per row) into ``out_y`` and ``1j * omega_x`` (per column) into ``out_x``."""
    value = shift_spectrum(spectrum, row_phase, column_phase, None)
    value *= smoothing
    np.multiply(value, (1j * omega_y[:, None]).astype(np.complex64), out=out_y)
    np.multiply(value, (1j * omega_x[None, :]).astype(np.complex64), out=out_x)


def weighted_power(spectrum, weights):
    """``sum(weights * |spectrum|^2)``."""
    weighted = (spectrum * np.sqrt(weights)).ravel()
    return float(np.vdot(weighted, weighted).real)


def gradient_moments(weight, scale, gradient_y, gradient_x):
    """``sum(w gy gy), sum(w gy gx), sum(w gx gx)`` with ``w = scale * max(weight, 0)``,
    over ``weight``'s rows and columns (the gradients may be larger: the canvas)."""
    rows, cols = weight.shape
    w = (np.maximum(weight, 0) * np.float32(scale)).ravel()
    gy, gx = gradient_y[:rows, :cols].ravel(), gradient_x[:rows, :cols].ravel()
    weighted_y = w * gy
    return (float(np.dot(weighted_y, gy)), float(np.dot(weighted_y, gx)),
            float(np.dot(w * gx, gx)))
