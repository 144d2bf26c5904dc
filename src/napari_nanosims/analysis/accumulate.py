"""Accumulation of frames into sums with their variance and coverage."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from typing import cast

import numpy as np
from scipy import sparse

from .._errors import KernelVarianceWarning
from ..model import Acquisition, Channel, HistoryRecord
from ._box import _box_sum
from .bounds import KERNEL_BOUNDS

__all__ = ["Accumulation", "accumulate", "KernelVarianceWarning"]

# Steps that may follow an alignment without changing any frame's counts: the frames
# before the alignment still say where every aligned pixel came from.
KEEPS_COUNTS = ("sum_frames", "ratio", "segment", "roi_table")



def _check_kernel(kernel) -> int:
    low, high = KERNEL_BOUNDS["minimum"], KERNEL_BOUNDS["maximum"]
    if isinstance(kernel, bool) or not isinstance(kernel, (int, np.integer)) or kernel < low \
            or kernel % 2 == 0 or kernel > high:
        raise ValueError(f"kernel must be an odd whole number of pixels from {low} to {high}, "
                         f"not {kernel!r}")
    return int(kernel)


def _box_matrix(size: int, kernel: int):
    """(size, size) sparse matrix of the box sum along one axis: ``B[P, p] = 1`` for
    ``|p - P| <= kernel // 2``, the window clipped at the ends as :func:`_box_sum`'s
    zeros outside the field clip it."""
    half = kernel // 2
    offsets = list(range(-half, half + 1))
    return sparse.diags_array([np.ones(size - abs(k)) for k in offsets if abs(k) < size],
                              offsets=[k for k in offsets if abs(k) < size],
                              shape=(size, size), format="csr")


def has_fractional_shifts(translations) -> bool:
    """True when any translation is not a whole number of pixels (interpolated counts)."""
    values = np.asarray(translations)
    return values.dtype.kind not in "iu" and not bool(np.all(values == np.round(values)))


@dataclasses.dataclass(frozen=True)
class _Stage:
    """One alignment between the traced frames and the accumulated ones.

    ``translations`` (selected frames, 2) pixels; ``size`` and ``target`` the frame
    shape (height, width) before and after it; ``origin`` where pixel (0, 0) sat in the
    target before the move (0 for the cropped frames of ``align_frames``)."""

    translations: np.ndarray
    size: tuple[int, int]
    target: tuple[int, int]
    origin: tuple[int, int]


@dataclasses.dataclass(frozen=True)
class _AlignmentTrace:
    """Where every accumulated pixel came from: frames ``frames`` of ``source`` (unshifted,
    independent pixels) moved by ``stages`` in order. ``variance`` is the accumulation's
    own variance array: the trace holds only while the accumulation still has it."""

    source: Acquisition
    frames: np.ndarray
    stages: tuple[_Stage, ...]
    variance: np.ndarray | None
    _squared_weights: dict = dataclasses.field(default_factory=dict, init=False,
                                               repr=False, compare=False)

    def squared_weights(self, kernel: int, shape: tuple[int, int]) -> list:
        """Per selected frame, the (rows, columns) sparse matrices of the squared weights
        of the unshifted pixels in the kernel x kernel box sums of the aligned frame.

        Per axis the box sum of the aligned line is ``M @ line`` with ``M = B @ A_n @
        ... @ A_1`` (the box, then the alignments in reverse order), so the box sums of
        a frame are ``M_rows @ frame @ M_columns.T``; the unshifted pixels being
        independent, their variance is ``(M_rows**2) @ V @ (M_columns**2).T``, squared
        element by element. Cached per kernel (they serve every mass).
        """
        from ..processing.alignment.shifts import translation_matrix

        cached = self._squared_weights.get(kernel)
        if cached is not None:
            return cached
        height, width = shape
        box_rows, box_columns = _box_matrix(height, kernel), _box_matrix(width, kernel)
        weights = []
        for position in range(len(self.frames)):
            rows, columns = box_rows, box_columns
            for stage in reversed(self.stages):
                rows = rows @ translation_matrix(
                    float(stage.translations[position, 0]), stage.size[0],
                    target_size=stage.target[0], origin=stage.origin[0])
                columns = columns @ translation_matrix(
                    float(stage.translations[position, 1]), stage.size[1],
                    target_size=stage.target[1], origin=stage.origin[1])
            weights.append((rows.power(2), columns.power(2)))
        self._squared_weights[kernel] = weights
        return weights

    def exact_box_variance(self, kernel: int, shape: tuple[int, int],
                           masses: Sequence[int]) -> np.ndarray:
        """(len(masses), H, W) exact variance of the kernel x kernel box sums of the
        summed frames, for the masses (positions on the first axis) asked: the frames'
        variances through :meth:`squared_weights`, added (frames are independent)."""
        height, width = shape
        masses = list(masses)
        total = np.zeros((len(masses), height, width))
        source = self.source
        values = source.variance if source.variance is not None else source.counts
        for frame, (rows, columns) in zip(self.frames.tolist(),
                                          self.squared_weights(kernel, shape), strict=True):
            variance = np.asarray(np.asarray(values[frame])[masses], dtype=np.float64)
            # NaN pixels make their box sums NaN anyway (the caller restores that);
            # here they must not spread to boxes that give them no weight.
            variance = np.where(np.isnan(variance), 0.0, variance)
            n_masses, in_height, in_width = variance.shape
            # Rows: (H, h) @ (h, masses * w); then columns: (W, w) @ (w, H * masses).
            moved = rows @ variance.transpose(1, 0, 2).reshape(in_height, n_masses * in_width)
            moved = moved.reshape(height * n_masses, in_width)
            moved = (columns @ moved.T).T.reshape(height, n_masses, width)
            total += moved.transpose(1, 0, 2)
        return total


def stage_before_alignment(acquisition: Acquisition):
    """(acquisition before its alignment, the frame of it behind each frame of
    ``acquisition``, the alignment's record) or None when the counts cannot be traced
    back through the alignment (no frames before it kept, or a step after it that
    changed the counts)."""
    before = acquisition.unaligned
    if before is None or acquisition.translations is None or getattr(before, "_closed",
                                                                      False):
        return None
    earlier = len(before.history)
    history = acquisition.history
    if (len(history) <= earlier or history[earlier].name != "align_frames"
            or any(a is not b for a, b in zip(history[:earlier], before.history, strict=True))):
        return None
    kept = np.arange(before.n_frames)
    for record in history[earlier + 1:]:
        if record.name == "exclude_frames":
            excluded = [int(f) for f in record.parameters.get("excluded", ())]
            if any(not 0 <= f < len(kept) for f in excluded):
                return None
            kept = np.delete(kept, excluded)
        elif record.name not in KEEPS_COUNTS and not record.name.startswith("write_"):
            return None
    if len(kept) != acquisition.n_frames or before.shape[1] != acquisition.shape[1]:
        return None
    return before, kept, history[earlier]


def _trace_alignment(acquisition: Acquisition, selected: Sequence[int]):
    """How the selected frames' pixels came from independent unshifted pixels.

    Returns None when no selected frame was shifted by a fraction of a pixel (box sums
    of the pixel variances are then exact), an :class:`_AlignmentTrace` when the
    frames before every sub-pixel alignment are at hand, else a sentence saying why
    the kernel errors cannot be exact.
    """
    stages = []
    current, frames = acquisition, np.asarray(selected, dtype=np.int64)
    while True:
        traced = stage_before_alignment(current)
        if traced is None:
            break
        before, kept, record = traced
        size = cast("tuple[int, int]", tuple(before.shape[2:]))
        target = cast("tuple[int, int]", tuple(current.shape[2:]))
        padding = record.parameters.get("padding", 0)
        if size == target:  # align_frames keeps the frames' own size
            origin = (0, 0)
        elif isinstance(padding, int) and target == (size[0] + 2 * padding,
                                                     size[1] + 2 * padding):
            origin = (padding, padding)
        else:
            break
        stages.append(_Stage(np.asarray(current.translations, dtype=np.float64)[frames],
                             size, target, origin))
        current, frames = before, kept[frames]
    if current.translations is not None and has_fractional_shifts(current.translations):
        return ("the frames were shifted by fractions of a pixel, and the frames before "
                "that alignment are not kept (or the counts were changed after it)")
    if current.translations is None and any(
            record.name == "align_frames" and record.parameters.get("method") == "subpixel"
            for record in current.history):
        return ("the history has a sub-pixel alignment, but neither its translations nor "
                "the frames before it")
    if not any(has_fractional_shifts(stage.translations) for stage in stages):
        return None
    return _AlignmentTrace(current, frames, tuple(stages[::-1]), None)


@dataclasses.dataclass(frozen=True)
class Accumulation:
    """The sum of selected frames of an acquisition, with its variance and coverage.

    Attributes
    ----------
    counts : numpy.ndarray
        (masses, height, width) float64 sums of the (corrected) counts of the selected
        frames. NaN where no frame covered the pixel: missing, never a zero.
    variance : numpy.ndarray
        (masses, height, width) variance of ``counts`` (the sum of the frames'
        variances), per pixel. Pixels shifted by fractions of a pixel share counts with
        their neighbours: the variance of a sum of several pixels is then not the sum
        of their variances; :meth:`kernel_variance` gives the exact one for box sums.
    coverage : numpy.ndarray
        (height, width) number of frames that covered each pixel (fractions at the edges
        of sub-pixel shifts).
    raw_counts : numpy.ndarray
        (masses, height, width) sums of the uncorrected counts, same frames and pixels.
    frames : tuple of int
        The frame indices used.
    channels : tuple of Channel
        The channels, in the order of the first axis.
    pixel_size_um : float
        Pixel size, micrometres.
    history : tuple of HistoryRecord
        The steps behind the acquisition, then ``accumulate``.
    """

    counts: np.ndarray
    variance: np.ndarray
    coverage: np.ndarray
    raw_counts: np.ndarray
    frames: tuple[int, ...]
    channels: tuple[Channel, ...]
    pixel_size_um: float
    history: tuple[HistoryRecord, ...]
    # Set by accumulate(): None (no sub-pixel shift), an _AlignmentTrace, or why the
    # kernel errors of sub-pixel shifted frames cannot be exact.
    _alignment: object = dataclasses.field(default=None, repr=False, compare=False)
    _kernel_variances: dict = dataclasses.field(default_factory=dict, init=False,
                                                repr=False, compare=False)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(channel.label for channel in self.channels)

    def mean_per_frame(self) -> np.ndarray:
        """(masses, height, width) mean counts per covering frame; NaN where none covered."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.coverage > 0, self.counts / self.coverage, np.nan)

    def rate_cps(self) -> np.ndarray:
        """(masses, height, width) count rate, counts per second of dwell; NaN where uncovered.

        A channel counted in only some frames (peak switching) is divided by its own
        counting time: the share of the summed frames it was counted in."""
        dwell_s = np.array([channel.dwell_time_us * 1e-6 for channel in self.channels])
        share = np.array([1.0 if c.frames is None else
                          len(set(c.frames) & set(self.frames)) / max(len(self.frames), 1)
                          for c in self.channels])
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.mean_per_frame() / (dwell_s * share)[:, None, None]

    def kernel_variance(self, kernel: int, masses: Sequence[int] | None = None
                        ) -> np.ndarray:
        """Variance of the sums of ``counts`` over ``kernel x kernel`` boxes, exactly.

        Parameters
        ----------
        kernel : int
            Odd box size, pixels (1 to 101); the box is clipped at the field's edges,
            as the counts' box sum is (zeros outside).
        masses : sequence of int, optional
            Positions on the first axis (``labels.index(label)``) to compute; default
            all.

        Returns
        -------
        numpy.ndarray
            (masses, height, width) float64, counts squared. NaN wherever the box
            touches a pixel with NaN variance (uncovered), as for the counts' box sum.

        Notes
        -----
        Without sub-pixel alignment (or with whole-pixel shifts) the pixels are
        independent and this is the box sum of ``variance``. A sub-pixel shift by
        ``t = k + f`` spreads each raw pixel over two neighbours per axis (weights
        ``1 - f`` and ``f``), so a box of aligned pixels weighs the raw pixels, per axis,
        ``[f, 1, ..., 1, 1 - f]`` (``kernel + 1`` of them) and its variance is the raw
        variance summed with the squared weights ``[f**2, 1, ..., 1, (1 - f)**2]``.
        The box sum of the per-pixel variances (``kernel`` times ``f**2 + (1-f)**2``
        per axis) understates it: 0.64 times the true sigma for a 3 x 3 box at a shift
        of (0.5, 0.3) px. This method computes it from the frames before alignment
        (``Acquisition.unaligned``), their variance (their counts when raw) and each
        frame's translations, through every alignment, frames left out after it and
        the same edges (content moved out of the frame is dropped). When those frames
        are not available (the counts were changed after the alignment, or the
        acquisition came from a file that kept only the aligned frames) it falls back
        to the box sum of ``variance`` and warns (:class:`KernelVarianceWarning`) that
        the errors are understated. Results are cached per kernel and mass.
        """
        kernel = _check_kernel(kernel)
        n_masses = self.variance.shape[0]
        if masses is None:
            masses = range(n_masses)
        masses = [int(m) for m in masses]
        if any(not 0 <= m < n_masses for m in masses):
            raise ValueError(f"masses must be positions 0..{n_masses - 1} on the first "
                             f"axis, not {masses}")
        missing = [m for m in dict.fromkeys(masses) if (kernel, m) not in self._kernel_variances]
        if missing:
            self._kernel_variances.update(zip(((kernel, m) for m in missing),
                                              self._compute_kernel_variance(kernel, missing),
                                              strict=True))
        return np.stack([self._kernel_variances[(kernel, m)] for m in masses])

    def _compute_kernel_variance(self, kernel: int, masses: list[int]) -> np.ndarray:
        trace = self._alignment
        if isinstance(trace, _AlignmentTrace) and (
                trace.variance is not self.variance
                or getattr(trace.source, "_closed", False)):
            trace = ("the accumulation was changed after accumulate(), or the acquisition "
                     "before alignment was closed")
        boxed = np.stack([_box_sum(self.variance[m], kernel) for m in masses])
        if isinstance(trace, _AlignmentTrace) and (kernel > 1 or len(trace.stages) > 1):
            result = trace.exact_box_variance(kernel, self.variance.shape[1:], masses)
            result[np.isnan(boxed)] = np.nan
            return result
        if isinstance(trace, str) and kernel > 1:
            warnings.warn(
                f"kernel={kernel}: {trace}, so the kernel sums' variance is the sum of the "
                "pixel variances, which understates it (shifted pixels share counts; about "
                "0.75x the true sigma for 3 x 3 over random fractions). Keep the "
                "acquisition from align_frames for exact kernel errors",
                KernelVarianceWarning, stacklevel=3)
        return boxed


def _frame_indices(frames, n_frames: int, name: str) -> tuple[int, ...]:
    if frames is None:
        return tuple(range(n_frames))
    if isinstance(frames, range):
        frames = list(frames)
    indices = []
    for frame in np.atleast_1d(np.asarray(frames)).tolist():
        if isinstance(frame, bool) or not isinstance(frame, int):
            raise ValueError(f"{name}: frames must be whole frame indices, not {frame!r}")
        if not -n_frames <= frame < n_frames:
            raise ValueError(f"{name}: frame {frame} is outside 0..{n_frames - 1}")
        indices.append(frame % n_frames)
    if not indices:
        raise ValueError(f"{name}: no frame selected")
    if len(set(indices)) != len(indices):
        raise ValueError(f"{name}: frames repeat in the selection {indices}")
    return tuple(indices)


def _frame_sum(values, index, shape) -> np.ndarray:
    """The float64 sum of frames ``index`` of a (possibly lazy) stack, read one frame at a
    time (a moved variance is computed on access: never held whole); the additions in
    numpy's order for axis 0, so the same values as ``numpy.sum(axis=0)``."""
    total = np.zeros(shape, dtype=np.float64)
    for frame in index:
        total += np.asarray(values[frame], dtype=np.float64)
    return total


def accumulate(acquisition: Acquisition, frames: Sequence[int] | range | None = None
               ) -> Accumulation:
    """Sum the selected frames (all by default), in float64, with variance and coverage.

    Parameters
    ----------
    acquisition : Acquisition
        Cleaned, corrected and aligned as wanted (not summed).
    frames : sequence of int, range or None
        Frame indices to sum; None means every frame.

    Returns
    -------
    Accumulation
        Sums never truncate to integers. Pixels no selected frame covered (brought in by
        alignment from outside the field) are NaN in ``counts`` and ``variance``. After
        a sub-pixel alignment it also keeps (by reference, nothing is computed here) what
        :meth:`Accumulation.kernel_variance` needs for exact errors of box sums: the
        acquisition before alignment and the translations of the selected frames.
    """
    n_frames = acquisition.n_frames
    selected = _frame_indices(frames, n_frames, acquisition.name)
    index = list(selected)
    total = np.zeros(acquisition.shape[1:], dtype=np.float64)
    for frame in index:  # one frame at a time: lazy counts are never read whole
        total += np.asarray(acquisition.counts[frame], dtype=np.float64)
    if acquisition.variance is not None:
        variance = _frame_sum(acquisition.variance, index, total.shape)
    else:
        variance = total.copy()  # raw counts: Poisson
    raw = acquisition.raw_counts
    raw_total = _frame_sum(raw, index, total.shape) if raw is not None else total.copy()
    if acquisition.coverage is not None:
        coverage = np.asarray(acquisition.coverage)[index].sum(axis=0, dtype=np.float64)
    else:
        coverage = np.full(acquisition.shape[2:], float(len(index)))
    missing = coverage <= 0
    for array in (total, variance, raw_total):
        array[:, missing] = np.nan
    record = HistoryRecord("accumulate", {"frames": list(selected)})
    alignment = _trace_alignment(acquisition, selected)
    if isinstance(alignment, _AlignmentTrace):
        alignment = dataclasses.replace(alignment, variance=variance)
    return Accumulation(counts=total, variance=variance, coverage=coverage,
                        raw_counts=raw_total, frames=selected, channels=acquisition.channels,
                        pixel_size_um=acquisition.pixel_size_um,
                        history=acquisition.history + (record,), _alignment=alignment)
