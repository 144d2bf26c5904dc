"""The frequency weighting of the sub-pixel registration, chosen from the data per stack.

A scene carries its registration information at the spatial frequencies where its
edges are: small sharp cells at high ones, a large grain with soft edges at low ones.
The registration weights the correlation of two frames by a band-pass: the removal of
a local background (a Gaussian of ``high_pass_px``, in real space before the window,
so that a ramp or a flat surround cannot leave the window's shape in the frame) and a
Gaussian smoothing of ``sigma_px`` (a filter on the correlation spectrum). Which
band-pass locates the frames best depends on the scene, the counts and the number of
frames, so a few are compared by the uncertainty each predicts, before any
registration: a frame's power spectrum does not depend on where the frame sits, so the
mean power spectrum of a few frames, less the Poisson noise's, estimates the scene's
whatever the drift.

For a correlation filter ``F`` (the smoothing's square), a background removal ``H`` and
the scene's power ``S`` on the padded grid of ``P`` points, the variance of a frame's
translation along one axis is (first order, white noise of ``nu`` counts per pixel in a
frame and ``nu / (n - 1)`` in the mean of the others, the reference)

    P [nu (1 + 1/(n-1)) sum w^2 F^2 H^2 S + nu^2 / (n-1) W4 sum w^2 F^2 H^4]
    / (sum w^2 F S)^2

with ``w`` the angular frequency along that axis and ``W4`` the sum of the window's
fourth power (the pixels where the two noises meet). The three terms are the frame's
noise against the reference's signal, the reference's noise against the frame's signal
and the noise of the one against the noise of the other; the denominator is the
curvature of the correlation peak.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .._frames import frame, map_frames

__all__ = ["Weighting", "choose_weighting", "HIGH_PASS_CANDIDATES_PX", "SMOOTHING_SCALES",
           "SAMPLE_FRAMES"]

#: Local-background scales compared (Gaussian sigma, px); 8 px was the fixed one before.
HIGH_PASS_CANDIDATES_PX = (8.0, 16.0, float("inf"))
#: Smoothings compared, as multiples of the count-based one (subpixel_smoothing_px).
SMOOTHING_SCALES = (1.0, 1.5, 2.0, 3.0, 4.0)
#: Frames whose power spectra estimate the scene's (spread over the stack).
SAMPLE_FRAMES = 10


@dataclasses.dataclass(frozen=True)
class Weighting:
    """The band-pass a stack is registered with, and why.

    Attributes
    ----------
    sigma_px : float
        Gaussian smoothing (sigma), pixels.
    high_pass_px : float
        Scale of the local background removed from each frame (Gaussian sigma), pixels.
    predicted_px : dict
        Predicted RMS translation error (px, both axes) of every (high_pass_px, sigma_px)
        compared; inf where the scene shows no structure in that band.
    """

    sigma_px: float
    high_pass_px: float
    predicted_px: dict = dataclasses.field(default_factory=dict)


def _predicted_variance(power, noise_per_pixel, n_frames, w4, omega2, filters, background,
                        points) -> list[float]:
    """Predicted variance of a translation (px^2, both axes) for one background removal
    and each correlation filter of ``filters`` (flattened arrays, as ``power``)."""
    reference_share = 1.0 / max(n_frames - 1, 1)
    totals = [0.0] * len(filters)
    background2 = background * background
    for weights in omega2:  # each axis: angular frequency squared
        weighted_power = weights * power
        signal_weights = weighted_power * background2
        noise_weights = weights * background2 * background2
        for k, (correlation_filter, filter_squared) in enumerate(filters):
            curvature = float(np.dot(weighted_power, correlation_filter))
            if not curvature > 1e-100:  # no structure in this band (or none at all)
                totals[k] = float("inf")
                continue
            signal_term = float(np.dot(signal_weights, filter_squared))
            noise_term = float(np.dot(noise_weights, filter_squared))
            totals[k] += points * (noise_per_pixel * (1 + reference_share) * signal_term
                                   + noise_per_pixel ** 2 * reference_share * w4 * noise_term
                                   ) / curvature ** 2
    return totals


def choose_weighting(data, window: np.ndarray, shape: tuple[int, int], base_sigma_px: float,
                     background_fn, *, fixed=None) -> Weighting:
    """Compare the band-passes by the error they predict; return the best.

    Parameters
    ----------
    data : array_like, shape (frames, H, W)
        The stack (a few frames are read).
    window : numpy.ndarray, shape (H, W)
        The frames' window (edge taper, region).
    shape : (int, int)
        The padded Fourier grid.
    base_sigma_px : float
        The count-based smoothing, pixels.
    background_fn : callable(image, sigma_px) -> image
        The local background of an image (as the registration removes it).
    fixed : (sigma_px, high_pass_px) or None
        Skip the comparison and use these.

    Returns
    -------
    Weighting
    """
    import scipy.fft

    if fixed is not None:
        return Weighting(float(fixed[0]), float(fixed[1]))
    n_frames = data.shape[0]
    sample = np.unique(np.linspace(0, n_frames - 1, min(n_frames, SAMPLE_FRAMES))
                       .round().astype(int))
    rows, cols = shape
    omega_y = 2 * np.pi * np.fft.fftfreq(rows)
    omega_x = 2 * np.pi * np.fft.rfftfreq(cols)
    omega2 = (omega_y[:, None] ** 2 + 0 * omega_x[None, :],
              0 * omega_y[:, None] + omega_x[None, :] ** 2)
    radius2 = omega2[0] + omega2[1]
    noise_band = radius2 > (0.8 * np.pi) ** 2
    # Rings of equal frequency, 1.5 grid steps wide.
    step = 1.5 * 2 * np.pi / min(rows, cols)
    ring = (np.sqrt(radius2) / step).astype(np.int64).ravel()
    ring_count = np.bincount(ring).astype(np.float64)

    def ring_background(background):
        return np.sqrt(np.bincount(ring, (background ** 2).ravel())
                       / np.maximum(ring_count, 1))
    # Half-spectrum weights: the columns inside the rfft stand for two of the full grid.
    half = np.full(omega_x.size, 2.0)
    half[0] = 1.0
    if cols % 2 == 0:
        half[-1] = 1.0
    omega2 = tuple(o * half[None, :] for o in omega2)
    # The scene's power is estimated under a smooth window (a Hann window over the frame,
    # times the region): the registration's own window has edges a few pixels wide,
    # whose power belongs to the frame, not to the scene, and would look like
    # information at high frequencies.
    height, width = window.shape
    hann = np.outer(np.sin(np.pi * (np.arange(height) + 0.5) / height) ** 2,
                    np.sin(np.pi * (np.arange(width) + 0.5) / width) ** 2)
    window = (hann * (window > 0)).astype(np.float32)
    window_sum = float(window.sum(dtype=np.float64))
    window_squared = float(np.sum(window.astype(np.float64) ** 2))
    w4 = float(np.sum(window.astype(np.float64) ** 4))
    predicted = {}
    best: tuple[float, float] | None = None
    # The smoothings' correlation filters (the same for every background removal).
    sigmas = [base_sigma_px * scale for scale in SMOOTHING_SCALES]
    filters = []
    for sigma in sigmas:
        correlation_filter = np.exp(-(sigma ** 2) * radius2).ravel()
        filters.append((correlation_filter, correlation_filter * correlation_filter))
    flat_omega2 = tuple(np.ascontiguousarray(np.broadcast_to(o, radius2.shape)).ravel()
                        for o in omega2)
    def frame_powers(index: int) -> list[np.ndarray]:
        """One sample frame's power spectrum after each background removal, done on the
        frame itself as the registration does it (in real space, before the window):
        near the frame's edges and where the scene is sparse its effect is not a filter
        on the spectrum."""
        counts = frame(data, int(sample[index])).astype(np.float32)
        powers = []
        for high_pass in HIGH_PASS_CANDIDATES_PX:
            flat = counts - background_fn(counts, high_pass)
            level = float((flat * window).sum(dtype=np.float64)) / max(window_sum, 1e-30)
            spectrum = scipy.fft.rfft2(window * (flat - np.float32(level)), s=shape, workers=1)
            powers.append(spectrum.real ** 2 + spectrum.imag ** 2)
        return powers

    # The sample frames on the frame threads (these spectra are a third of the work of
    # a ten-frame stack).
    mean_powers = [np.zeros((rows, omega_x.size)) for _ in HIGH_PASS_CANDIDATES_PX]
    for powers in map_frames(frame_powers, sample.size):
        for total, power in zip(mean_powers, powers, strict=True):
            total += power
    for high_pass, power in zip(HIGH_PASS_CANDIDATES_PX, mean_powers, strict=True):
        power /= sample.size
        # What the background removal leaves of each frequency (all but the mean: none).
        background = (-np.expm1(-0.5 * high_pass ** 2 * radius2) if np.isfinite(high_pass)
                      else (radius2 > 0).astype(np.float64))
        # The noise is white (independent pixels) and the beam leaves no signal near the
        # Nyquist frequency: the power there is the noise's, sum(window^2 counts), at
        # every frequency (measured rather than computed: it calibrates itself).
        noise_power = float(np.mean(power[noise_band]))
        # The scene's power: its excess over the noise, averaged over rings of equal
        # frequency (many frequencies each, so that the noise's scatter averages out) and
        # kept only where clearly there (2 standard errors of the ring mean): a chance
        # excess at high frequencies, weighted by frequency squared below, would look
        # like information.
        ring_power = np.bincount(ring, power.ravel(), minlength=ring_count.size)
        ring_mean = ring_power / np.maximum(ring_count, 1)
        leaves = ring_background(background)
        excess = ring_mean - leaves ** 2 * noise_power
        # Neighbouring frequencies of a padded, windowed frame are correlated (about 4).
        threshold = 2.0 * noise_power * leaves ** 2 / np.sqrt(
            np.maximum(ring_count, 1) * sample.size / 4)
        power = np.where(excess > threshold, excess, 0.0)[ring].reshape(radius2.shape)
        noise_per_pixel = noise_power / max(window_squared, 1e-30)
        variances = _predicted_variance(power.ravel(), noise_per_pixel, n_frames, w4,
                                        flat_omega2, filters, background.ravel(),
                                        rows * cols)
        for sigma, variance in zip(sigmas, variances, strict=True):
            predicted[(high_pass, sigma)] = float(np.sqrt(variance))
            if best is None or predicted[(high_pass, sigma)] < predicted[best]:
                best = (high_pass, sigma)
    assert best is not None  # SMOOTHING_SCALES and the high-passes are not empty
    return Weighting(sigma_px=best[1], high_pass_px=best[0], predicted_px=predicted)
