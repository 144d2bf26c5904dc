"""Several files' counts seen as one array along the frame axis, without copying them.

:func:`napari_nanosims.concatenate` joins the frames of chained acquisitions of one field.
Their counts stay where they are (each file's memory map, or an array a step made);
:class:`ChainedCounts` reads from the part that holds the frames an index asks for, so
opening a chain of files costs what opening the files costs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._reductions import PartwiseReductions

__all__ = ["ChainedCounts"]


def _is_basic(key) -> bool:
    """True for an index that selects without advanced indexing (an int or a slice)."""
    return isinstance(key, (slice, int, np.integer)) and not isinstance(key, bool)


class ChainedCounts(PartwiseReductions):
    """Read-only concatenation of arrays along axis 0 (frames), read on access.

    Parameters
    ----------
    parts : sequence of array-like
        The arrays (:class:`~napari_nanosims.io.lazy.LazyCounts`, memory maps, numpy
        arrays, other ``ChainedCounts``), all with the same shape after axis 0.

    Notes
    -----
    ``chain[key]`` returns a numpy array exactly as ``numpy.concatenate(parts)[key]``
    would, reading only the frames the key selects (and, when the other indices are
    integers or slices, only what they select within them). :meth:`mass` is a lazy
    (frames, height, width) view of one mass; the reductions (``sum``, ``max``, ``min``,
    ``mean``) run part by part with the parts' own (block-wise) reductions.
    """

    def __init__(self, parts: Sequence):
        parts = list(parts)
        if not parts:
            raise ValueError("ChainedCounts needs at least one array")
        shapes = [tuple(part.shape) for part in parts]
        if any(len(shape) < 1 or shape[1:] != shapes[0][1:] for shape in shapes):
            raise ValueError(f"arrays to chain must agree in every axis but the first; "
                             f"got shapes {shapes}")
        self.parts = parts
        self.dtype = np.result_type(*[np.dtype(part.dtype) for part in parts])
        self.lengths = [shape[0] for shape in shapes]
        #: Global index of each part's first frame (and the total after the last).
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)
        self.shape = (int(self.starts[-1]),) + shapes[0][1:]
        self.ndim = len(self.shape)
        self.size = int(np.prod(self.shape))
        self.nbytes = self.size * self.dtype.itemsize

    def __repr__(self) -> str:
        return f"ChainedCounts(shape={self.shape}, dtype={self.dtype}, parts={self.lengths})"

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def memory_mapped(self) -> bool:
        """True when every part reads from a memory-mapped file on access."""
        return all(bool(getattr(part, "memory_mapped", False)) or isinstance(part, np.memmap)
                   for part in self.parts)

    def __setitem__(self, key, value):
        raise ValueError("chained counts are read-only; copy them with numpy.array(counts) "
                         "to change values")

    # -- indexing -----------------------------------------------------------------------
    def _normalise(self, key) -> tuple:
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is None for k in key):
            raise IndexError("ChainedCounts does not take np.newaxis; index the result instead")
        ellipses = [at for at, k in enumerate(key) if k is Ellipsis]
        if len(ellipses) > 1:
            raise IndexError("an index can only have a single ellipsis ('...')")
        if ellipses:
            at = ellipses[0]
            key = key[:at] + (slice(None),) * (self.ndim - (len(key) - 1)) + key[at + 1:]
        if len(key) > self.ndim:
            raise IndexError(f"too many indices for an array of {self.ndim} dimensions")
        return key + (slice(None),) * (self.ndim - len(key))

    def _locate(self, frame: int) -> tuple[int, int]:
        """(part, frame within the part) of global frame ``frame`` (non-negative)."""
        part = int(np.searchsorted(self.starts, frame, side="right")) - 1
        return part, frame - int(self.starts[part])

    def __getitem__(self, key) -> np.ndarray:
        key = self._normalise(key)
        first, rest = key[0], key[1:]
        n = self.shape[0]
        local: int | slice | np.ndarray  # one frame, or frames within one part
        if isinstance(first, (int, np.integer)) and not isinstance(first, bool):
            if not -n <= int(first) < n:
                raise IndexError(f"index {int(first)} is out of bounds for axis 0 with size {n}")
            part, local = self._locate(int(first) % n)
            return np.asarray(self.parts[part][(local,) + rest]).astype(self.dtype, copy=False)
        wanted = np.arange(n)[first]  # the global frames, in the order asked for
        if isinstance(first, slice):
            # Read the frames in increasing order and give the slice's order back: a slice
            # stays a slice, so numpy places the other axes exactly as for the whole array.
            needed = np.sort(wanted)
            position = slice(None) if (first.step or 1) > 0 else slice(None, None, -1)
        else:
            needed = np.unique(wanted)
            position = np.searchsorted(needed, wanted)
        gathered_rest = rest if all(_is_basic(k) for k in rest) else ()
        pieces = []
        for part, array in enumerate(self.parts):
            start, stop = int(self.starts[part]), int(self.starts[part + 1])
            inside = needed[(needed >= start) & (needed < stop)] - start
            if inside.size:
                # Consecutive frames as a slice: a memory map reads them without a copy.
                local = slice(int(inside[0]), int(inside[-1]) + 1) if \
                    inside[-1] - inside[0] + 1 == inside.size else inside
                pieces.append(np.asarray(array[(local,) + gathered_rest]))
        if pieces:
            block = np.concatenate(pieces, axis=0).astype(self.dtype, copy=False)
        else:
            empty_shape = np.empty((1,) + self.shape[1:], dtype=np.bool_)[
                (slice(0, 0),) + gathered_rest].shape
            block = np.empty(empty_shape, dtype=self.dtype)
        if gathered_rest:
            # Integer indices in ``rest`` removed their axes; axis 0 is still the frames.
            return block[position]
        return block[(position,) + rest]

    def mass(self, index: int) -> ChainedCounts:
        """Lazy (frames, height, width) view of mass ``index`` of a 4-D chain."""
        if self.ndim != 4:
            raise ValueError(f"mass() needs (frames, masses, height, width) counts, "
                             f"not shape {self.shape}")
        return ChainedCounts([part.mass(index) if hasattr(part, "mass") else part[:, index]
                              for part in self.parts])

    def part_of_frame(self, frame: int) -> int:
        """The index of the part (file) that holds global frame ``frame``."""
        if not 0 <= frame < self.shape[0]:
            raise IndexError(f"frame {frame} is outside 0..{self.shape[0] - 1}")
        return self._locate(frame)[0]

    # -- whole-array access ---------------------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        out = np.empty(self.shape, dtype=self.dtype)
        for part, array in enumerate(self.parts):
            out[self.starts[part]:self.starts[part + 1]] = np.asarray(array)
        return out if dtype is None else out.astype(dtype, copy=False)

    def astype(self, dtype, copy: bool = True) -> np.ndarray:
        """Materialise as a numpy array of ``dtype``."""
        return np.asarray(self).astype(dtype, copy=False)

    def _axes(self, axis) -> tuple[int, ...]:
        if axis is None:
            return tuple(range(self.ndim))
        return tuple(sorted(int(a) % self.ndim for a in np.atleast_1d(axis)))

    def _reduce(self, name: str, axis, combine, **kwargs):
        axes = self._axes(axis)
        results = [np.asarray(getattr(part, name)(axis=axes, **kwargs))
                   for part in self.parts if part.shape[0]]
        if not results:
            return getattr(np.empty(self.shape, dtype=self.dtype), name)(axis=axes, **kwargs)
        if 0 not in axes:
            return np.concatenate(results, axis=0)
        result = results[0]
        for more in results[1:]:
            result = combine(result, more)
        return result
