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
    """Correlation, significance and uncertainty of a frame (see FrameRegistration)."""

    def __init__(self, spectra: _Spectra):
        self.spectra = spectra
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
        spectrum, mine, reference, noise = correlated
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
        variance = np.multiply(self.window_squared, frame(spectra.data, index),
                               dtype=np.float32)  # single, whatever the counts' type
        moments = spectra.kernels.gradient_moments
        covariance = _symmetric(*moments(variance, 1.0, gradient_y, gradient_x))
        own_y, own_x = self._gradients(mine, self.no_shift)
        covariance += _symmetric(*moments(noise, float(spectra.mean_counts), own_y, own_x))
        if np.all(np.linalg.eigvalsh(hessian) < 0):
            inverse_hessian = np.linalg.inv(hessian)
            uncertainty = np.sqrt(np.clip(np.diag(inverse_hessian @ covariance
                                                  @ inverse_hessian), 0, None))
        else:  # no maximum: the translation is not determined
            uncertainty = np.full(2, np.inf)
        return correlation, correlation / self.noise_spread, uncertainty


def _symmetric(yy: float, yx: float, xx: float) -> np.ndarray:
    """The symmetric 2 x 2 matrix of these entries."""
    return np.array([[yy, yx], [yx, xx]])


def collect(results) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(correlation, significance, uncertainty) arrays from per-frame measurements."""
    correlation = np.array([r[0] for r in results], dtype=np.float64)
    significance = np.array([r[1] for r in results], dtype=np.float64)
    uncertainty = np.array([r[2] for r in results], dtype=np.float64).reshape(-1, 2)
    return correlation, significance, uncertainty


def measure_all(spectra: _Spectra, shifts: np.ndarray, sums: _Sums, fixed_reference):
    """Diagnostics of every frame at ``shifts`` in a pass of their own."""
    diagnostics = FrameDiagnostics(spectra)
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
