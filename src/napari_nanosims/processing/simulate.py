"""Realistic drifting low-count stacks, for testing and benchmarking alignment.

Frames are windows cut from a larger noise-free field at drifting positions (so new
content enters at the edges, as when a raster drifts; nothing wraps or repeats),
scaled to a chosen mean count per pixel and drawn with Poisson noise.
"""

from __future__ import annotations

import numpy as np

__all__ = ["simulate_drift", "alignment_error_px", "registration_noise_limit_px"]


def simulate_drift(field: np.ndarray, n_frames: int, counts_per_pixel: float, *,
                   window: int = 256, step_px: float = 0.5, seed: int = 0) -> dict:
    """Cut ``n_frames`` noisy windows from ``field`` along a random-walk drift.

    Parameters
    ----------
    field : numpy.ndarray, shape (H, W)
        Noise-free image, larger than ``window`` by at least twice the drift.
    n_frames : int
        Number of frames.
    counts_per_pixel : float
        Mean counts per pixel of every frame.
    window : int
        Frame width and height, pixels.
    step_px : float
        Standard deviation of the drift step between frames, per axis, pixels.
    seed : int
        Seed of the random generator.

    Returns
    -------
    dict
        ``frames`` (n_frames, window, window) uint32 counts; ``truth`` the same windows
        without noise (float); ``reference`` the noise-free window at zero drift;
        ``drift_px`` (n_frames, 2) window offsets; ``translations_px`` the shifts that
        align each frame (``drift`` minus its median, :func:`infer_translations`' sign).
    """
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    field = np.asarray(field, dtype=np.float64)
    margin_y = (field.shape[0] - window) / 2
    margin_x = (field.shape[1] - window) / 2
    steps = rng.normal(0.0, step_px, size=(n_frames, 2))
    steps[0] = 0
    drift = np.cumsum(steps, axis=0)
    drift -= np.median(drift, axis=0)
    limit = min(margin_y, margin_x) - 4
    if limit <= 0:
        raise ValueError("field must be larger than the window")
    drift = np.clip(drift, -limit, limit)
    yy, xx = np.mgrid[0:window, 0:window].astype(np.float64)
    truth = np.empty((n_frames, window, window))
    for index in range(n_frames):
        coords = [yy + margin_y + drift[index, 0], xx + margin_x + drift[index, 1]]
        truth[index] = ndimage.map_coordinates(field, coords, order=3, mode="nearest")
    reference = ndimage.map_coordinates(field, [yy + margin_y, xx + margin_x], order=3,
                                        mode="nearest")
    scale = counts_per_pixel / max(reference.mean(), 1e-12)
    truth = np.maximum(truth * scale, 0.0)
    reference = np.maximum(reference * scale, 0.0)
    frames = rng.poisson(truth).astype(np.uint32)
    return dict(frames=frames, truth=truth, reference=reference, drift_px=drift,
                translations_px=drift - np.median(drift, axis=0))


def alignment_error_px(estimated, true) -> float:
    """RMS distance between estimated and true translations after removing a common offset.

    Translations are defined up to a constant (which frame stays put), so the mean
    difference is removed first. Pixels.
    """
    difference = np.asarray(estimated, float) - np.asarray(true, float)
    difference -= difference.mean(axis=0)
    return float(np.sqrt(np.mean(np.sum(difference ** 2, axis=1))))


def registration_noise_limit_px(simulation: dict, upsample_factor: int = 20) -> float:
    """The error of registering each noisy frame against the noise-free truth, pixels.

    A practical floor for any method that must build its reference from the noisy
    frames themselves: the same smoothing and correlation as the 'subpixel' method,
    but against the noise-free window at zero drift.
    """
    from .subpixel import _register, _smooth, subpixel_smoothing_px

    sigma = subpixel_smoothing_px(float(np.mean(simulation["frames"])))
    target = _smooth(simulation["reference"], sigma)
    estimates = np.array([_register(target, _smooth(frame, sigma), upsample_factor)
                          for frame in simulation["frames"]])
    return alignment_error_px(estimates, simulation["drift_px"])
