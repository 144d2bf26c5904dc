"""Counts read from a memory-mapped file on access, with the release-4108 roll applied lazily.

Every acquisition's counts are a :class:`LazyCounts`, whether or not the file needs the
one-pixel roll, so code never has to tell a memmap from a dask array. Indexing reads
only what it selects and returns numpy arrays; whole-array reductions run over blocks
of frames, so ``counts.sum(axis=(0, 2, 3))`` never holds more than one block in memory.
"""

from __future__ import annotations

import numpy as np

from ..model.acquisition import mass_stack

__all__ = ["LazyCounts", "mass_stack"]

# Frames are read in blocks of about this many bytes by reductions and by __array__.
BLOCK_BYTES = 32 * 1024 * 1024


def _rolled_index(key, length: int, shift: int) -> np.ndarray | int:
    """Stored positions for output positions ``key`` along an axis rolled by ``shift``."""
    if isinstance(key, (int, np.integer)):
        position = int(key)
        if not -length <= position < length:
            raise IndexError(f"index {position} is out of bounds for an axis of size {length}")
        return (position % length - shift) % length
    positions = np.arange(length)[key]
    return (positions - shift) % length


class LazyCounts:
    """A read-only (..., height, width) array view of stored counts, rolled on access.

    Parameters
    ----------
    stored : numpy.ndarray
        The stored values (usually a read-only ``numpy.memmap``), any byte order.
    roll : (int, int)
        Cyclic shift (rows, columns) applied to every image, as ``numpy.roll`` along the
        last two axes would; (0, 0) for none.

    Notes
    -----
    ``counts[key]`` returns a numpy array in native byte order (a copy only where the roll
    or the byte order needs one). :meth:`mass` returns a lazy (frames, height, width) view
    of one mass. ``numpy.asarray(counts)`` materialises everything.
    """

    def __init__(self, stored: np.ndarray, roll: tuple[int, int] = (0, 0)):
        if stored.ndim < 2:
            raise ValueError(f"counts need at least 2 dimensions, got shape {stored.shape}")
        self._stored = stored
        height, width = stored.shape[-2:]
        self.roll = (int(roll[0]) % max(height, 1), int(roll[1]) % max(width, 1))
        self.dtype = stored.dtype.newbyteorder("=")
        self.shape = tuple(stored.shape)
        self.ndim = stored.ndim
        self.size = int(stored.size)
        self.nbytes = self.size * self.dtype.itemsize

    def __repr__(self) -> str:
        return f"LazyCounts(shape={self.shape}, dtype={self.dtype}, roll={self.roll})"

    def __len__(self) -> int:
        return self.shape[0]

    def _native(self, values) -> np.ndarray:
        values = np.asarray(values)
        return values.astype(self.dtype, copy=False) if values.dtype != self.dtype else values

    def __getitem__(self, key) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is None for k in key):
            raise IndexError("LazyCounts does not take np.newaxis; index the result instead")
        ellipses = [at for at, k in enumerate(key) if k is Ellipsis]  # `in` would compare arrays
        if len(ellipses) > 1:
            raise IndexError("an index can only have a single ellipsis ('...')")
        if ellipses:
            at = ellipses[0]
            fill = self.ndim - (len(key) - 1)
            key = key[:at] + (slice(None),) * fill + key[at + 1:]
        if len(key) > self.ndim:
            raise IndexError(f"too many indices for an array of {self.ndim} dimensions")
        key = key + (slice(None),) * (self.ndim - len(key))
        if self.roll == (0, 0):
            return self._native(self._stored[key])
        whole = slice(None)
        if all(isinstance(k, slice) and k == whole for k in key[-2:]) and all(
                isinstance(k, (slice, int, np.integer)) for k in key[:-2]):
            leading = self._stored[key[:-2]]
            out = np.empty(leading.shape, dtype=self.dtype)
            self._fill(out, leading)
            return out
        height, width = self.shape[-2:]
        rows = _rolled_index(key[-2], height, self.roll[0])
        cols = _rolled_index(key[-1], width, self.roll[1])
        leading = self._stored[key[:-2]]
        # Rows then columns, with take() so that the two index arrays do not broadcast.
        picked = np.take(leading, rows, axis=-2) if not isinstance(rows, int) else \
            leading[..., rows, :]
        picked = np.take(picked, cols, axis=-1) if not isinstance(cols, int) else \
            picked[..., cols]
        return self._native(picked)

    def __setitem__(self, key, value):
        raise ValueError("the counts of an opened file are read-only; copy them with "
                         "numpy.array(counts) to change values")

    @property
    def memory_mapped(self) -> bool:
        """True when the values are read from a memory-mapped file on access."""
        return isinstance(self._stored, np.memmap) or isinstance(
            getattr(self._stored, "base", None), np.memmap)

    def mass(self, index: int) -> LazyCounts:
        """Lazy (frames, height, width) view of mass ``index`` of a 4-D stack."""
        if self.ndim != 4:
            raise ValueError(f"mass() needs (frames, masses, height, width) counts, "
                             f"not shape {self.shape}")
        return LazyCounts(self._stored[:, index], self.roll)

    def _stored_blocks(self):
        """Yield blocks of frames as stored (not rolled), native byte order, covering all."""
        per_item = max(1, self.nbytes // max(self.shape[0], 1))
        step = max(1, BLOCK_BYTES // per_item)
        for start in range(0, self.shape[0], step):
            yield self._native(self._stored[start:start + step])

    def _fill(self, out: np.ndarray, stored: np.ndarray) -> None:
        """Write the rolled images of ``stored`` into ``out``: four block copies, no temporary."""
        rows, cols = self.roll
        height, width = stored.shape[-2:]
        out[..., rows:, cols:] = stored[..., :height - rows, :width - cols]
        out[..., :rows, cols:] = stored[..., height - rows:, :width - cols]
        out[..., rows:, :cols] = stored[..., :height - rows, width - cols:]
        out[..., :rows, :cols] = stored[..., height - rows:, width - cols:]

    def __array__(self, dtype=None, copy=None):
        out = np.empty(self.shape, dtype=self.dtype)
        self._fill(out, self._stored)  # numpy copies (and byte-swaps) in small buffers
        return out if dtype is None else out.astype(dtype, copy=False)

    def astype(self, dtype, copy: bool = True) -> np.ndarray:
        """Materialise as a numpy array of ``dtype``."""
        return np.asarray(self).astype(dtype, copy=False)

    def _reduce(self, name: str, axis, dtype=None, combine=None):
        """Reduce with ndarray method ``name`` block by block; ``combine`` is the ufunc
        (np.add, np.maximum, np.minimum) that merges the blocks' results in place."""
        axes = tuple(range(self.ndim)) if axis is None else tuple(
            a % self.ndim for a in np.atleast_1d(axis))
        kwargs = {"axis": axes} if dtype is None else {"axis": axes, "dtype": dtype}
        # The roll only permutes pixels within each image, so reducing the stored values and
        # rolling what is left of the image axes afterwards gives the same result as
        # reducing the rolled values, without copying every block to roll it.
        result, parts = None, []
        for block in self._stored_blocks():
            part = getattr(block, name)(**kwargs)
            if 0 not in axes:
                parts.append(part)
            elif result is None:
                result = np.array(part, copy=True)
            else:
                result = combine(result, part, out=result) if isinstance(result, np.ndarray) \
                    and result.ndim else combine(result, part)
        if 0 not in axes and parts:
            result = np.concatenate(parts, axis=0)
        if result is None:  # no frames: numpy's own answer for an empty array
            return getattr(np.empty(self.shape, dtype=self.dtype), name)(**kwargs)
        kept = [a for a in range(self.ndim) if a not in axes]
        shifts = [(kept.index(self.ndim - 2 + k), self.roll[k]) for k in (0, 1)
                  if self.ndim - 2 + k in kept and self.roll[k]]
        if shifts:
            result = np.roll(result, [s for _, s in shifts], axis=[a for a, _ in shifts])
        return result

    def _finish(self, result, axis, out, keepdims):
        if keepdims:
            axes = range(self.ndim) if axis is None else np.atleast_1d(axis) % self.ndim
            result = np.expand_dims(result, tuple(int(a) for a in axes))
        if out is not None:
            out[...] = result
            return out
        return result

    def sum(self, axis=None, dtype=None, out=None, keepdims=False):
        """Sum over ``axis``, block by block (unsigned counts sum as uint64)."""
        if dtype is None and self.dtype.kind in "ub":
            dtype = np.uint64
        elif dtype is None and self.dtype.kind == "i":
            dtype = np.int64
        return self._finish(self._reduce("sum", axis, dtype, np.add), axis, out, keepdims)

    def max(self, axis=None, out=None, keepdims=False):
        """Maximum over ``axis``, block by block."""
        return self._finish(self._reduce("max", axis, None, np.maximum), axis, out, keepdims)

    def min(self, axis=None, out=None, keepdims=False):
        """Minimum over ``axis``, block by block."""
        return self._finish(self._reduce("min", axis, None, np.minimum), axis, out, keepdims)

    def mean(self, axis=None, dtype=None, out=None, keepdims=False):
        """Mean over ``axis`` (float64), block by block."""
        total = self._reduce("sum", axis, np.float64, np.add)
        axes = range(self.ndim) if axis is None else np.atleast_1d(axis)
        count = int(np.prod([self.shape[a] for a in axes]))
        mean = total / count if count else total * np.nan
        return self._finish(mean if dtype is None else np.asarray(mean, dtype),
                            axis, out, keepdims)


class PeakSwitchedCounts(LazyCounts):
    """(frames, channels, height, width) counts of a peak-switched file, read on access.

    Parameters
    ----------
    stored : LazyCounts
        The stored (planes, table masses, height, width) counts (rolled as they should be).
    source : numpy.ndarray
        (fields, channels) table position of each channel in each B field, -1 where the
        channel was not counted. Frame ``f`` is field ``f % fields`` of plane
        ``f // fields``; a channel's counts are 0 in the frames it was not counted in.
    channel : int, optional
        Give the lazy (frames, height, width) view of this one channel instead.
    """

    def __init__(self, stored: LazyCounts, source: np.ndarray, channel: int | None = None):
        self._inner = stored
        self._source = np.asarray(source, dtype=np.int64)
        self._channel = channel
        fields, channels = self._source.shape
        planes, _, height, width = stored.shape
        full = (planes * fields, channels, height, width)
        self.shape = full if channel is None else (full[0], height, width)
        self.roll = (0, 0)  # the stored view rolls; blocks below are already rolled
        self.dtype = stored.dtype
        self.ndim = len(self.shape)
        self.size = int(np.prod(self.shape))
        self.nbytes = self.size * self.dtype.itemsize

    def __repr__(self) -> str:
        return f"PeakSwitchedCounts(shape={self.shape}, dtype={self.dtype})"

    @property
    def memory_mapped(self) -> bool:
        return self._inner.memory_mapped

    def _expand(self, frames: np.ndarray, channels: np.ndarray) -> np.ndarray:
        """(len(frames), len(channels), H, W) counts, one stored plane read per plane."""
        fields = self._source.shape[0]
        out = np.zeros((len(frames), len(channels)) + self._inner.shape[2:], self.dtype)
        planes = frames // fields
        for plane in np.unique(planes):
            rows = np.flatnonzero(planes == plane)
            wanted = np.unique(self._source[:, channels][frames[rows] % fields])
            wanted = wanted[wanted >= 0]
            if not len(wanted):
                continue
            images = self._inner[int(plane), wanted]
            for row in rows:
                table = self._source[frames[row] % fields, channels]
                for j in np.flatnonzero(table >= 0):
                    out[row, j] = images[np.searchsorted(wanted, table[j])]
        return out

    def __getitem__(self, key) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        ellipses = [at for at, k in enumerate(key) if k is Ellipsis]
        if len(ellipses) > 1 or any(k is None for k in key):
            raise IndexError("PeakSwitchedCounts takes one ellipsis and no np.newaxis")
        if ellipses:
            at = ellipses[0]
            key = key[:at] + (slice(None),) * (self.ndim - len(key) + 1) + key[at + 1:]
        if len(key) > self.ndim:
            raise IndexError(f"too many indices for an array of {self.ndim} dimensions")
        key = key + (slice(None),) * (self.ndim - len(key))
        if self._channel is not None:
            key = (key[0], self._channel) + key[1:]
        n_frames, n_channels = self._source.shape[0] * self._inner.shape[0], \
            self._source.shape[1]
        frames = np.arange(n_frames)[key[0]]
        channels = np.arange(n_channels)[key[1]]
        out = self._expand(np.atleast_1d(frames), np.atleast_1d(channels))
        picked = (0 if np.ndim(frames) == 0 else slice(None),
                  0 if np.ndim(channels) == 0 else slice(None))
        return out[picked][(Ellipsis,) + tuple(key[2:])] if key[2:] else out[picked]

    def mass(self, index: int) -> PeakSwitchedCounts:
        if self._channel is not None:
            raise ValueError(f"mass() needs (frames, masses, height, width) counts, "
                             f"not shape {self.shape}")
        return PeakSwitchedCounts(self._inner, self._source, int(index))

    def _stored_blocks(self):
        per_frame = max(1, self.nbytes // max(self.shape[0], 1))
        step = max(1, BLOCK_BYTES // per_frame)
        for start in range(0, self.shape[0], step):
            yield self[start:start + step]

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype, copy=False)
