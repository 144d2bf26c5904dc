"""Frame alignment (drift correction): the seed's integer method and a sub-pixel one.

Translations are what to apply to each frame to align it, as (rows, columns) in
pixels, median-centred so that the median frame does not move. Applying a
translation ``t`` moves content from pixel ``p`` to ``p + t``.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Generator
from typing import Any, cast

import numpy as np

from ..._checks import check_number
from ..._errors import ShiftBeyondPaddingWarning
from .._frames import check_stack, frame, map_frames, run_to_completion
from .region import check_region as _check_region
from .registration import MAX_PASSES, FrameRegistration, iter_register
from .shifts import _check_padding, apply_translations, iter_apply_translations, translation_matrix

__all__ = [
    "infer_translations",
    "iter_infer_translations",
    "apply_translations",
    "iter_apply_translations",
    "translation_matrix",
    "translation_steps",
    "register_frames",
    "iter_register_frames",
    "FrameRegistration",
    "ShiftBeyondPaddingWarning",
]

METHODS = ("sequential", "subpixel", "piecewise")
MAX_UPSAMPLE_FACTOR = 1000  # 1/1000 px is far below any NanoSIMS registration error
#: Bounds of upsample_factor, checked here; the align step's parameter declares these.
UPSAMPLE_BOUNDS: dict[str, Any] = dict(kind=int, minimum=1, maximum=MAX_UPSAMPLE_FACTOR)


def _seed_correlation_peak(aggregate: np.ndarray, padded: np.ndarray) -> tuple[int, int]:
    """The seed's peak search, operation for operation (complex FFTs, complex argmax)."""
    flipped_spectrum = np.fft.fft2(padded[::-1, ::-1])
    correlation = np.fft.fftshift(np.fft.ifft2(np.fft.fft2(aggregate) * flipped_spectrum))
    row, col = np.unravel_index(np.argmax(correlation), correlation.shape)
    # The flip puts the zero-shift peak one pixel before the centre.
    return (int(row - (correlation.shape[0] // 2 - 1)),
            int(col - (correlation.shape[1] // 2 - 1)))


def _fast_correlation_peak(aggregate_spectrum: np.ndarray, frame_spectrum: np.ndarray,
                           shape: tuple[int, int], error_bound: float) -> tuple[int, int] | None:
    """The same peak from real FFTs, or None when only the seed's arithmetic can decide.

    With integer counts every correlation value is a whole number, so any FFT whose
    rounding error stays below ``error_bound`` < 0.25 finds the seed's peak whenever
    that peak is unique. When another value comes within 0.75 of the maximum (a tie,
    or too close to tell), the seed's choice depends on its own rounding noise, and
    the caller falls back to the seed's exact computation.
    """
    if error_bound >= 0.25:
        return None
    correlation = np.fft.irfft2(aggregate_spectrum * frame_spectrum.conj(), s=shape)
    flat = int(np.argmax(correlation))
    peak = correlation.flat[flat]
    if abs(peak - np.rint(peak)) > 0.25 or np.count_nonzero(correlation > peak - 0.75) != 1:
        return None
    # Lag r (mod n) as the seed reports it: in the range 1 - n//2 .. n - n//2.
    lags = np.unravel_index(flat, shape)
    return cast("tuple[int, int]", tuple(int((lag + n // 2 - 1) % n - (n // 2 - 1))
                                         for lag, n in zip(lags, shape, strict=True)))


def _shift_phase(shape: tuple[int, int], shift: tuple[int, int]) -> np.ndarray:
    """rfft2 phase factor of a cyclic shift by ``shift`` pixels."""
    rows = np.exp(-2j * np.pi * np.fft.fftfreq(shape[0]) * shift[0])
    cols = np.exp(-2j * np.pi * np.fft.rfftfreq(shape[1]) * shift[1])
    return rows[:, None] * cols[None, :]


# Relative rounding error of a float64 FFT correlation, generously: a value's error
# stays below this times (sum of the running sum) x (sum of the frame).
_FFT_RELATIVE_ERROR = 64 * np.finfo(np.float64).eps


def _sequential(data, padding: int) -> Generator[int, None, np.ndarray]:
    """The seed's integer method: FFT cross-correlation against the running sum.

    Results are identical to the seed's: each peak is found with real FFTs when the
    counts make that exact (frame spectra computed ahead on all cores, the running
    sum's spectrum updated by phase factors), and with the seed's own arithmetic
    otherwise (ties, or counts so large that rounding could decide). The running sum
    is exact 64-bit integers, so 16-bit input cannot overflow as it does in the seed.
    """
    n_frames = data.shape[0]
    pad = [(padding, padding), (padding, padding)]
    dtype = np.asarray(data[:0]).dtype
    # 64-bit integers can hold values (up to 2**64) whose running sum no 64-bit integer
    # holds: they are summed as float64, like fractional counts.
    wide = dtype.kind in "ui" and dtype.itemsize >= 8
    integer_counts = dtype.kind in "ui" and not wide

    def prepare(index):
        padded = np.pad(frame(data, index), pad)
        spectrum = np.fft.rfft2(padded.astype(np.float64)) if integer_counts else None
        return padded, spectrum, float(padded.sum(dtype=np.float64))

    translations: list[tuple[int, int]] = []
    aggregate = aggregate_spectrum = None
    aggregate_total = 0.0
    pending: list[int] = []  # frames not yet added to the exact running sum
    for index, (padded, spectrum, total) in enumerate(map_frames(prepare, n_frames)):
        peak = (0, 0)
        if index == 0:
            # Whole counts sum exactly in 64 bits; other numbers in their own type, as the
            # seed does (its running sum is the padded first frame itself).
            aggregate = padded.astype(np.int64 if integer_counts or padded.dtype.kind == "b"
                                      else np.float64 if wide else padded.dtype)
            aggregate_spectrum = spectrum
        else:
            found = None
            if integer_counts:
                assert aggregate_spectrum is not None  # set with frame 0's spectrum
                found = _fast_correlation_peak(aggregate_spectrum, spectrum, padded.shape,
                                               _FFT_RELATIVE_ERROR * aggregate_total * total)
            if found is None:
                assert aggregate is not None  # set from frame 0
                # The exact running sum is brought up to date only when it is needed.
                for earlier in pending:
                    aggregate += np.roll(np.pad(frame(data, earlier), pad), translations[earlier],
                                         (0, 1))
                pending.clear()
                found = _seed_correlation_peak(aggregate, padded)
            peak = found
            pending.append(index)
            if integer_counts:
                aggregate_spectrum = aggregate_spectrum + spectrum * _shift_phase(
                    padded.shape, peak)
        aggregate_total += total
        translations.append(peak)
        yield index + 1
    result = np.asarray(translations, dtype=np.int64)
    result -= np.median(result, axis=0).astype(int)
    return result


def _check_reference(reference, n_frames: int):
    if isinstance(reference, bool) or reference is not None and not (
            isinstance(reference, numbers.Integral)
            and -n_frames <= reference < n_frames):  # type: ignore[operator]
        raise ValueError(f"reference must be None or a frame index below {n_frames}, "
                         f"not {reference!r}")
    return None if reference is None else int(reference) % n_frames


def _without_offset(data):
    """64-bit integer counts shifted so that the smallest is 0 (exactly, in integers).

    Beyond 2**53 a float64 cannot tell neighbouring integers apart: the structure of a
    stack near uint64's maximum would vanish in the float arithmetic of the correlation.
    A common offset carries no structure, so it is removed first. Other stacks are
    returned as they are.
    """
    if data.dtype.kind not in "ui" or data.dtype.itemsize < 8:
        return data
    values = np.asarray(data)
    if values.size == 0:
        return data
    if int(values.min()) > -2**53 and int(values.max()) < 2**53:
        return data
    if values.dtype.kind == "i":  # order-preserving map onto uint64 (wrapping arithmetic)
        values = values.view(np.uint64) ^ np.uint64(1 << 63)
    return values - values.min()


def _check_finite(data):
    """Refuse NaN and infinite counts: a NaN pixel turns the whole cross-correlation into
    NaN, and the frames then 'align' on noise without a word."""
    if data.dtype.kind not in "fc":
        return data
    bad = ~np.isfinite(np.asarray(data))
    if bad.any():
        frames = np.flatnonzero(bad.any(axis=(1, 2)))
        raise ValueError(f"data hold {int(bad.sum())} NaN or infinite value(s) in frame(s) "
                         f"{', '.join(map(str, frames[:10]))}{'...' if frames.size > 10 else ''}"
                         "; alignment needs finite counts (replace them first, e.g. with "
                         "numpy.nan_to_num, or align before the correction that made them)")
    return data


def _check_common(data, padding, method, upsample_factor, reference):
    data = _without_offset(_check_finite(check_stack(data, ndim=3)))
    padding = _check_padding(padding, data.shape)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    n_frames = data.shape[0]
    if n_frames == 0:
        raise ValueError("data holds no frames")
    reference = _check_reference(reference, n_frames)
    check_number(upsample_factor, "upsample_factor", **UPSAMPLE_BOUNDS)
    if method != "subpixel" and reference is not None:
        raise ValueError("reference applies to method='subpixel' only")
    return data, padding, reference


def iter_register_frames(data, padding=8, method="subpixel", upsample_factor=100,
                         reference=None, region=None, max_passes=MAX_PASSES
                         ) -> Generator[int, None, FrameRegistration]:
    """Generator form of :func:`register_frames`: yields progress steps, returns the result.

    :func:`translation_steps` gives an upper bound of the steps it yields.
    """
    data, padding, reference = _check_common(data, padding, method, upsample_factor,
                                             reference)
    mask = _check_region(region, data.shape[1:])
    if isinstance(max_passes, bool) or not isinstance(max_passes, numbers.Integral) \
            or max_passes < 0:
        raise ValueError(f"max_passes must be a whole number >= 0, not {max_passes!r}")
    if method == "sequential":
        initial = yield from _sequential(data, padding)
        # The seed's translations stay as they are; only the diagnostics are added.
        result = yield from iter_register(data, 1, None, mask, max_passes=0, initial=initial)
        return dataclasses.replace(result, translations=initial.copy(),
                                   measured=initial.astype(np.float64), passes=0)
    if method == "piecewise":
        from .piecewise import iter_register_piecewise

        return (yield from iter_register_piecewise(data, int(upsample_factor), mask))
    return (yield from iter_register(data, int(upsample_factor), reference, mask,
                                     max_passes=int(max_passes)))


def register_frames(data, padding=8, method="subpixel", upsample_factor=100, reference=None,
                    region=None, max_passes=MAX_PASSES) -> FrameRegistration:
    """Infer the drift of a stack with a quality score for every frame.

    Parameters
    ----------
    data : array_like, shape (frames, height, width)
        Counts of the alignment channel (any numeric dtype; lazy arrays are read frame by
        frame).
    padding : int
        Zero padding of the 'sequential' method, pixels.
    method : {'subpixel', 'sequential', 'piecewise'}
        'subpixel' (default here): see :func:`infer_translations`. 'sequential': the
        seed's whole-pixel translations, unchanged, with the diagnostics added.
        'piecewise': 'subpixel', then a smooth displacement field from overlapping
        patches (``displacement_px``; apply it with
        :func:`~napari_nanosims.processing.alignment.warp.apply_displacements`).
    upsample_factor : int
        Translations are rounded to 1 / upsample_factor pixels ('subpixel').
    reference : int or None
        Register every frame against this frame instead of all the others ('subpixel').
    region : None, (top, left, bottom, right), 'top:bottom, left:right' or bool mask (H, W)
        Register on this part of the frame only (pixels, end excluded), so that what
        drifts outside it (a charging artefact, a particle entering) cannot pull the
        result. The region is fixed in the frame's pixels.
    max_passes : int
        Most leave-one-out refinement passes; they stop earlier when no frame moves by
        more than 0.005 px.

    Returns
    -------
    FrameRegistration
        ``translations`` (frames, 2) in pixels as :func:`infer_translations` returns them
        (flagged frames interpolated from their neighbours for 'subpixel'), per-frame
        ``correlation``, ``significance``, ``uncertainty_px`` and ``flagged``, and how the
        refinement converged.
    """
    return run_to_completion(iter_register_frames(data, padding, method, upsample_factor,
                                                  reference, region, max_passes))


def iter_infer_translations(data, padding=8, method="sequential", upsample_factor=100,
                            reference=None, region=None) -> Generator[int, None, np.ndarray]:
    """Generator form of :func:`infer_translations`: yields progress steps, returns the result.

    :func:`translation_steps` gives an upper bound of the steps it yields.
    """
    data, padding, reference = _check_common(data, padding, method, upsample_factor,
                                             reference)
    if method == "sequential":
        if region is not None:
            raise ValueError("region applies to method='subpixel' only")
        return (yield from _sequential(data, padding))
    if method == "piecewise":
        raise ValueError("method='piecewise' gives a displacement field, not translations: "
                         "use register_frames (or the align_frames step)")
    result = yield from iter_register(data, int(upsample_factor), reference,
                                      _check_region(region, data.shape[1:]))
    return result.translations


def translation_steps(n_frames: int, method: str = "sequential", reference=None,
                      diagnostics: bool = False) -> int:
    """Most progress steps :func:`iter_infer_translations` (or, with ``diagnostics``,
    :func:`iter_register_frames`) yields; 'subpixel' may stop early when it converges."""
    if method in ("subpixel", "piecewise"):
        passes = 0 if reference is not None else MAX_PASSES
        # 'piecewise': the rigid registration, then as many steps over the patches.
        return (2 + n_frames * (1 + passes)) * (2 if method == "piecewise" else 1)
    return n_frames + (2 if diagnostics else 0)


def infer_translations(data, padding=8, method="sequential", upsample_factor=100,
                       reference=None, region=None):
    """Infer the translation that aligns each frame of one detector's stack.

    Parameters
    ----------
    data : array_like, shape (frames, height, width)
        Counts of the alignment detector, any numeric dtype the seed takes (lazy arrays
        are read frame by frame).
    padding : int
        Zero padding around each frame for the seed's 'sequential' method, pixels.
    method : {'sequential', 'subpixel'}
        'sequential' is ``openformat.mims.infer_translations`` exactly: whole-pixel
        FFT cross-correlation against the running sum of aligned frames. 'subpixel'
        maximises the smoothed cross-correlation summed over all pairs of frames, to a
        fraction of a pixel, by leave-one-out coordinate ascent until it converges (see
        ``docs/processing.md``); frames that do not register get the translation of
        their neighbours (:func:`register_frames` says which).
    upsample_factor : int
        'subpixel' translations are rounded to 1 / upsample_factor pixels.
    reference : int or None
        Frame to register every frame against ('subpixel' only).
    region : None, rectangle or mask
        Part of the frame to register on ('subpixel' only; see :func:`register_frames`).

    Returns
    -------
    numpy.ndarray, shape (frames, 2)
        (rows, columns) to apply to each frame, pixels, median-centred: int64 for
        'sequential' (median truncated to an integer, as the seed does), float64 for
        'subpixel'.
    """
    return run_to_completion(
        iter_infer_translations(data, padding, method, upsample_factor, reference, region))
