"""The running sums of placed frames' spectra, and the leave-one-out reference a frame
is correlated with (:mod:`.subpixel` has the spectra, :mod:`.registration` the passes).

The sums are kept as spectra, with the sum of the frames' phase factors (whose product
with the window's spectrum is their coverage): moving a frame is taking its
phase-shifted spectrum out and putting it back at its new place, and a frame's
reference is the sum less its own spectrum, in real space after one inverse FFT.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .subpixel import _Spectra

__all__ = ["REBUILD_AFTER_UPDATES", "Weighed"]

#: The running sums are rebuilt from the frames after this many updates per frame.
REBUILD_AFTER_UPDATES = 4


class Weighed(NamedTuple):
    """What the diagnostics' Jacobian needs of a frame's correlation, in real space on
    the canvas (:meth:`_Sums.correlate` with ``noise``)."""

    #: The weighted reference; with a region :func:`_before_window`'s parts.
    reference: Any
    #: The frame at its place, before the weight, and its window there.
    frame: np.ndarray
    placed: np.ndarray
    #: The others' coverage up to one frame (the weight besides the window) ...
    weight: np.ndarray
    #: ... and the slopes of that coverage along rows and columns (per px; against frozen
    #: frames without a region only, else empty).
    coverage_slopes: tuple


class _Sums:
    """Running sum of placed frames' spectra and of their phase factors (for coverage)."""

    def __init__(self, spectra: _Spectra):
        self.spectra = spectra
        self.total = np.zeros_like(spectra.spectra[0])
        self.phases = np.zeros_like(spectra.spectra[0])
        self.updates = 0  # single-precision updates since the sums were last rebuilt
        self._slopes: tuple | None = None  # see freeze and coverage_slopes
        self._frozen_at = np.zeros((0, 2))
        self._ramps: tuple = ()

    def add(self, index: int | np.integer, shift, sign: float = 1.0):
        rows, cols = self.spectra.phase_factors(shift)
        # The phases give the coverage of a region's windows; without a region the
        # coverage is built from the taper's ramps (freeze) and they are not kept.
        if self.spectra.region is not None:
            phase = np.multiply.outer(rows, cols)
            self.phases += phase if sign > 0 else -phase
        self.spectra.kernels.add_shifted(self.total, self.spectra.spectra[index], rows, cols,
                                         1.0 if sign > 0 else -1.0)
        self.updates += 1

    def move_frames(self, shifts: np.ndarray, moved: np.ndarray, common=(0.0, 0.0)
                    ) -> np.ndarray:
        """Every frame from ``shifts`` to ``moved``, then all of them by ``-common``
        (frames, 2, px); returns where they now are. Rebuilt from the frames when most
        of them move: one product a frame instead of two (out of the sum and back in)."""
        changed = np.flatnonzero(np.any(moved != shifts, axis=1))
        placed = moved - np.asarray(common, dtype=np.float64)
        if 2 * changed.size > len(shifts):
            self.rebuild(placed)
            return placed
        for index in changed:
            self.add(index, shifts[index], -1.0)
            self.add(index, moved[index])
        if np.any(placed != moved):
            self.move_all(-np.asarray(common, dtype=np.float64))
        return placed

    def rebuild(self, shifts: np.ndarray, frames=None):
        """The sums of ``frames`` (default: all) at ``shifts``, from the frames alone."""
        frames = np.arange(len(shifts)) if frames is None else np.asarray(frames)
        self.total = np.zeros_like(self.total)
        self.phases = np.zeros_like(self.phases)
        for index, shift in zip(frames, shifts, strict=True):
            self.add(index, shift)
        self.updates = 0

    def move_all(self, shift):
        """Move every placed frame by the same ``shift``."""
        rows, cols = self.spectra.phase_factors(shift)
        self.spectra.kernels.shift_spectrum(self.total, rows, cols, self.total)
        if self.spectra.region is not None:
            self.spectra.kernels.shift_spectrum(self.phases, rows, cols, self.phases)
        self.updates += 1

    def freeze(self, shifts: np.ndarray, frames=None):
        """Keep the sum and the coverage in real space for ``frames`` (default: all) at
        ``shifts``, which must be where :meth:`add` and :meth:`move_all` put them."""
        import scipy.fft

        spectra = self.spectra
        frames = np.arange(len(shifts)) if frames is None else np.asarray(frames)
        if self.updates > REBUILD_AFTER_UPDATES * max(len(frames), 1):
            # Rebuilt from the frames now and then: running single-precision updates
            # drift (by about 1e-7 of the sum each).
            self.rebuild(shifts, frames)
        self.summed = scipy.fft.irfft2(self.total, s=spectra.shape, workers=1)
        self._slopes = None  # the coverage's, when asked (coverage_slopes)
        self._frozen_at = np.array(shifts, dtype=np.float64)
        if spectra.region is None:
            # The windows are separable: their sum is one matrix product of the ramps.
            rows = np.stack([spectra._ramp(0, shift[0]) for shift in shifts])
            cols = np.stack([spectra._ramp(1, shift[1]) for shift in shifts])
            self._ramps = (rows, cols)  # for coverage_slopes
            self.coverage = rows.T @ cols
        else:
            self.coverage = scipy.fft.irfft2(spectra.window_spectrum * self.phases,
                                             s=spectra.shape, workers=1)

    def coverage_slopes(self) -> tuple:
        """The frozen coverage's derivatives along rows and columns (per px; without a
        region: the diagnostics use them only then)."""
        if self._slopes is None:
            spectra = self.spectra
            if spectra.region is not None:
                raise ValueError("coverage slopes are kept without a region only")
            # As freeze: one matrix product of its ramps, one of them by its slope.
            ramps = self._ramps
            slopes = [ramps[axis] * np.stack([spectra._ramp_log_slope(axis, at[axis])
                                              for at in self._frozen_at])
                      for axis in (0, 1)]
            self._slopes = (slopes[0].T @ ramps[1], ramps[0].T @ slopes[1])
        return self._slopes

    def correlate(self, index: int, shift, exclude: bool = True, noise: bool = False):
        """Frame ``index`` placed at ``shift`` against the mean of the frozen frames.

        The reference is the mean of all frozen frames (but ``index`` when ``exclude``),
        per pixel over the frames covering it: dividing by the coverage removes the
        envelope that would favour positions where more frames overlap (a pull toward
        the median). Frame and reference are then given one and the same weight: the
        frame's window at ``shift`` times the coverage (up to one frame). With equal
        weights the slope of the weight, which would pull the frame toward its own
        centre or away from where the reference ends, cancels at the peak.

        Returns
        -------
        (correlation spectrum, frame spectrum, reference spectrum)
            The correlation is a function of the lag from ``shift``; the two others are
            the weighted images' spectra (for the normalised correlation). With ``noise``
            a fourth item: the variance of the reference per pixel, in units of the
            frames' mean count (a mean of ``coverage`` frames, weighted); and a fifth,
            :class:`Weighed`, for the diagnostics' Jacobian.
        """
        import scipy.fft

        spectra = self.spectra
        placed = spectra.placed_window(shift)
        kernels = spectra.kernels
        moved = kernels.shift_spectrum(spectra.spectra[index], *spectra.phase_factors(shift),
                                       np.empty_like(spectra.spectra[index]))
        mine = scipy.fft.irfft2(moved, s=spectra.shape, workers=1)
        summed, coverage = self.summed, self.coverage
        frame_part, reference = np.empty_like(summed), np.empty_like(summed)
        noise_values = np.empty_like(summed) if noise else np.empty((0, 0), summed.dtype)
        # With ``exclude`` the frame is taken out of the sums; frame and reference then
        # get the weight placed * min(coverage, 1) (_kernels.weigh).
        kernels.weigh(summed, coverage, mine.astype(summed.dtype, copy=False),
                      placed.astype(summed.dtype, copy=False), bool(exclude), bool(noise),
                      frame_part, reference, noise_values)
        frame_spectrum = scipy.fft.rfft2(frame_part, workers=1)
        reference_spectrum = scipy.fft.rfft2(reference, workers=1)
        spectrum = kernels.cross_spectrum(frame_spectrum, reference_spectrum, spectra.filter,
                                          np.empty_like(frame_spectrum))
        result: tuple = (spectrum, frame_spectrum, reference_spectrum)
        if noise:
            others = coverage - placed if exclude else coverage
            # The coverage's slopes for the diagnostics' coverage term: against frozen
            # frames (reference=k), not leave-one-out (see FrameDiagnostics._coverage_term).
            slopes = (self.coverage_slopes() if spectra.region is None and not exclude
                      else ())
            result += (noise_values, Weighed(
                reference if spectra.region is None else
                _before_window(summed, coverage, mine, placed, exclude),
                mine, placed, np.clip(others, 0.0, 1.0), slopes))
        return result


def _before_window(summed, coverage, mine, placed, exclude: bool) -> tuple:
    """The reference ``_kernels.weigh`` makes, before the frame's window ``placed``, and
    how its level moves with the window: (the mean of the frames in ``summed``, but
    ``mine`` when ``exclude``, less the level it matches, times the coverage up to one
    frame; the window times that coverage; the level's change per unit of the window's
    change, per pixel)."""
    if exclude:
        summed, coverage = summed - mine, coverage - placed
    weight = np.clip(coverage, 0.0, 1.0)
    mean = summed / np.maximum(coverage, 1.0)
    placed_weight = placed * weight
    total_weight = float(placed_weight.sum(dtype=np.float64))
    if not total_weight > 0:
        return mean, placed_weight, np.zeros_like(mean)
    level = float(np.vdot(placed_weight, mean)) / total_weight
    return mean - level * weight, placed_weight, weight * (mean - level) / total_weight
