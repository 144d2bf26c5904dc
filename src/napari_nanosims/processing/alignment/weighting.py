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
whatever the drift. The spectra after a background removal are measured only where
the removal's error, predicted from the spectrum without one, could make it the choice
(:data:`MEASURE_REMOVALS_BELOW`).

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
import functools
from typing import NamedTuple

import numpy as np

from .._frames import frame
from .powers import _noise_shapes, _ring_means, _summed_powers

__all__ = ["Weighting", "choose_weighting", "HIGH_PASS_CANDIDATES_PX", "SMOOTHING_SCALES",
           "SAMPLE_FRAMES"]

#: Local-background scales compared (Gaussian sigma, px); 8 px was the fixed one before.
HIGH_PASS_CANDIDATES_PX = (8.0, 16.0, float("inf"))
#: Smoothings compared, as multiples of the count-based one (subpixel_smoothing_px).
SMOOTHING_SCALES = (1.0, 1.5, 2.0, 3.0, 4.0)
#: Frames whose power spectra estimate the scene's (spread over the stack). Fewer on
#: large frames would be cheaper, but a ring of noise that passes as the scene then
#: carries more spurious power: at 512² with five, an SE grain at 0.5 counts and 10
#: frames got the smallest smoothing for one seed of four (1.7x the RMS error of the
#: choice from all ten).
SAMPLE_FRAMES = 10
#: Rings of pure noise expected to pass as the scene's power, per stack and background
#: removal: each ring's excess must be this unlikely by chance over all the rings of the
#: grid (2.5 standard errors for the 150 rings of a 320 px canvas). At 2, as before, 3-4
#: rings of noise passed per stack, and a smooth scene then looked as if it had fine
#: detail: the SE grain at 2 counts and 10 frames got the smallest smoothing for one
#: seed in four (1.68x the noise limit, against 0.98x with the widest). At 3.2 (0.1
#: per stack) the weak fine texture of a real image at 0.5 counts was lost (1.46x
#: instead of 1.35x).
CHANCE_RINGS = 1.0
#: A background removal is chosen only where it predicts at most this fraction of the
#: error without one. The background is estimated from the frame itself, edges
#: reflected, so near the frame's edges it follows the frame rather than the scene: a
#: pattern that does not move with the sample and pulls toward no shift, which the
#: prediction leaves out. On an SE grain (a bright substrate up to the frame's edges)
#: the 16 px removal predicted 3-8 % less error than none and gave 1.17-1.24x the
#: noise limit against 0.84-0.98x without; on the other scene classes a removal
#: predicts at most 2 % less.
BACKGROUND_REQUIRED_GAIN = 0.9
#: The removals' spectra are measured only where their error predicted from the
#: spectrum without a removal (the scene's power times the removal's response squared)
#: is at most this fraction of the error without one; otherwise that prediction stands
#: for theirs. On 84 stacks (8 scene classes at 256², 0.5-10 counts, 10 and 40 frames;
#: every ion image of the two real files; 12 SE grains drifting by random walks) the
#: measured fraction was never below 0.968 (no removal chosen); the predicted one was
#: above it by at most 0.023, but by up to 0.097 on the SE grains, where the background
#: follows the frame near its bright edges and flatters the measured prediction by the
#: very error BACKGROUND_REQUIRED_GAIN guards against: a removal measured just below
#: that gain could now go unmeasured. On 138 stacks, 512² included, no choice changed.
#: It saves two thirds of the choice's spectra (21 against 10 ms a stack at 256²).
MEASURE_REMOVALS_BELOW = 0.97


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
        compared; inf where the scene shows no structure in that band. A background
        removal's is predicted from the spectrum without one unless its own spectra
        were measured (:data:`MEASURE_REMOVALS_BELOW`).
    """

    sigma_px: float
    high_pass_px: float
    predicted_px: dict = dataclasses.field(default_factory=dict)


def _predicted_variance(power, noise_per_pixel, n_frames, w4, omega2, filters, background,
                        points, noise_term) -> list[float]:
    """Predicted variance of a translation (px^2, both axes) for one background removal
    and each correlation filter.

    ``power``, ``background``, ``omega2`` (2, N: the angular frequency squared along
    each axis, with the half-spectrum weights) and ``filters`` (2, filters, N: the
    correlation filters and their squares) are over the frequencies where the scene
    has power (the scene's terms are zero elsewhere); ``noise_term`` (filters, 2) is
    the sum of ``omega2 F^2 H^4`` over the whole grid (:func:`_noise_terms`). The sums
    over frequencies of every filter and both axes are two matrix products.
    """
    reference_share = 1.0 / max(n_frames - 1, 1)
    correlation_filters, squared_filters = filters
    weighted_power = omega2 * power  # (2, N)
    curvature = correlation_filters @ weighted_power.T  # (filters, 2)
    signal_term = squared_filters @ (weighted_power * (background * background)).T
    with np.errstate(divide="ignore", invalid="ignore"):
        per_axis = points * (noise_per_pixel * (1 + reference_share) * signal_term
                             + noise_per_pixel ** 2 * reference_share * w4 * noise_term
                             ) / curvature ** 2
    # No structure in this band (or none at all) along either axis: nothing to locate.
    per_axis = np.where(curvature > 1e-100, per_axis, np.inf)
    return [float(v) for v in per_axis.sum(axis=1)]


class _Grid(NamedTuple):
    """What the predictions need of a padded Fourier grid, flattened over the half
    spectrum: the angular frequency squared along each axis with the half-spectrum
    weights (2, N), the radius squared, the band where only noise is left, the rings of
    equal frequency (1.5 grid steps wide) and their sizes, per background removal of
    :data:`HIGH_PASS_CANDIDATES_PX` what it leaves of each frequency, and the standard
    errors a ring's excess power must reach to count."""

    omega2: np.ndarray
    radius2: np.ndarray
    noise_band: np.ndarray
    ring: np.ndarray
    ring_count: np.ndarray
    backgrounds: tuple
    significance: float


@functools.lru_cache(maxsize=4)
def _grid(rows: int, cols: int) -> _Grid:
    """The :class:`_Grid` of a (rows, cols) canvas (the same for every stack of a size)."""
    import scipy.special

    omega_y2 = (2 * np.pi * np.fft.fftfreq(rows))[:, None] ** 2
    omega_x2 = (2 * np.pi * np.fft.rfftfreq(cols))[None, :] ** 2
    radius2 = (omega_y2 + omega_x2).ravel()
    step = 1.5 * 2 * np.pi / min(rows, cols)
    ring = (np.sqrt(radius2) / step).astype(np.int64)
    ring_count = np.bincount(ring).astype(np.float64)
    # Half-spectrum weights: the columns inside the rfft stand for two of the full grid.
    half = np.full(omega_x2.size, 2.0)
    half[0] = 1.0
    if cols % 2 == 0:
        half[-1] = 1.0
    omega2 = np.stack([np.broadcast_to(omega_y2 * half, (rows, half.size)).ravel(),
                       np.broadcast_to(omega_x2 * half, (rows, half.size)).ravel()])
    # What the background removal leaves of each frequency (all but the mean: none).
    backgrounds = tuple(-np.expm1(-0.5 * high_pass ** 2 * radius2) if np.isfinite(high_pass)
                        else (radius2 > 0).astype(np.float64)
                        for high_pass in HIGH_PASS_CANDIDATES_PX)
    noise_band = radius2 > (0.8 * np.pi) ** 2
    for array in (omega2, radius2, noise_band, ring, ring_count, *backgrounds):
        array.flags.writeable = False  # shared by every call of the size
    # Standard errors a ring's excess must reach (one-sided, CHANCE_RINGS over all rings).
    significance = float(-scipy.special.ndtri(CHANCE_RINGS / ring_count.size))
    return _Grid(omega2, radius2, noise_band, ring, ring_count, backgrounds, significance)


@functools.lru_cache(maxsize=8)
def _noise_terms(rows: int, cols: int, sigmas: tuple) -> np.ndarray:
    """The noise-times-noise sums of the prediction, ``sum omega2 F^2 H^4`` over a
    (rows, cols) canvas, for each background removal of :data:`HIGH_PASS_CANDIDATES_PX`,
    each smoothing of ``sigmas`` and both axes: (removals, smoothings, 2). They do not
    depend on the scene: the same for every stack of a size and count level (the
    smoothings follow the counts, and are the same from 2 counts per pixel up)."""
    grid = _grid(rows, cols)
    squared_filters = np.exp(-2.0 * np.square(sigmas)[:, None] * grid.radius2[None, :])
    removed = np.concatenate([grid.omega2 * background ** 4 for background in grid.backgrounds])
    terms = (squared_filters @ removed.T).reshape(len(sigmas), len(grid.backgrounds), 2)
    terms = np.ascontiguousarray(terms.transpose(1, 0, 2))
    terms.flags.writeable = False  # shared by every later call
    return terms


def _scene_power(power: np.ndarray, noise_shape: np.ndarray, grid: _Grid, samples: int
                 ) -> tuple[float, np.ndarray]:
    """(noise power, the scene's power per ring) from the mean power spectrum of
    ``samples`` frames (flattened over the half spectrum) and the noise's share of each
    ring (:func:`.powers._noise_shapes`).

    The noise is white (independent pixels) and the beam leaves no signal near the
    Nyquist frequency: the power there is the noise's, sum(window^2 counts), at every
    frequency (measured rather than computed: it calibrates itself). The scene's power
    is the excess over the noise, averaged over rings of equal frequency (many
    frequencies each, so that the noise's scatter averages out) and kept only where
    clearly there (``grid.significance`` standard errors of the ring mean: about
    :data:`CHANCE_RINGS` rings of noise pass per stack); a chance excess at high
    frequencies, weighted by frequency squared in the prediction, looks like fine detail.
    """
    noise_power = float(np.mean(power[grid.noise_band]))
    excess = _ring_means(grid, power) - noise_shape * noise_power
    # Neighbouring frequencies of a padded, windowed frame are correlated (about 4).
    threshold = grid.significance * noise_power * noise_shape / np.sqrt(
        np.maximum(grid.ring_count, 1) * samples / 4)
    return noise_power, np.where(excess > threshold, excess, 0.0)


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
    if fixed is not None:
        return Weighting(float(fixed[0]), float(fixed[1]))
    n_frames = data.shape[0]
    sample = np.unique(np.linspace(0, n_frames - 1, min(n_frames, SAMPLE_FRAMES))
                       .round().astype(int))
    rows, cols = shape
    grid = _grid(rows, cols)
    # The scene's power is estimated under a smooth window (a Hann window over the frame,
    # times the region): the registration's own window has edges a few pixels wide,
    # whose power belongs to the frame, not to the scene, and would look like
    # information at high frequencies.
    height, width = window.shape
    window = np.where(window > 0, np.outer(
        np.sin(np.pi * (np.arange(height) + 0.5) / height) ** 2,
        np.sin(np.pi * (np.arange(width) + 0.5) / width) ** 2).astype(np.float32),
        np.float32(0.0))
    squared = (window * window).ravel()
    window_squared = float(squared.sum(dtype=np.float64))
    w4 = float(np.dot(squared.astype(np.float64), squared))
    predicted: dict[tuple[float, float], float] = {}
    sigmas = [base_sigma_px * scale for scale in SMOOTHING_SCALES]
    noise_terms = _noise_terms(rows, cols, tuple(sigmas))

    def sample_frame(index):
        return frame(data, int(sample[index])).astype(np.float32)

    def predict(high_pass, scene, noise_power):
        """Predicted errors (px) of each smoothing with the removal ``high_pass``, from
        the scene's power per frequency."""
        at = HIGH_PASS_CANDIDATES_PX.index(high_pass)
        background = grid.backgrounds[at]
        # The scene's terms are summed where it has power (the rings kept: at low counts
        # a small disc of the grid), with the smoothings' filters there.
        support = np.flatnonzero(scene)
        correlation_filters = np.exp(-np.square(sigmas)[:, None]
                                     * grid.radius2[None, support])
        variances = _predicted_variance(
            scene[support], noise_power / max(window_squared, 1e-30), n_frames, w4,
            grid.omega2[:, support], (correlation_filters, correlation_filters ** 2),
            background[support], rows * cols, noise_terms[at])
        for sigma, variance in zip(sigmas, variances, strict=True):
            predicted[(high_pass, sigma)] = float(np.sqrt(variance))

    def measure(high_passes):
        """The predictions after each removal of ``high_passes`` from the sample frames'
        spectra (on the frame threads); returns the last one's (scene power per
        frequency, noise power)."""
        summed = _summed_powers(sample_frame, sample.size, window, shape, background_fn,
                                high_passes)
        noise_shapes = _noise_shapes(window, shape, background_fn, grid, high_passes)
        for high_pass, power in zip(high_passes, summed, strict=True):
            noise_power, scene = _scene_power(power / sample.size, noise_shapes[high_pass],
                                              grid, sample.size)
            scene = scene[grid.ring]
            predict(high_pass, scene, noise_power)
        return scene, noise_power

    removals = tuple(h for h in HIGH_PASS_CANDIDATES_PX if np.isfinite(h))
    scene, noise_power = measure((float("inf"),))
    for high_pass in removals:  # first predicted from the spectrum without a removal
        predict(high_pass, scene * grid.backgrounds[HIGH_PASS_CANDIDATES_PX.index(
            high_pass)] ** 2, noise_power)
    if removals and min(predicted[key] for key in predicted if np.isfinite(key[0])) <= (
            MEASURE_REMOVALS_BELOW * min(predicted[key] for key in predicted
                                         if not np.isfinite(key[0]))):
        measure(removals)  # may pay (or nothing has structure): its own spectra decide
    best = min(predicted, key=predicted.__getitem__)
    # A background removal must predict clearly less error than none: its own error,
    # a pattern that stays with the frame, is not in the prediction (see
    # BACKGROUND_REQUIRED_GAIN).
    without = min((key for key in predicted if not np.isfinite(key[0])),
                  key=predicted.__getitem__)
    if not np.isfinite(predicted[best]) or (
            predicted[best] > BACKGROUND_REQUIRED_GAIN * predicted[without]):
        best = without
    return Weighting(sigma_px=best[1], high_pass_px=best[0], predicted_px=predicted)
