"""numpy's reductions (sum, max, min, mean) for lazy stacks that reduce part by part.

A class that mixes this in provides ``ndim``, ``shape``, ``dtype`` and
``_reduce(name, axis, combine, **kwargs)``: the reduction ``name`` over ``axis`` with
``combine`` joining the parts' results. The dtype rules are numpy's for a stack of
counts: unsigned and booleans sum as uint64, signed integers as int64, means in float64.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PartwiseReductions"]


class PartwiseReductions:
    """sum/max/min/mean with numpy's ``axis``, ``dtype``, ``out`` and ``keepdims``."""

    ndim: int
    shape: tuple
    dtype: np.dtype

    def _reduce(self, name: str, axis, combine, **kwargs):  # pragma: no cover - provided
        raise NotImplementedError

    def _reduced_axes(self, axis) -> tuple[int, ...]:
        if axis is None:
            return tuple(range(self.ndim))
        return tuple(sorted(int(a) % self.ndim for a in np.atleast_1d(axis)))

    def _finish(self, result, axis, out, keepdims):
        if keepdims:
            result = np.expand_dims(result, self._reduced_axes(axis))
        if out is not None:
            out[...] = result
            return out
        return result

    def sum(self, axis=None, dtype=None, out=None, keepdims=False):
        """Sum over ``axis``, part by part (unsigned counts sum as uint64)."""
        if dtype is None and self.dtype.kind in "ub":
            dtype = np.uint64
        elif dtype is None and self.dtype.kind == "i":
            dtype = np.int64
        return self._finish(self._reduce("sum", axis, np.add, dtype=dtype), axis, out,
                            keepdims)

    def max(self, axis=None, out=None, keepdims=False):
        """Maximum over ``axis``, part by part."""
        return self._finish(self._reduce("max", axis, np.maximum), axis, out, keepdims)

    def min(self, axis=None, out=None, keepdims=False):
        """Minimum over ``axis``, part by part."""
        return self._finish(self._reduce("min", axis, np.minimum), axis, out, keepdims)

    def mean(self, axis=None, dtype=None, out=None, keepdims=False):
        """Mean over ``axis`` (float64), part by part."""
        total = self._reduce("sum", axis, np.add, dtype=np.float64)
        count = int(np.prod([self.shape[a] for a in self._reduced_axes(axis)]))
        mean = total / count if count else total * np.nan
        return self._finish(mean if dtype is None else np.asarray(mean, dtype), axis, out,
                            keepdims)
