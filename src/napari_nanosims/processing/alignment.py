"""Frame alignment (drift correction): the seed's integer method and a sub-pixel one.

Translations are what to apply to each frame to align it, as (rows, columns) in
pixels, median-centred so that the median frame does not move. Applying a
translation ``t`` moves content from pixel ``p`` to ``p + t``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import warnings
from collections.abc import Generator

import numpy as np

from ._frames import check_stack, frame, map_frames, run_to_completion
from .parameters import parameter
from .registration import (MAX_PASSES, FrameRegistration, check_region as _check_region,
                           iter_register, smoothing_scales)

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

METHODS = ("sequential", "subpixel")


class ShiftBeyondPaddingWarning(UserWarning):
    """A translation is larger than the padding: content leaves the padded frame."""


def _check_padding(padding, shape=None) -> int:
    """A valid padding: a whole number of pixels from 0 to the frame size."""
    if isinstance(padding, bool) or not isinstance(padding, numbers.Integral) or padding < 0:
        raise ValueError(f"padding must be a whole number of pixels >= 0, not {padding!r}")
    if shape is not None and padding > max(shape[-2:]):
        raise ValueError(f"padding must be at most the frame size ({max(shape[-2:])} px); "
                         f"got {padding}")
    return int(padding)


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
    return tuple(int((lag + n // 2 - 1) % n - (n // 2 - 1)) for lag, n in zip(lags, shape))


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
    integer_counts = np.asarray(data[:0]).dtype.kind in "ui"

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
                                      else padded.dtype)
            aggregate_spectrum = spectrum
        else:
            found = None
            if integer_counts:
                found = _fast_correlation_peak(aggregate_spectrum, spectrum, padded.shape,
                                               _FFT_RELATIVE_ERROR * aggregate_total * total)
            if found is None:
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
    translations = np.asarray(translations, dtype=np.int64)
    translations -= np.median(translations, axis=0).astype(int)
    return translations


def _check_reference(reference, n_frames: int):
    if isinstance(reference, bool) or reference is not None and not (
            isinstance(reference, numbers.Integral) and -n_frames <= reference < n_frames):
        raise ValueError(f"reference must be None or a frame index below {n_frames}, "
                         f"not {reference!r}")
    return None if reference is None else int(reference) % n_frames


def _check_common(data, padding, method, upsample_factor, reference):
    data = check_stack(data, ndim=3)
    padding = _check_padding(padding, data.shape)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    n_frames = data.shape[0]
    if n_frames == 0:
        raise ValueError("data holds no frames")
    reference = _check_reference(reference, n_frames)
    parameter("upsample_factor").check(upsample_factor)
    if method == "sequential" and reference is not None:
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
    method : {'subpixel', 'sequential'}
        'subpixel' (default here): see :func:`infer_translations`. 'sequential': the
        seed's whole-pixel translations, unchanged, with the diagnostics added.
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
    result = yield from iter_register(data, int(upsample_factor), reference,
                                      _check_region(region, data.shape[1:]))
    return result.translations


def translation_steps(n_frames: int, method: str = "sequential", reference=None,
                      diagnostics: bool = False) -> int:
    """Most progress steps :func:`iter_infer_translations` (or, with ``diagnostics``,
    :func:`iter_register_frames`) yields; 'subpixel' may stop early when it converges."""
    if method == "subpixel":
        passes = 0 if reference is not None else MAX_PASSES
        return (2 + n_frames * (1 + passes)) * len(smoothing_scales(n_frames, reference))
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


def _check_translations(data, translations) -> np.ndarray:
    translations = np.asarray(translations)
    expected = (data.shape[0], 2)
    if translations.shape != expected:
        raise ValueError(f"translations must have shape {expected} (one (rows, columns) pair "
                         f"per frame); got {translations.shape}")
    if translations.dtype.kind not in "iuf" or not np.all(np.isfinite(translations)):
        raise ValueError("translations must be finite numbers of pixels")
    return translations


def _axis_weights(translation: float) -> list[tuple[int, float]]:
    """A bilinear shift by ``translation`` pixels along one axis, as (move, weight) pairs.

    Content at pixel ``q`` goes to ``q + k`` with weight ``1 - f`` and to ``q + k + 1``
    with weight ``f`` (``k`` the whole pixels below the translation, ``f`` the fraction
    left); a zero weight is left out, so a whole-pixel translation is one exact move.
    """
    whole = math.floor(translation)
    fraction = float(translation) - whole
    return [(move, weight) for move, weight in ((whole, 1.0 - fraction), (whole + 1, fraction))
            if weight > 0.0]


def _overlap(start: int, length: int, size: int) -> tuple[slice, slice] | None:
    """Where ``length`` pixels placed from ``start`` land in ``size`` pixels: (target
    slice, source slice), or None when none of them does (the rest is dropped)."""
    first, stop = max(start, 0), min(start + length, size)
    if first >= stop:
        return None
    return slice(first, stop), slice(first - start, stop - start)


def _place(images: np.ndarray, translation, target: np.ndarray, origin: int,
           power: int) -> None:
    """Add ``images`` (detectors, H, W) moved by ``translation`` into ``target`` (zeros).

    ``origin`` is where the images' pixel (0, 0) sits in ``target`` before the move
    (the padding, or 0 for the frame's own size). The bilinear weights are raised to
    ``power``; whatever lands outside ``target`` is dropped, never wrapped around.
    """
    height, width = images.shape[-2:]
    for row_move, row_weight in _axis_weights(translation[0]):
        rows = _overlap(origin + row_move, height, target.shape[-2])
        for col_move, col_weight in _axis_weights(translation[1]):
            cols = _overlap(origin + col_move, width, target.shape[-1])
            if rows is None or cols is None:
                continue
            inside, source = (slice(None), rows[0], cols[0]), (slice(None), rows[1], cols[1])
            weight = (row_weight * col_weight) ** power
            if weight == 1.0:  # a whole-pixel move, the only one: exact, in any dtype
                target[inside] = images[source]
            else:  # a strong float64 scalar: float32 input still adds in float64
                target[inside] += np.float64(weight) * images[source]


def translation_matrix(translation, size: int, *, target_size: int | None = None,
                       origin: int = 0):
    """One axis of a translation as a linear map: the moved line is ``M @ line``.

    A translation is separable, so a frame moved by ``(t_rows, t_columns)`` as
    :func:`apply_translations` moves it is ``R @ frame @ C.T``, with ``R`` and ``C``
    this matrix for ``t_rows`` and ``t_columns``. Then any linear function of the moved
    pixels (a box sum, say) is a known weighting of the unmoved ones, and its variance
    the squared weights times their variances (independent counts).

    Parameters
    ----------
    translation : float
        The translation along this axis, pixels (content moves from ``p`` to ``p + t``).
    size : int
        Pixels of the line before the move.
    target_size : int, optional
        Pixels of the line after the move: ``size`` (the default) for the frames'
        own size (``crop``, as the ``align_frames`` step keeps them), ``size + 2 *
        padding`` for :func:`apply_translations`' padded frames.
    origin : int
        Where pixel 0 of the line sits in the target before the move, pixels: 0 with
        ``crop``, the padding otherwise.

    Returns
    -------
    scipy.sparse.csr_array, shape (target_size, size)
        ``M[q + k, q] = 1 - f`` and ``M[q + k + 1, q] = f`` (``k`` the whole pixels
        below ``origin + translation``, ``f`` the fraction left), the weights of
        :func:`apply_translations`; rows past the target's ends are left out (content
        moved out is dropped, never wrapped), and a zero weight is no entry.
    """
    from scipy import sparse

    for name, value, low in (("size", size, 1), ("target_size", target_size, 1)):
        if value is not None and (isinstance(value, bool) or not isinstance(
                value, numbers.Integral) or value < low):
            raise ValueError(f"{name} must be a whole number of pixels >= {low}, "
                             f"not {value!r}")
    if isinstance(origin, bool) or not isinstance(origin, numbers.Integral):
        raise ValueError(f"origin must be a whole number of pixels, not {origin!r}")
    if isinstance(translation, (bool, np.bool_)) or not isinstance(
            translation, numbers.Real) or not math.isfinite(translation):
        raise ValueError(f"translation must be a finite number of pixels, not "
                         f"{translation!r}")
    size = int(size)
    target_size = size if target_size is None else int(target_size)
    rows, columns, weights = [], [], []
    for move, weight in _axis_weights(float(translation)):
        placed = _overlap(int(origin) + move, size, target_size)
        if placed is None:
            continue
        inside, source = placed
        rows.append(np.arange(inside.start, inside.stop))
        columns.append(np.arange(source.start, source.stop))
        weights.append(np.full(inside.stop - inside.start, weight))
    if not rows:
        return sparse.csr_array((target_size, size), dtype=np.float64)
    return sparse.csr_array((np.concatenate(weights), (np.concatenate(rows),
                                                       np.concatenate(columns))),
                            shape=(target_size, size))


def iter_apply_translations(data, translations, padding=8, *, crop: bool = False,
                            variance: bool = False) -> Generator[int, None, np.ndarray]:
    """Generator form of :func:`apply_translations`: yields frames done, returns the result.

    With ``crop`` the result is cut back to the frames' own size (the padding's inside),
    frame by frame: the same values as cropping the full result, without ever holding
    the padded stack (what the ``align_frames`` step keeps). ``variance``: see
    :func:`apply_translations`.
    """
    data = check_stack(data)
    padding = _check_padding(padding, data.shape)
    translations = _check_translations(data, translations)
    if not isinstance(variance, (bool, np.bool_)):
        raise ValueError(f"variance must be True or False, not {variance!r}")
    n_frames, n_detectors, height, width = data.shape
    integral = translations.dtype.kind in "iu" or np.all(translations == np.round(translations))
    largest = float(np.max(np.abs(translations))) if translations.size else 0.0
    if largest > padding:
        warnings.warn(
            f"a translation of {largest:g} px is larger than the padding ({padding} px): "
            "content pushed out of the padded frame is dropped (the seed's roll would "
            f"wrap it around to the opposite side); use padding >= {int(np.ceil(largest))} "
            "to keep it", ShiftBeyondPaddingWarning, stacklevel=3)
    dtype = np.asarray(data[:0]).dtype if integral else np.float64
    # Zero-initialised (lazily, by the OS): each frame is then written straight into
    # place, and what no frame pixel reaches stays 0.
    out = np.zeros((n_frames, n_detectors) + ((height, width) if crop else
                                              (height + 2 * padding, width + 2 * padding)),
                   dtype)
    origin = 0 if crop else padding
    # Var(sum_i w_i c_i) = sum_i w_i**2 Var(c_i): the neighbours mixed into a pixel are
    # different raw pixels, independent counts.
    power = 2 if variance else 1

    def work(index):
        _place(frame(data, index), translations[index], out[index], origin, power)
        return index

    for index in map_frames(work, n_frames):
        yield index + 1
    return out


def apply_translations(data, translations, padding=8, *, variance: bool = False):
    """Apply per-frame translations to every detector of a stack.

    Parameters
    ----------
    data : array_like, shape (frames, detectors, height, width)
        Counts (or, with ``variance``, their variances); never modified; lazy arrays are
        read frame by frame.
    translations : array_like, shape (frames, 2)
        (rows, columns) per frame, pixels, as :func:`infer_translations` returns them.
    padding : int
        Zeros added around every frame before shifting, pixels.
    variance : bool
        ``data`` holds per-pixel variances of independent counts: a sub-pixel shift
        moves them with the squared bilinear weights, since a shifted pixel
        ``sum_i w_i c_i`` has the variance ``sum_i w_i**2 Var(c_i)``. Whole-pixel
        shifts move them like counts.

    Returns
    -------
    numpy.ndarray, shape (frames, detectors, height + 2 padding, width + 2 padding)
        Whole-pixel translations: the frame moved into the padded frame, in the data's
        dtype, counts conserved exactly. Fractional translations: a bilinear sub-pixel
        shift (float64; counts ``c`` moved with the weights ``w``, variances with
        ``w**2``). Content moved past the padded frame is dropped, never wrapped around,
        and the pixels no frame pixel reaches are 0.

    Notes
    -----
    Compatible with ``openformat.mims.apply_translations`` (the seed): while every
    translation is within the padding (``|t| <= padding`` pixels in rows and columns),
    the seed's cyclic roll moves only padding zeros across the edge and the results are
    identical. Beyond the padding the seed wraps the content pushed out of one edge into
    the opposite edge (where it would be summed as if it were measured there); we drop
    it instead, so the results equal the seed's wherever the seed's output holds no
    wrapped content and are 0 where it does. Such a translation warns
    (:class:`ShiftBeyondPaddingWarning`).
    """
    return run_to_completion(iter_apply_translations(data, translations, padding,
                                                     variance=variance))
