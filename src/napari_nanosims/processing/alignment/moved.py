"""What travels with aligned counts (variance, raw counts), moved frame by frame on access.

A sub-pixel or piecewise alignment makes the counts float64: the one copy of the stack
the ``align_frames`` step must hold. Their variance (and, after the detector corrections,
the raw counts) move exactly as the counts did; holding them moved would add two more
float64 copies. A :class:`MovedFrames` holds only what it needs to move a frame (the
unaligned array, which the aligned acquisition keeps anyway, and each frame's
translation and field) and moves a frame when it is read, with the same functions and
the same values as moving the whole stack at once
(:func:`~napari_nanosims.processing.alignment.shifts.iter_apply_translations`,
:func:`~napari_nanosims.processing.alignment.warp.iter_apply_displacements`).
"""

from __future__ import annotations

import numpy as np

from ..._reductions import PartwiseReductions
from .._frames import check_stack, map_frames
from .shifts import _check_translations, moved_dtype, translated_frame
from .warp import warped_frame

__all__ = ["MovedFrames", "moved_coverage"]


def _normalise(key, ndim: int) -> tuple:
    """``key`` as a tuple of ``ndim`` entries (no np.newaxis; one ellipsis expanded)."""
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is None for k in key):
        raise IndexError("MovedFrames does not take np.newaxis; index the result instead")
    ellipses = [at for at, k in enumerate(key) if k is Ellipsis]  # `in` would compare arrays
    if len(ellipses) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if ellipses:
        at = ellipses[0]
        key = key[:at] + (slice(None),) * (ndim - (len(key) - 1)) + key[at + 1:]
    if len(key) > ndim:
        raise IndexError(f"too many indices for an array of {ndim} dimensions")
    return key + (slice(None),) * (ndim - len(key))


def _is_basic(key) -> bool:
    """True for an index that selects without advanced indexing (an int or a slice)."""
    return isinstance(key, (slice, int, np.integer)) and not isinstance(key, bool)


class MovedFrames(PartwiseReductions):
    """A read-only (frames, detectors, H, W) array: ``source`` moved frame by frame on access.

    Parameters
    ----------
    source : array_like, shape (frames, detectors, height, width)
        The unaligned values (a numpy array, a lazy array of a file, another
        ``MovedFrames``); never modified, read one frame at a time.
    translations : array_like, shape (frames, 2)
        (rows, columns) translation of each frame of ``source``, pixels.
    variance : bool
        ``source`` holds variances of independent counts: moved with the squared
        bilinear weights.
    displacement_px : array_like, shape (frames, 2, rows, cols), optional
        The piecewise field beyond the translations at the grid points, pixels; None
        for a rigid move.
    grid : (array, array), optional
        Pixel coordinates of the field's grid rows and columns (with ``displacement_px``).
    frames : array_like of int, optional
        The frame of ``source`` behind each frame of this array (default: all, in order);
        :meth:`select_frames` makes one.
    detector : int, optional
        Stand for the (frames, height, width) stack of this one detector
        (:meth:`mass` makes one).

    Notes
    -----
    ``moved[key]`` returns a numpy array exactly as the moved stack held whole would:
    the frames' own size (cropped), in ``source``'s dtype for whole-pixel translations,
    float64 when any translation is fractional or with a field. It moves only the frames
    (and, for an integer or a slice, the detectors) the key selects; the values are the
    same at every read. ``numpy.asarray(moved)`` holds the whole stack; the reductions
    (``sum``, ``max``, ``min``, ``mean``) run frame by frame.
    """

    def __init__(self, source, translations, *, variance: bool = False,
                 displacement_px=None, grid=None, frames=None, detector: int | None = None):
        source = check_stack(source, "source")
        translations = _check_translations(source, translations)
        self._source, self._translations = source, translations
        self._power = 2 if variance else 1
        self._field = None if displacement_px is None else np.asarray(displacement_px,
                                                                      dtype=np.float64)
        if self._field is not None and self._field.shape[:2] != (source.shape[0], 2):
            raise ValueError(f"displacement_px must have shape ({source.shape[0]}, 2, rows, "
                             f"cols); got {self._field.shape}")
        self._grid = grid
        self._frames = (np.arange(source.shape[0]) if frames is None else
                        np.asarray(frames, dtype=np.int64))
        self._detector = detector
        self.dtype = (np.dtype(np.float64) if self._field is not None
                      else moved_dtype(source, translations))
        shape = (len(self._frames),) + tuple(source.shape[1:])
        self.shape = shape if detector is None else shape[:1] + shape[2:]
        self.ndim = len(self.shape)
        self.size = int(np.prod(self.shape))
        self.nbytes = self.size * self.dtype.itemsize  # if it were held; it is not

    def __repr__(self) -> str:
        kind = "variance" if self._power == 2 else "values"
        return f"MovedFrames({kind}, shape={self.shape}, dtype={self.dtype})"

    def __len__(self) -> int:
        return self.shape[0]

    def __setitem__(self, key, value):
        raise ValueError("moved values are read-only; copy them with numpy.array(values) "
                         "to change them")

    # -- views --------------------------------------------------------------------------
    def _like(self, **changes) -> MovedFrames:
        values = dict(variance=self._power == 2, displacement_px=self._field, grid=self._grid,
                      frames=self._frames, detector=self._detector)
        values.update(changes)
        return MovedFrames(self._source, self._translations, **values)

    def select_frames(self, index) -> MovedFrames:
        """The frames ``index`` (ints, a slice or a mask) as a lazy array, as
        ``numpy.asarray(moved)[index]`` would give them."""
        return self._like(frames=self._frames[index])

    def mass(self, index: int) -> MovedFrames:
        """Lazy (frames, height, width) view of detector ``index``."""
        if self._detector is not None:
            raise ValueError(f"mass() needs (frames, masses, height, width) values, "
                             f"not shape {self.shape}")
        return self._like(detector=int(np.arange(self._source.shape[1])[index]))

    # -- reading ------------------------------------------------------------------------
    def _moved(self, position: int, detectors) -> np.ndarray:
        """Frame ``position`` moved, for ``detectors`` (a slice), (detectors, H, W)."""
        frame = int(self._frames[position])
        images = np.asarray(self._source[frame])[detectors]
        if self._field is None:
            return translated_frame(images, self._translations[frame], self.dtype,
                                    power=self._power)
        return warped_frame(images, self._translations[frame], self._field[frame],
                            self._grid, power=self._power)

    def _one_frame(self, position: int, rest: tuple) -> np.ndarray:
        detectors, inner = rest[0], rest[1:]
        if isinstance(detectors, (int, np.integer)) and not isinstance(detectors, bool):
            index = int(np.arange(self._source.shape[1])[detectors])  # checks the bounds
            return self._moved(position, slice(index, index + 1))[(0,) + inner]
        if isinstance(detectors, slice):
            return self._moved(position, detectors)[(slice(None),) + inner]
        return self._moved(position, slice(None))[rest]

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, np.ndarray) and key.dtype == bool and key.ndim > 1:
            return np.asarray(self)[key]  # a mask over pixels: numpy's own answer
        key = _normalise(key, self.ndim)
        if self._detector is not None:
            key = (key[0], self._detector) + key[1:]
        first, rest = key[0], key[1:]
        n = self.shape[0]
        if isinstance(first, (int, np.integer)) and not isinstance(first, bool):
            if not -n <= int(first) < n:
                raise IndexError(f"index {int(first)} is out of bounds for axis 0 with size {n}")
            return self._one_frame(int(first) % n, rest)
        wanted = np.arange(n)[first]  # the frames, in the order asked for
        if isinstance(first, slice):
            needed, position = wanted, slice(None)
        else:
            needed = np.unique(wanted)
            position = np.searchsorted(needed, wanted)
        gathered = rest if all(_is_basic(k) for k in rest) else (slice(None),) * len(rest)
        if needed.size:
            block = np.stack([self._one_frame(int(f), gathered) for f in needed])
        else:  # numpy's shape and dtype for an empty selection (the dtype probe data[:0])
            block = np.empty(np.empty((1,) + tuple(self._source.shape[1:]), np.bool_)[
                (slice(0, 0),) + gathered].shape, self.dtype)
        if gathered is rest:
            return block[position]
        return block[(position,) + rest]

    def __array__(self, dtype=None, copy=None):
        out = np.empty(self.shape, dtype=self.dtype)

        def fill(position):
            out[position] = self[position]

        for _ in map_frames(fill, self.shape[0]):
            pass
        return out if dtype is None else out.astype(dtype, copy=False)

    def astype(self, dtype, copy: bool = True) -> np.ndarray:
        """Materialise as a numpy array of ``dtype``."""
        return np.asarray(self).astype(dtype, copy=False)

    # -- reductions, frame by frame -------------------------------------------------------
    def _reduce(self, name: str, axis, combine, **kwargs):
        axes = tuple(range(self.ndim)) if axis is None else tuple(
            sorted(int(a) % self.ndim for a in np.atleast_1d(axis)))
        within = tuple(a - 1 for a in axes if a > 0)
        parts = (getattr(self[position], name)(axis=within, **kwargs)
                 for position in range(self.shape[0]))
        if 0 not in axes:
            return np.stack(list(parts)) if self.shape[0] else getattr(
                np.empty(self.shape, self.dtype), name)(axis=axes, **kwargs)
        result = None
        for part in parts:  # frame after frame, as numpy reduces a C-ordered axis 0
            result = np.array(part, copy=True) if result is None else combine(result, part)
        if result is None:
            return getattr(np.empty(self.shape, self.dtype), name)(axis=axes, **kwargs)
        return result


def moved_coverage(translations, shape, *, displacement_px=None, grid=None) -> np.ndarray:
    """(frames, height, width) float32: how much of a measured pixel each output pixel
    holds after the move (1 inside, 0 where the move brought nothing in, fractions at
    sub-pixel edges), frame by frame without a stack of ones."""
    translations = np.asarray(translations)
    n_frames = translations.shape[0]
    height, width = shape
    # A read-only view of one frame of ones for every frame: no memory per frame.
    ones = np.broadcast_to(np.ones((1, 1, height, width), np.uint8),
                           (n_frames, 1, height, width))
    moved = MovedFrames(ones, translations, displacement_px=displacement_px, grid=grid)
    coverage = np.empty((n_frames, height, width), np.float32)

    def fill(position):
        coverage[position] = moved[position, 0]

    for _ in map_frames(fill, n_frames):
        pass
    return coverage
