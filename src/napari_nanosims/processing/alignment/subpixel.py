"""Sub-pixel registration machinery, in Fourier space.

Every frame is reduced once to a spectrum: counts minus their local background (a
Gaussian of :data:`.background.HIGH_PASS_PX`) and minus their window-weighted mean, times a window
that tapers to zero at the frame's edges (and is zero outside a chosen region),
zero-padded so that relative shifts up to a quarter of the frame never wrap.
Smoothing is a Gaussian filter applied to the correlation spectrum. A sum of placed
frames is kept as a spectrum (with the sum of their phase factors, whose product with
the window's spectrum is their coverage), so a leave-one-out reference is the sum
minus one frame's phase-shifted spectrum, and one inverse FFT gives a frame's
correlation at every whole-pixel shift. The sub-pixel maximum is found by Newton's
method on the Fourier interpolation of that correlation, with exact derivatives from
the spectrum. :mod:`.sums` keeps the sums, :mod:`.registration` runs the passes.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .._frames import frame, map_frames
from . import _kernels
from .background import local_background

#: Reference pixels covered by less than this (in frames' window weight) are left out.
COVERAGE_MIN = 0.5
#: Newton's method stops at a step this short, px (quadratic convergence: the step after
#: it would be about a millionth of a pixel; translations are kept to 0.01 px); that
#: last step is taken without evaluating the correlation where it ends.
PEAK_TOLERANCE_PX = 1e-3
#: Frequencies where the correlation filter is below this are left out of the sums
#: that locate a peak (its relative contribution is below this too).
BAND_NEGLIGIBLE = 1e-6
#: Width of the window's taper at the frame's edges, in smoothing widths.
TAPER_SMOOTHING_WIDTHS = 3.0


def subpixel_smoothing_px(mean_counts_per_pixel: float) -> float:
    """Gaussian smoothing (sigma, px) of the frames before sub-pixel correlation.

    1 px from 2 counts per pixel up, more at lower counts (1.4 px at 0.5 counts), at
    most 2 px.
    """
    if not np.isfinite(mean_counts_per_pixel) or mean_counts_per_pixel <= 0:
        return 2.0
    return float(np.clip((2.0 / mean_counts_per_pixel) ** 0.25, 1.0, 2.0))


def _within(value: float, centre: float) -> float:
    """``value`` clipped to ``centre`` +- 1 (the Newton search stays within a pixel)."""
    return min(max(value, centre - 1.0), centre + 1.0)


def _taper(position: np.ndarray, length: int, width_px: float) -> np.ndarray:
    """Raised-cosine taper of a frame of ``length`` px at (fractional) ``position``s:
    0 outside the frame, rising to 1 over ``width_px`` from each edge."""
    distance = np.minimum(position, length - 1 - position) + 0.5
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(distance / width_px, 0.0, 1.0))


def edge_taper(shape: tuple[int, int], width_px: float) -> np.ndarray:
    """Window that rises from 0 at the frame's edges to 1 over ``width_px`` (raised cosine)."""
    rows, cols = (_taper(np.arange(n, dtype=np.float64), n, width_px) for n in shape)
    return np.outer(rows, cols).astype(np.float32)


def frame_window(shape: tuple[int, int], region: np.ndarray | None, sigma_px: float
                 ) -> np.ndarray:
    """The frames' window: an edge taper of three smoothing widths, times the region."""
    window = edge_taper(shape, TAPER_SMOOTHING_WIDTHS * sigma_px)
    if region is not None:
        window = window * region.astype(np.float32)
    return window


def _stack_geometry(shape) -> tuple[tuple[int, int], tuple[int, int]]:
    """(largest lag searched (rows, cols), default padded canvas (rows, cols)) of a
    (frames, H, W) stack of ``shape`` (no frame is read)."""
    import scipy.fft

    _, height, width = shape
    # Relative shifts searched: up to a quarter of the frame (at least 4 px).
    max_lag = (max(4, height // 4), max(4, width // 4))
    canvas = (scipy.fft.next_fast_len(height + max_lag[0], real=True),
              scipy.fft.next_fast_len(width + max_lag[1], real=True))
    return max_lag, canvas


def _mean_counts(data) -> float:
    """Mean counts per pixel and frame of a (frames, H, W) stack, from up to 8 frames
    spread over it (the smoothing depends on the mean count, which a few frames tell
    well enough)."""
    n_frames, height, width = data.shape
    sample = np.unique(np.linspace(0, n_frames - 1, min(n_frames, 8)).round().astype(int))
    totals = [float(frame(data, int(k)).sum(dtype=np.float64)) for k in sample]
    return sum(totals) / (len(sample) * height * width)


def choose_stack_weighting(data, region: np.ndarray | None, fixed=None):
    """The band-pass a (frames, H, W) stack is registered with: chosen from the scene
    by the error each band predicts (:func:`.weighting.choose_weighting`, on the
    default canvas), or ``fixed`` (sigma_px, high_pass_px)."""
    from .weighting import choose_weighting

    _, canvas = _stack_geometry(data.shape)
    base_sigma = subpixel_smoothing_px(_mean_counts(data))
    return choose_weighting(data, frame_window(data.shape[1:], region, base_sigma), canvas,
                            base_sigma, local_background, fixed=fixed)


class _Band(NamedTuple):
    """Part of the half spectrum a correlation is summed over: its rows (a slice or
    indices, in FFT order), its first ``cols`` columns, their angular frequencies, the
    smoothing filter there, and the factors of the interpolated correlation and its
    first two derivatives: per column (cols, 3), with the column's weight in a real
    inverse transform, and per row (3, rows)."""

    rows: Any
    cols: int
    omega_y: np.ndarray
    omega_x: np.ndarray
    filter: np.ndarray
    column_terms: np.ndarray
    row_terms: np.ndarray


class _Spectra:
    """Windowed, zero-padded frame spectra and what is needed to correlate them.

    ``weighting``: a :class:`~.weighting.Weighting`, a fixed (sigma_px, high_pass_px),
    or None to choose it from the stack. ``canvas``: the padded (rows, cols), at most
    the default (the frame plus a quarter, so that relative shifts up to a quarter of
    the frame never wrap); a smaller one holds frames whose relative shifts span
    less, and the whole-pixel search then stays within half its padding.
    """

    def __init__(self, data, region: np.ndarray | None, weighting=None, canvas=None):
        import scipy.fft

        from .weighting import Weighting

        self.data = data
        n_frames, height, width = data.shape
        self.max_lag, default = _stack_geometry(data.shape)  # reads no frame
        self.region = region
        self.weighting = (weighting if isinstance(weighting, Weighting) else
                          choose_stack_weighting(data, region, weighting))
        self.shape = self.default_shape = default
        if canvas is not None:
            self.shape = (min(int(canvas[0]), default[0]), min(int(canvas[1]), default[1]))
            self.max_lag = tuple(max(1, min(lag, (size - length) // 2)) for lag, size, length
                                 in zip(self.max_lag, self.shape, (height, width),
                                        strict=True))
        self.sigma = self.weighting.sigma_px
        self.high_pass_px = self.weighting.high_pass_px
        self.taper_px = TAPER_SMOOTHING_WIDTHS * self.sigma
        window = frame_window((height, width), region, self.sigma)
        self.window = window
        self.window_sum = float(window.sum(dtype=np.float64))
        self.window_spectrum = scipy.fft.rfft2(window, s=self.shape).astype(np.complex64)
        rows, cols = self.shape
        self.omega_y = 2 * np.pi * np.fft.fftfreq(rows)
        self.omega_x = 2 * np.pi * np.fft.rfftfreq(cols)
        # Gaussian smoothing of both frames = the filter's square on their correlation.
        self.filter = np.exp(-(self.sigma ** 2) * (self.omega_y[:, None] ** 2
                                                  + self.omega_x[None, :] ** 2)
                             ).astype(np.float32)
        # Weights of the half spectrum in a real inverse transform.
        weights = np.full(self.omega_x.size, 2.0)
        weights[0] = 1.0
        if cols % 2 == 0:
            weights[-1] = 1.0
        self.column_weights = weights / (rows * cols)
        # Every correlation spectrum carries the filter: where it is below
        # BAND_NEGLIGIBLE nothing counts, and evaluate() sums over the band inside only
        # (a fifth of the spectrum for the smoothing of a smooth grain).
        keep = self.filter > BAND_NEGLIGIBLE
        band_rows = np.flatnonzero(keep.any(axis=1))
        band_cols = int(np.flatnonzero(keep.any(axis=0)).max()) + 1
        self.full_band = self._band(slice(None) if band_rows.size == rows else band_rows,
                                    band_cols)
        self.spectra = np.empty((n_frames, rows, self.omega_x.size), np.complex64)
        # The canvas arithmetic of the passes: the C kernels where they were built, else
        # numba's where they pay for loading it, else numpy (_kernels.choose).
        self.kernels = _kernels.choose(n_frames * rows * cols)
        for _ in map_frames(self._prepare, n_frames):
            pass

    def outgrown(self, shifts: np.ndarray) -> bool:
        """Whether frames at ``shifts`` (frames, 2) lie beyond what a narrowed canvas
        holds without wrapping them onto each other (with a pixel to spare); never
        along an axis of the default width (as wide as the largest lag searched)."""
        narrowed = np.array(self.shape) < np.array(self.default_shape)
        extent = np.max(np.abs(np.asarray(shifts, dtype=np.float64)), axis=0, initial=0.0)
        room = (np.array(self.shape) - np.array(self.window.shape)) / 2 - 1
        return bool(np.any(narrowed & (extent > room)))  # only a narrowed axis can

    def _band(self, rows, cols: int) -> _Band:
        omega_y, omega_x = self.omega_y[rows], self.omega_x[:cols]
        weights = self.column_weights[:cols]
        return _Band(rows, cols, omega_y, omega_x, self.filter[rows, :cols],
                     np.stack([weights, 1j * omega_x * weights, -(omega_x ** 2) * weights],
                              axis=1),
                     np.stack([np.ones_like(omega_y), 1j * omega_y, -(omega_y ** 2)]))

    def _prepare(self, index: int) -> None:
        import scipy.fft

        counts = frame(self.data, index).astype(np.float32)
        # Local background removed before the window: a flat area at the frame's edge
        # (a dark surround) would otherwise leave the window's own shape in the frame,
        # which correlates best at zero shift and pulls every translation toward it.
        counts = counts - local_background(counts, self.high_pass_px)
        level = float((counts * self.window).sum(dtype=np.float64)) / max(self.window_sum,
                                                                          1e-30)
        weighted = self.window * (counts - np.float32(level))
        self.spectra[index] = scipy.fft.rfft2(weighted, s=self.shape, workers=1)

    def phase_factors(self, shift) -> tuple[np.ndarray, np.ndarray]:
        """The factors per row and per column of :meth:`phase` (single precision)."""
        rows = np.exp(-1j * self.omega_y * shift[0]).astype(np.complex64)
        cols = np.exp(-1j * self.omega_x * shift[1]).astype(np.complex64)
        return rows, cols

    def phase(self, shift) -> np.ndarray:
        """Spectrum factor that moves an image by ``shift`` (rows, columns) pixels."""
        return np.multiply.outer(*self.phase_factors(shift))  # one pass, in single

    def _positions(self, axis: int, offset: float) -> tuple[np.ndarray, int]:
        """Each canvas pixel's position in a frame placed ``offset`` px into the canvas,
        along one axis (px), and the frame's length there."""
        length, size = self.window.shape[axis], self.shape[axis]
        margin = (size - length) / 2  # the canvas wraps around halfway through the padding
        return (np.arange(size) - offset + margin) % size - margin, length

    def _ramp(self, axis: int, offset: float) -> np.ndarray:
        """The taper along one axis for a frame placed ``offset`` px into the canvas."""
        position, length = self._positions(axis, offset)
        return _taper(position, length, self.taper_px).astype(np.float32)

    def _ramp_log_slope(self, axis: int, offset: float) -> np.ndarray:
        """The taper's slope over its value along one axis (per px; 0 outside the
        frame), for a frame placed ``offset`` px into the canvas (see :meth:`_ramp`)."""
        position, length = self._positions(axis, offset)
        from_start = position <= length - 1 - position
        distance = np.where(from_start, position, length - 1 - position) + 0.5
        phase = np.pi * np.clip(distance / self.taper_px, 0.0, 1.0)
        # d/dx of 0.5 - 0.5 cos(pi d / w) over itself: (pi / w) sin / (1 - cos), which
        # is (pi / w) / tan(phase / 2); 0 where the taper is flat or outside the frame.
        slope = np.zeros(position.size)
        rising = (phase > 0) & (phase < np.pi)
        slope[rising] = (np.pi / self.taper_px) / np.tan(phase[rising] / 2)
        return np.where(from_start, slope, -slope)

    def placed_window(self, shift) -> np.ndarray:
        """The window of a frame placed at ``shift`` in the canvas, in real space."""
        import scipy.fft

        if self.region is None:  # separable: in closed form
            return np.outer(self._ramp(0, shift[0]), self._ramp(1, shift[1]))
        return scipy.fft.irfft2(self.window_spectrum * self.phase(shift), s=self.shape,
                                workers=1)

    def window_slopes(self, shift) -> tuple[np.ndarray, np.ndarray]:
        """The derivatives along rows and columns (per px) of the window placed at
        ``shift``, from its spectrum (as :meth:`placed_window` places a region's)."""
        import scipy.fft

        spectrum = self.window_spectrum * self.phase(shift)
        return tuple(scipy.fft.irfft2(spectrum * (1j * omega), s=self.shape, workers=1)
                     for omega in (self.omega_y[:, None], self.omega_x[None, :]))

    def whole_pixel_peak(self, spectrum: np.ndarray) -> tuple[int, int]:
        """Shift with the highest correlation among whole pixels up to ``max_lag``."""
        import scipy.fft

        values = scipy.fft.irfft2(spectrum, s=self.shape, workers=1)
        (lag_y, lag_x), (rows, cols) = self.max_lag, self.shape
        row_index = np.r_[0:lag_y + 1, rows - lag_y:rows]
        col_index = np.r_[0:lag_x + 1, cols - lag_x:cols]
        window = values[np.ix_(row_index, col_index)]
        peak_row, peak_col = np.unravel_index(int(np.argmax(window)), window.shape)
        row, col = int(row_index[peak_row]), int(col_index[peak_col])
        return (row - rows if row > rows // 2 else row, col - cols if col > cols // 2 else col)

    def band(self, spectrum: np.ndarray, band: _Band | None = None) -> np.ndarray:
        """The part of a correlation spectrum in ``band`` (default: where the filter is
        not negligible)."""
        band = self.full_band if band is None else band
        if spectrum.shape == (band.omega_y.size, band.cols):
            return spectrum  # already
        return spectrum[band.rows, :band.cols]

    def evaluate(self, spectrum: np.ndarray, shift, band: _Band | None = None
                 ) -> tuple[float, np.ndarray, np.ndarray]:
        """Correlation, its gradient and Hessian at a sub-pixel ``shift`` (exact
        interpolation); ``spectrum`` whole or its :meth:`band` (``band``: the default
        band, or the band the spectrum was cut to)."""
        band = self.full_band if band is None else band
        spectrum = self.band(spectrum, band)
        # Two small matrix products: over columns the interpolation at shift[1] and its
        # first and second derivatives, then the same over rows; entry (a, b) of the
        # result is the a-th derivative along y of the b-th along x (few numpy calls:
        # this runs about ten times per frame and pass).
        columns = band.column_terms * np.exp(1j * band.omega_x * shift[1])[:, None]
        rows = band.row_terms * np.exp(1j * band.omega_y * shift[0])[None, :]
        terms = (rows @ (spectrum @ columns.astype(np.complex64))).real
        value = float(terms[0, 0])
        gradient = np.array([terms[1, 0], terms[0, 1]])
        hessian = np.array([[terms[2, 0], terms[1, 1]], [terms[1, 1], terms[0, 2]]])
        return value, gradient, hessian

    def peak(self, spectrum: np.ndarray, start, at_start=None, band: _Band | None = None
             ) -> tuple[np.ndarray, float, np.ndarray]:
        """Sub-pixel maximum near a whole-pixel ``start``: (shift, value, Hessian).

        The last Newton step (shorter than :data:`PEAK_TOLERANCE_PX`) is not evaluated:
        the value there is the quadratic model's, the Hessian the point's before it.

        ``at_start``: :meth:`evaluate`'s result at ``start`` when already known;
        ``band``: as for :meth:`evaluate`.
        """
        band = self.full_band if band is None else band
        spectrum = self.band(spectrum, band)  # once for every step below
        start_y, start_x = float(start[0]), float(start[1])
        shift_y, shift_x = start_y, start_x
        value, gradient, hessian = (self.evaluate(spectrum, (shift_y, shift_x), band)
                                    if at_start is None else at_start)
        # Plain floats in the loop below (the same IEEE operations as numpy's on
        # 2-vectors, without an array per operation: this runs a few times per frame
        # and pass, holding the GIL the frame threads share).
        for _ in range(10):
            (h_yy, h_yx), (_, h_xx) = hessian.tolist()
            gradient_y, gradient_x = gradient.tolist()
            determinant = h_yy * h_xx - h_yx * h_yx
            if h_yy < 0 and determinant > 0:  # negative definite: a Newton step (2 x 2)
                step_y = -(h_xx * gradient_y - h_yx * gradient_x) / determinant
                step_x = -(h_yy * gradient_x - h_yx * gradient_y) / determinant
            else:  # not at a maximum yet: a short move uphill
                norm = max(float(np.hypot(gradient_y, gradient_x)), 1e-30)
                step_y, step_x = 0.25 * gradient_y / norm, 0.25 * gradient_x / norm
            length = float(np.hypot(step_y, step_x))
            if length > 0.5:
                step_y, step_x = step_y * (0.5 / length), step_x * (0.5 / length)
            candidate = (_within(shift_y + step_y, start_y), _within(shift_x + step_x, start_x))
            if (length < PEAK_TOLERANCE_PX and h_yy < 0 and determinant > 0
                    and candidate == (shift_y + step_y, shift_x + step_x)):
                # The last Newton step, not clipped (its model gain is then never
                # negative): taken without evaluating the correlation there (39 % of a
                # 10-frame registration's evaluations were these); its value from the
                # quadratic model, exact to the step's cube (1e-9 px^3).
                move_y, move_x = candidate[0] - shift_y, candidate[1] - shift_x
                value += (gradient_y * move_y + gradient_x * move_x
                          + 0.5 * (h_yy * move_y * move_y + 2.0 * h_yx * move_y * move_x
                                   + h_xx * move_x * move_x))
                shift_y, shift_x = candidate
                break
            new_value, new_gradient, new_hessian = self.evaluate(spectrum, candidate, band)
            if new_value < value:  # overshoot: halve the step instead
                candidate = (_within(shift_y + 0.5 * step_y, start_y),
                             _within(shift_x + 0.5 * step_x, start_x))
                new_value, new_gradient, new_hessian = self.evaluate(spectrum, candidate,
                                                                     band)
                if new_value < value:
                    break
            (shift_y, shift_x), value = candidate, new_value
            gradient, hessian = new_gradient, new_hessian
            if length < PEAK_TOLERANCE_PX:
                break
        shift = np.array([shift_y, shift_x])
        return shift, value, hessian
