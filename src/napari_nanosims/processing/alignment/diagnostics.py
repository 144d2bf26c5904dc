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
        # The frame's window squared on the padded canvas (zero outside the frame): the
        # gradients below are then used as the inverse FFT returns them, uncropped.
        height, width = spectra.window.shape
        canvas = np.zeros(spectra.shape, np.float32)
        canvas[:height, :width] = spectra.window * spectra.window
        self.window_squared = canvas
        # A pure-noise frame's correlation has a spread of one over the square root of
        # the number of independent (smoothing-sized) areas under the window.
        effective = (float(window.sum(dtype=np.float64)) ** 2
                     / max(float(np.dot(window, window)), 1e-30)
                     / (4 * np.pi * spectra.sigma ** 2))
        self.noise_spread = 1.0 / np.sqrt(max(effective, 1.0))
        derivatives = np.stack([
            np.broadcast_to(1j * spectra.omega_y[:, None], spectra.filter.shape),
            np.broadcast_to(1j * spectra.omega_x[None, :], spectra.filter.shape)
        ]) * spectra.filter
        self.derivatives = derivatives.astype(np.complex64)  # single, as every spectrum
        # sum(weights |spectrum|^2) is the power of the smoothed image (Parseval); as
        # |root weights x spectrum|^2 it is one product and one BLAS dot product.
        self.root_weights = np.sqrt(spectra.column_weights[None, :] * spectra.filter
                                    ).astype(np.float32)

    def _inverse(self, spectrum) -> np.ndarray:
        import scipy.fft

        return scipy.fft.irfft2(spectrum, s=self.spectra.shape, workers=1).ravel()

    def _power(self, spectrum) -> float:
        weighted = (spectrum * self.root_weights).ravel()
        return float(np.vdot(weighted, weighted).real)

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
        norm = np.sqrt(self._power(mine) * self._power(reference))
        correlation = peak_value / norm if norm > 0 else 0.0
        back = reference * spectra.phase(-np.asarray(shift))  # into the frame's own pixels
        # Poisson propagation: at the peak, the correlation's gradient has the variance
        # sum(window^2 counts (gradient of the smoothed reference)^2) from the frame's
        # noise, plus sum(reference variance (gradient of the smoothed frame)^2) from the
        # reference's (a mean of a few frames is noisy too; the frame's gradient holds
        # its own noise, so the noise-times-noise term is in); the uncertainty of the
        # shift is that through the inverse Hessian.
        height, width = spectra.window.shape
        variance = self.window_squared.copy()
        variance[:height, :width] *= np.maximum(frame(spectra.data, index), 0)
        variance = variance.ravel()
        gradient_y = self._inverse(back * self.derivatives[0])
        gradient_x = self._inverse(back * self.derivatives[1])
        weighted_y, weighted_x = variance * gradient_y, variance * gradient_x
        cross = float(np.dot(weighted_y, gradient_x))
        covariance = np.array([[float(np.dot(weighted_y, gradient_y)), cross],
                               [cross, float(np.dot(weighted_x, gradient_x))]])
        own_y = self._inverse(mine * self.derivatives[0])
        own_x = self._inverse(mine * self.derivatives[1])
        noise = noise.ravel() * np.float32(spectra.mean_counts)
        noise_y, noise_x = noise * own_y, noise * own_x
        cross = float(np.dot(noise_y, own_x))
        covariance += np.array([[float(np.dot(noise_y, own_y)), cross],
                                [cross, float(np.dot(noise_x, own_x))]])
        if np.all(np.linalg.eigvalsh(hessian) < 0):
            inverse_hessian = np.linalg.inv(hessian)
            uncertainty = np.sqrt(np.clip(np.diag(inverse_hessian @ covariance
                                                  @ inverse_hessian), 0, None))
        else:  # no maximum: the translation is not determined
            uncertainty = np.full(2, np.inf)
        return correlation, correlation / self.noise_spread, uncertainty


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
