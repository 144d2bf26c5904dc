"""How well each frame registered: its normalised correlation with the reference, the
significance of that correlation and the uncertainty of its translation.

All three follow from what a refinement pass computes anyway for a frame (its weighted
image and reference, their correlation spectrum, the reference's noise), so the pass
that confirms the fixed point measures them too (:mod:`.registration`); a stack
registered against a fixed frame measures them in a pass of their own.
"""

from __future__ import annotations

import numpy as np

from .._frames import frame, map_frames
from .subpixel import _Spectra
from .sums import _Sums

__all__ = ["FrameDiagnostics", "interpolate_flagged", "measure_all"]


class FrameDiagnostics:
    """Correlation, significance and uncertainty of a frame (see FrameRegistration).

    ``window_term``: the uncertainty of the translation the passes settle at, through
    the Jacobian of the correlation's gradient over the frame's move (its window moving
    with it); False: through the Hessian over the lag alone (smaller than the truth
    wherever window edges meet a level: up to 3x on a smooth grain; the piecewise
    patches use it, calibrated on their scatter by ``_field.calibrated_sigma``).
    """

    def __init__(self, spectra: _Spectra, window_term: bool = True):
        self.spectra = spectra
        self.window_term = window_term
        window = spectra.window.ravel()
        # The frame's window squared: the weight of its counts' variance below.
        self.window_squared = spectra.window * spectra.window
        # A pure-noise frame's correlation has a spread of one over the square root of
        # the number of independent (smoothing-sized) areas under the window.
        effective = (float(window.sum(dtype=np.float64)) ** 2
                     / max(float(np.dot(window, window)), 1e-30)
                     / (4 * np.pi * spectra.sigma ** 2))
        self.noise_spread = 1.0 / np.sqrt(max(effective, 1.0))
        self.no_shift = (np.ones_like(spectra.omega_y, dtype=np.complex64),
                         np.ones_like(spectra.omega_x, dtype=np.complex64))
        # sum(weights |spectrum|^2) is the power of the smoothed image (Parseval).
        self.power_weights = (spectra.column_weights[None, :] * spectra.filter
                              ).astype(np.float32)

    def _gradients(self, spectrum, phase_factors) -> tuple[np.ndarray, np.ndarray]:
        """The smoothed image's derivatives along rows and columns, on the canvas, the
        image moved by ``phase_factors`` (rows, columns) first."""
        import scipy.fft

        spectra = self.spectra
        along_y, along_x = np.empty_like(spectrum), np.empty_like(spectrum)
        spectra.kernels.derivative_spectra(spectrum, *phase_factors, spectra.omega_y,
                                           spectra.omega_x, spectra.filter, along_y, along_x)
        return (scipy.fft.irfft2(along_y, s=spectra.shape, workers=1),
                scipy.fft.irfft2(along_x, s=spectra.shape, workers=1))

    def measure(self, index: int, shift, correlated, at_zero=None
                ) -> tuple[float, float, np.ndarray]:
        """(correlation, significance, uncertainty (2,)) of frame ``index`` at ``shift``
        from ``_Sums.correlate(index, shift, noise=True)``'s result (``at_zero``: the
        correlation's ``evaluate`` at lag 0, when known)."""
        spectra = self.spectra
        spectrum, mine, reference, noise, weighed = correlated
        # The reference is weighted by the frame's window at its place: the normalised
        # correlation of the two smoothed images follows from their spectra (Parseval).
        peak_value, _, hessian = (spectra.evaluate(spectrum, (0.0, 0.0)) if at_zero is None
                                  else at_zero)
        norm = np.sqrt(spectra.kernels.weighted_power(mine, self.power_weights)
                       * spectra.kernels.weighted_power(reference, self.power_weights))
        correlation = peak_value / norm if norm > 0 else 0.0
        # Poisson propagation: at the peak, the correlation's gradient has the variance
        # sum(window^2 counts (gradient of the smoothed reference)^2) from the frame's
        # noise, plus sum(reference variance (gradient of the smoothed frame)^2) from the
        # reference's (a mean of a few frames is noisy too; the frame's gradient holds
        # its own noise, so the noise-times-noise term is in); the uncertainty of the
        # shift is that through the inverse Hessian.
        # The reference moved back into the frame's own pixels, where its counts are.
        gradient_y, gradient_x = self._gradients(reference,
                                                 spectra.phase_factors(-np.asarray(shift)))
        counts = frame(spectra.data, index)
        variance = np.multiply(self.window_squared, counts,
                               dtype=np.float32)  # single, whatever the counts' type
        moments = spectra.kernels.gradient_moments
        covariance = _symmetric(*moments(variance, 1.0, gradient_y, gradient_x))
        own_y, own_x = self._gradients(mine, self.no_shift)
        # The reference's variance at the counts where it is, not at the frames' mean
        # count: the frame's own, placed where it stands (the same scene; a derivative
        # leaves a pixel's own count out, so they are independent). Brightest where the
        # gradients are, one frame as the reference (reference=k) was 1.3-1.5x too
        # certain at the mean count.
        local = self._placed(counts, shift)
        covariance += _symmetric(*moments(local * noise, 1.0, own_y, own_x))
        # The translation is where a pass no longer moves the frame: where the gradient
        # at lag 0 vanishes, the frame's window and its copy on the reference placed
        # with it. Its noise is that gradient's through the gradient's change as the
        # frame moves: the Hessian over the lag, plus what the window moving with the
        # frame adds (the product of window edges and levels, which the lag's Hessian
        # holds but a move cancels: on a smooth grain on a dark surround the lag's
        # Hessian is about three times as steep, and the uncertainty was that too small).
        jacobian = (hessian + self._window_term(shift, weighed.reference, own_y, own_x)
                    + self._coverage_term(weighed, reference)
                    if self.window_term else hessian)
        if (np.all(np.linalg.eigvalsh(hessian) < 0)
                and np.all(np.linalg.eigvalsh(jacobian + jacobian.T) < 0)):
            inverse = np.linalg.inv(jacobian)
            uncertainty = np.sqrt(np.clip(np.diag(inverse @ covariance @ inverse.T), 0,
                                          None))
        else:  # no maximum, or none the passes settle at: the translation is not determined
            uncertainty = np.full(2, np.inf)
        return correlation, correlation / self.noise_spread, uncertainty

    def jacobian(self, shift, correlated, hessian: np.ndarray) -> np.ndarray:
        """How the correlation's gradient at lag 0 changes as the frame moves (2 x 2,
        per px): ``hessian`` (over the lag, at 0) plus the window's term and (against
        frozen frames) the coverage's, from ``_Sums.correlate(index, shift,
        noise=True)``'s result."""
        own_y, own_x = self._gradients(correlated[1], self.no_shift)
        return (hessian + self._window_term(shift, correlated[4].reference, own_y, own_x)
                + self._coverage_term(correlated[4], correlated[2]))

    def _coverage_term(self, weighed, reference_spectrum) -> np.ndarray:
        """What the lag's Hessian holds that a move does not: the lag moves the weight of
        the others' coverage (up to one frame) with the frame, a move leaves it where
        the others are. The sum over the canvas of the smoothed reference's derivative
        i, times the frame less its matched level, times the coverage's derivative j,
        where that coverage is between 0 and 1: all along one frame's taper as the
        reference (``reference=k``; ``weighed.coverage_slopes`` are given then only).
        Not leave-one-out, where the others' coverage is between 0 and 1 only at their
        edges: there the term moved a grain frame's uncertainty by 60 % between two
        measurements 0.05 px apart, and the calibration over stacks by under 5 %. Not
        with a region: its sharp edges make the coverage step (and ring, from its
        spectrum), where this first-order term overshoots (a grain inside a round
        region came out 2.4x too uncertain with it)."""
        weight, frame_image, placed = weighed.weight, weighed.frame, weighed.placed
        term = np.zeros((2, 2))
        if not weighed.coverage_slopes:
            return term
        fractional = (weight > 0) & (weight < 1)
        total_weight = float(np.vdot(placed, weight))
        if not (fractional.any() and total_weight > 0):
            return term
        level = float(np.vdot(frame_image * weight, weight)) / total_weight  # as weigh's
        base = np.where(fractional, frame_image - level * placed, 0.0)
        parts = [base * slope for slope in weighed.coverage_slopes]
        if not any(np.any(part) for part in parts):
            return term
        gradients = self._gradients(reference_spectrum, self.no_shift)
        for i, gradient in enumerate(gradients):
            term[i] = [float(np.vdot(gradient, part)) for part in parts]
        return term

    def _placed(self, counts: np.ndarray, shift) -> np.ndarray:
        """A frame's ``counts`` on the canvas, placed at ``shift`` rounded to whole px."""
        canvas = np.zeros(self.spectra.shape, dtype=np.float32)
        canvas[:counts.shape[0], :counts.shape[1]] = counts
        return np.roll(canvas, (int(np.round(shift[0])), int(np.round(shift[1]))),
                       axis=(0, 1))

    def _window_term(self, shift, reference_image, own_y, own_x) -> np.ndarray:
        """How the gradient at lag 0 changes as the frame's window moves with the frame
        (2 x 2: row i of the gradient, column j of the move): the sum over the canvas of
        the smoothed frame's derivative i, times the reference before the window, times
        the window's derivative j (without a region: the reference, times the window's
        derivative over the window, per axis; the matched level's own change, under 1 %
        there, is left out)."""
        spectra = self.spectra
        term = np.empty((2, 2))
        if spectra.region is None:  # separable: the slopes over the values per axis,
            # which are not 0 only on the taper's rows and columns
            log_y = spectra._ramp_log_slope(0, float(shift[0]))
            log_x = spectra._ramp_log_slope(1, float(shift[1]))
            rows, cols = np.flatnonzero(log_y), np.flatnonzero(log_x)
            for i, own in enumerate((own_y, own_x)):
                term[i, 0] = np.einsum("r,rc,rc->", log_y[rows], own[rows],
                                       reference_image[rows], dtype=np.float64)
                term[i, 1] = np.einsum("c,rc,rc->", log_x[cols], own[:, cols],
                                       reference_image[:, cols], dtype=np.float64)
            return term
        # A region (a mask's sharp edges): also the matched level's change as the window
        # moves (_sums._before_window); the window's slopes from its spectrum, as the
        # window is placed (_Spectra.placed_window).
        before_window, placed_weight, level_change = reference_image
        own_weight = np.array([np.vdot(own_y, placed_weight), np.vdot(own_x, placed_weight)])
        for j, slope in enumerate(spectra.window_slopes(shift)):
            weighted = np.multiply(before_window, slope, dtype=np.float64)
            term[:, j] = (np.vdot(own_y, weighted), np.vdot(own_x, weighted))
            term[:, j] -= own_weight * float(np.vdot(slope, level_change))
        return term


def _symmetric(yy: float, yx: float, xx: float) -> np.ndarray:
    """The symmetric 2 x 2 matrix of these entries."""
    return np.array([[yy, yx], [yx, xx]])


def collect(results) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(correlation, significance, uncertainty) arrays from per-frame measurements."""
    correlation = np.array([r[0] for r in results], dtype=np.float64)
    significance = np.array([r[1] for r in results], dtype=np.float64)
    uncertainty = np.array([r[2] for r in results], dtype=np.float64).reshape(-1, 2)
    return correlation, significance, uncertainty


def measure_all(spectra: _Spectra, shifts: np.ndarray, sums: _Sums, fixed_reference,
                window_term: bool = True):
    """Diagnostics of every frame at ``shifts`` in a pass of their own."""
    diagnostics = FrameDiagnostics(spectra, window_term)
    if fixed_reference is None:
        sums.freeze(shifts)

    def measure(index):
        if fixed_reference is not None and index == fixed_reference:
            return 1.0, np.inf, np.zeros(2)
        correlated = sums.correlate(index, shifts[index], exclude=fixed_reference is None,
                                    noise=True)
        return diagnostics.measure(index, shifts[index], correlated)

    return collect(list(map_frames(measure, shifts.shape[0])))


def interpolate_flagged(shifts: np.ndarray, flagged: np.ndarray) -> np.ndarray:
    """``shifts`` (frames, 2) with each flagged frame's replaced by the linear
    interpolation of its unflagged neighbours' (the nearest one's beyond the ends)."""
    good = np.flatnonzero(~flagged)
    if good.size == 0 or good.size == flagged.size:
        return shifts.copy()
    frames = np.arange(shifts.shape[0])
    return np.column_stack([np.interp(frames, good, shifts[good, axis]) for axis in (0, 1)])
