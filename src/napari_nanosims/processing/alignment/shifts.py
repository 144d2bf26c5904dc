"""Shifting frames by known translations: whole and sub-pixel, counts and variances.

The translations come from :mod:`.alignment` (or anywhere else); shifting by a fraction
of a pixel splits each count bilinearly between the neighbouring pixels.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Generator

import numpy as np

from ..._errors import ShiftBeyondPaddingWarning
from .._frames import check_stack, frame, map_frames, run_to_completion

__all__ = ["apply_translations", "iter_apply_translations", "moved_dtype",
           "translated_frame", "translation_matrix"]


def _check_padding(padding, shape=None) -> int:
    """A valid padding: a whole number of pixels from 0 to the frame size."""
    if isinstance(padding, bool) or not isinstance(padding, numbers.Integral) or padding < 0:
        raise ValueError(f"padding must be a whole number of pixels >= 0, not {padding!r}")
    if shape is not None and padding > max(shape[-2:]):
        raise ValueError(f"padding must be at most the frame size ({max(shape[-2:])} px); "
                         f"got {padding}")
    return int(padding)


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
                # One detector at a time: a temporary of one image, not of the frame's
                # seven (14 MiB at 512², per frame thread, on top of the moved stack).
                for placed, image in zip(target[inside], images[source], strict=True):
                    placed += np.float64(weight) * image


def moved_dtype(data, translations) -> np.dtype:
    """The dtype of ``data`` moved by ``translations``: its own for whole pixels (an
    exact move), float64 when any translation is a fraction of a pixel."""
    translations = np.asarray(translations)
    integral = translations.dtype.kind in "iu" or np.all(translations == np.round(translations))
    return np.asarray(data[:0]).dtype if integral else np.dtype(np.float64)


def translated_frame(images: np.ndarray, translation, dtype, *, power: int = 1
                     ) -> np.ndarray:
    """One frame (detectors, H, W) moved by ``translation`` and kept at its own size.

    The frame :func:`iter_apply_translations` with ``crop`` gives, value for value:
    ``dtype`` is the stack's (the data's for whole-pixel translations, float64 when
    any is fractional) and ``power`` 2 moves a variance with the squared weights.
    """
    out = np.zeros(images.shape, dtype)
    _place(images, translation, out, 0, power)
    return out


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
    largest = float(np.max(np.abs(translations))) if translations.size else 0.0
    if largest > padding:
        warnings.warn(
            f"a translation of {largest:g} px is larger than the padding ({padding} px): "
            "content pushed out of the padded frame is dropped (the seed's roll would "
            f"wrap it around to the opposite side); use padding >= {int(np.ceil(largest))} "
            "to keep it", ShiftBeyondPaddingWarning, stacklevel=3)
    dtype = moved_dtype(data, translations)
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
