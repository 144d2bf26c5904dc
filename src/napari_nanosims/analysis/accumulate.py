"""Accumulation of frames into sums with their variance and coverage."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from ..io.acquisition import Acquisition, Channel, HistoryRecord

__all__ = ["Accumulation", "accumulate"]


@dataclasses.dataclass(frozen=True)
class Accumulation:
    """The sum of selected frames of an acquisition, with its variance and coverage.

    Attributes
    ----------
    counts : numpy.ndarray
        (masses, height, width) float64 sums of the (corrected) counts of the selected
        frames. NaN where no frame covered the pixel: missing, never a zero.
    variance : numpy.ndarray
        (masses, height, width) variance of ``counts`` (the sum of the frames' variances).
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

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(channel.label for channel in self.channels)

    def mean_per_frame(self) -> np.ndarray:
        """(masses, height, width) mean counts per covering frame; NaN where none covered."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.coverage > 0, self.counts / self.coverage, np.nan)

    def rate_cps(self) -> np.ndarray:
        """(masses, height, width) count rate, counts per second of dwell; NaN where uncovered."""
        dwell_s = np.array([channel.dwell_time_us * 1e-6 for channel in self.channels])
        return self.mean_per_frame() / dwell_s[:, None, None]


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
        alignment from outside the field) are NaN in ``counts`` and ``variance``.
    """
    n_frames = acquisition.n_frames
    selected = _frame_indices(frames, n_frames, acquisition.name)
    index = list(selected)
    total = np.zeros(acquisition.shape[1:], dtype=np.float64)
    for frame in index:  # one frame at a time: lazy counts are never read whole
        total += np.asarray(acquisition.counts[frame], dtype=np.float64)
    if acquisition.variance is not None:
        variance = np.asarray(acquisition.variance)[index].sum(axis=0, dtype=np.float64)
    else:
        variance = total.copy()  # raw counts: Poisson
    raw = acquisition.raw_counts
    raw_total = (np.asarray(raw)[index].sum(axis=0, dtype=np.float64) if raw is not None
                 else total.copy())
    if acquisition.coverage is not None:
        coverage = np.asarray(acquisition.coverage)[index].sum(axis=0, dtype=np.float64)
    else:
        coverage = np.full(acquisition.shape[2:], float(len(index)))
    missing = coverage <= 0
    for array in (total, variance, raw_total):
        array[:, missing] = np.nan
    record = HistoryRecord("accumulate", {"frames": list(selected)})
    return Accumulation(counts=total, variance=variance, coverage=coverage,
                        raw_counts=raw_total, frames=selected, channels=acquisition.channels,
                        pixel_size_um=acquisition.pixel_size_um,
                        history=acquisition.history + (record,))
