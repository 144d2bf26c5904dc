"""Realistic drifting low-count stacks, for testing and benchmarking alignment.

Frames are windows cut from a larger noise-free field at drifting positions (so new
content enters at the edges, as when a raster drifts; nothing wraps or repeats),
scaled to a chosen mean count per pixel and drawn with Poisson noise. The fields are
synthetic scenes of eight kinds (:data:`SCENES`) or any image the caller supplies.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SCENES", "make_scene", "simulate_drift", "simulate_scene", "alignment_error_px",
           "registration_noise_limit_px"]

#: The kinds of synthetic scene :func:`make_scene` draws.
SCENES = ("cells", "particle", "mineral", "spots", "gradient", "grain", "grain_se", "mixture")

# Every scene is blurred by a beam of this width (Gaussian sigma, px) at the end.
_BEAM_SIGMA_PX = 0.8


def _disc_field(shape, centres, radii, values, rng, roughness=0.0):
    """Sum of filled, slightly irregular discs (ellipses when ``roughness`` > 0)."""
    yy, xx = np.indices(shape, dtype=np.float64)
    field = np.zeros(shape)
    for (cy, cx), radius, value in zip(centres, radii, values, strict=True):
        size = int(np.ceil(radius * 1.6)) + 2
        rows = slice(max(0, int(cy) - size), min(shape[0], int(cy) + size + 1))
        cols = slice(max(0, int(cx) - size), min(shape[1], int(cx) + size + 1))
        dy, dx = yy[rows, cols] - cy, xx[rows, cols] - cx
        angle = np.arctan2(dy, dx)
        harmonics = rng.normal(0.0, roughness, size=(3, 2))
        scale = radius * (1.0 + sum(a * np.cos((k + 2) * angle) + b * np.sin((k + 2) * angle)
                                    for k, (a, b) in enumerate(harmonics)))
        inside = np.hypot(dy, dx) <= scale
        field[rows, cols][inside] = value
    return field


def _soft_grain(shape, rng, size: float = 1 / 3, blur_px: float = 8.0):
    """A smooth grain covering ``size`` of the field with edges blurred over ``blur_px``
    (0 outside, about 1 inside), and the grain's sharp mask."""
    from scipy import ndimage

    height, width = shape
    radius = np.sqrt(size * height * width / np.pi)
    centre = [(height / 2 + rng.normal(0, 0.05 * height), width / 2 + rng.normal(0, 0.05 * width))]
    mask = _disc_field(shape, centre, [radius], [1.0], rng, roughness=0.08)
    return ndimage.gaussian_filter(mask, blur_px), mask


def _soft_grain_scene(kind: str, shape, rng) -> np.ndarray:
    """The 'grain', 'grain_se' and 'mixture' scenes (see :func:`make_scene`)."""
    from scipy import ndimage

    height, width = shape
    yy, xx = np.indices(shape) / max(height, width)
    # A smooth interior: brighter toward one side, with a faint, broad mottling.
    mottling = ndimage.gaussian_filter(rng.normal(size=shape), 12.0)
    mottling /= max(float(mottling.std()), 1e-12)
    shading = (0.85 + 0.25 * yy - 0.15 * xx) * (1.0 + 0.05 * mottling)
    if kind == "grain":
        grain, _ = _soft_grain(shape, rng)
        return 0.02 + grain * shading
    if kind == "grain_se":
        grain, mask = _soft_grain(shape, rng, blur_px=6.0)
        # Secondary electrons: the substrate emits too, the grain more, and the slope of
        # its surface most (a broad rim, as the edge effect of a rounded grain).
        rim = ndimage.gaussian_filter(mask, 10.0)
        rim = np.clip(rim * (1 - rim), 0, None) * 4
        return 0.45 + 0.4 * grain * shading + 0.35 * rim
    # mixture: a large soft grain beside small sharp cells and a few spots
    grain, _ = _soft_grain(shape, rng, size=0.2)
    count = max(3, int(height * width / 2500))
    centres = rng.uniform(0, 1, (count, 2)) * (height, width)
    cells = _disc_field(shape, centres, rng.uniform(3, 6, count), rng.uniform(0.6, 1.2, count),
                        rng, roughness=0.15)
    spots = np.zeros(shape)
    rows, cols = np.indices(shape, dtype=np.float64)
    for _ in range(int(rng.integers(3, 6))):
        cy, cx = rng.uniform(0.1, 0.9, 2) * (height, width)
        spots += rng.uniform(3, 6) * np.exp(-((rows - cy) ** 2 + (cols - cx) ** 2)
                                            / (2 * 1.5 ** 2))
    return 0.02 + 0.8 * grain * shading + cells * (grain < 0.5) + spots


def make_scene(kind: str, shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A noise-free synthetic NanoSIMS scene, in relative intensity (mean of order 1).

    Parameters
    ----------
    kind : str
        One of :data:`SCENES`: ``'cells'`` (small bright cells on an almost empty
        background, as in the demo file), ``'particle'`` (one large smooth grain filling
        about a third of the field with a dark surround), ``'mineral'`` (dense grains of
        different brightness with fine texture, filling the field), ``'spots'`` (a few
        sparse bright spots on a dark background) or ``'gradient'`` (a low-contrast field:
        a smooth intensity gradient with faint texture, 25 % contrast), ``'grain'`` (one
        smooth grain filling about a third of the field, its edges blurred over about 8
        px, on a dark background: an ion image whose registration information lies at
        low spatial frequencies), ``'grain_se'`` (the same kind of grain as a secondary
        electron image: a bright substrate, a brighter grain with soft edges and a broad
        bright rim where the surface slopes) or ``'mixture'`` (a large soft grain beside
        small sharp cells and spots).
    shape : (int, int)
        Field height and width, pixels.
    seed : int
        Seed of the random generator.

    Returns
    -------
    numpy.ndarray, float64, shape ``shape``
        Non-negative intensities, blurred by a 0.8 px (sigma) beam.
    """
    from scipy import ndimage

    if kind not in SCENES:
        raise ValueError(f"kind must be one of {SCENES}, not {kind!r}")
    rng = np.random.default_rng(seed)
    height, width = (int(v) for v in shape)
    area = height * width
    if kind == "cells":
        count = max(3, int(area / 900))
        centres = rng.uniform(0, 1, (count, 2)) * (height, width)
        field = 0.03 + _disc_field((height, width), centres, rng.uniform(4, 9, count),
                                   rng.uniform(0.6, 1.4, count), rng, roughness=0.15)
    elif kind == "particle":
        radius = np.sqrt(area / 3 / np.pi) * 0.9
        centre = [(height / 2 + rng.normal(0, 5), width / 2 + rng.normal(0, 5))]
        grain = _disc_field((height, width), centre, [radius], [1.0], rng, roughness=0.06)
        yy, xx = np.indices((height, width)) / max(height, width)
        shading = 0.8 + 0.3 * yy - 0.2 * xx  # a smooth interior, brighter at one side
        field = 0.02 + ndimage.gaussian_filter(grain, 1.5) * shading
    elif kind == "mineral":
        count = max(8, int(area / 1500))
        seeds = rng.uniform(0, 1, (count, 2)) * (height, width)
        yy, xx = np.indices((height, width))
        # Voronoi grains: each pixel takes the brightness of its nearest seed.
        from scipy.spatial import cKDTree

        _, nearest = cKDTree(seeds).query(np.column_stack([yy.ravel(), xx.ravel()]))
        field = rng.uniform(0.3, 1.0, count)[nearest].reshape(height, width)
        field *= 1.0 + 0.15 * ndimage.gaussian_filter(rng.normal(size=(height, width)), 1.5) / 0.19
    elif kind == "spots":
        count = int(rng.integers(6, 11))
        field = np.full((height, width), 0.01)
        yy, xx = np.indices((height, width), dtype=np.float64)
        for _ in range(count):
            cy, cx = rng.uniform(0.1, 0.9, 2) * (height, width)
            sigma = rng.uniform(1.5, 3.0)
            field += rng.uniform(20, 40) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2)
                                                  / (2 * sigma ** 2))
    elif kind in ("grain", "grain_se", "mixture"):
        field = _soft_grain_scene(kind, (height, width), rng)
    else:  # gradient
        yy, xx = np.indices((height, width)) / max(height, width)
        texture = ndimage.gaussian_filter(rng.normal(size=(height, width)), 3.0)
        texture /= texture.std()
        field = (1.0 + 0.5 * yy + 0.3 * xx) * (1.0 + 0.25 * texture)
    return np.maximum(ndimage.gaussian_filter(field, _BEAM_SIGMA_PX), 0.0)


def _drift_path(rng, n_frames: int, kind: str, max_px: float, step_px: float | None):
    if kind == "linear":
        # A straight line through the middle, in a random direction, half to all of the span.
        angle = rng.uniform(0, 2 * np.pi)
        start = max_px * rng.uniform(0.5, 1.0) * np.array([np.sin(angle), np.cos(angle)])
        return start - np.linspace(0.0, 2.0, n_frames)[:, None] * start
    if kind != "random_walk":
        raise ValueError(f"drift must be 'random_walk' or 'linear', not {kind!r}")
    steps = rng.normal(0.0, 1.0, size=(n_frames, 2))
    steps[0] = 0
    path = np.cumsum(steps, axis=0)
    path -= np.median(path, axis=0)
    if step_px is not None:
        return path * step_px
    # Scale the walk to span up to max_px, sub-pixel parts included.
    largest = float(np.max(np.abs(path))) if n_frames > 1 else 1.0
    return path * (max_px / max(largest, 1e-9)) * rng.uniform(0.5, 1.0)


def simulate_drift(field: np.ndarray, n_frames: int, counts_per_pixel: float, *,
                   window: int = 256, step_px: float | None = 0.5, seed: int = 0,
                   drift: str = "random_walk", max_drift_px: float | None = None) -> dict:
    """Cut ``n_frames`` noisy windows from ``field`` along a drifting path.

    Parameters
    ----------
    field : numpy.ndarray, shape (H, W)
        Noise-free image, larger than ``window`` by at least twice the drift.
    n_frames : int
        Number of frames.
    counts_per_pixel : float
        Mean counts per pixel over the frames.
    window : int
        Frame width and height, pixels.
    step_px : float or None
        Standard deviation of a random-walk step between frames, per axis, pixels; None
        scales the walk so that it spans up to ``max_drift_px``.
    seed : int
        Seed of the random generator.
    drift : {'random_walk', 'linear'}
        Shape of the path.
    max_drift_px : float or None
        Largest drift from the median position, pixels (default: what the field allows).

    Returns
    -------
    dict
        ``frames`` (n_frames, window, window) uint32 counts; ``truth`` the same windows
        without noise (float); ``reference`` the noise-free window at zero drift;
        ``field`` the scaled noise-free field and ``origin`` where the zero-drift window
        starts in it; ``drift_px`` (n_frames, 2) window offsets; ``translations_px`` the
        shifts that align each frame (``drift`` minus its median, the sign
        :func:`infer_translations` uses).
    """
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    field = np.asarray(field, dtype=np.float64)
    margin_y = (field.shape[0] - window) / 2
    margin_x = (field.shape[1] - window) / 2
    limit = min(margin_y, margin_x) - 4
    if limit <= 0:
        raise ValueError("field must be larger than the window")
    largest = limit if max_drift_px is None else min(float(max_drift_px), limit)
    path = _drift_path(rng, n_frames, drift, largest, step_px)
    path -= np.median(path, axis=0)
    path = np.clip(path, -limit, limit)
    coefficients = ndimage.spline_filter(field, order=3, mode="nearest")
    yy, xx = np.mgrid[0:window, 0:window].astype(np.float64)

    def cut(offset):
        coords = [yy + margin_y + offset[0], xx + margin_x + offset[1]]
        return ndimage.map_coordinates(coefficients, coords, order=3, mode="nearest",
                                       prefilter=False)

    truth = np.stack([cut(offset) for offset in path])
    reference = cut((0.0, 0.0))
    scale = counts_per_pixel / max(truth.mean(), 1e-12)
    truth = np.maximum(truth * scale, 0.0)
    reference = np.maximum(reference * scale, 0.0)
    frames = rng.poisson(truth).astype(np.uint32)
    return dict(frames=frames, truth=truth, reference=reference, drift_px=path,
                translations_px=path - np.median(path, axis=0), field=field * scale,
                origin=(margin_y, margin_x))


def simulate_scene(kind: str, n_frames: int, counts_per_pixel: float, *, window: int = 256,
                   max_drift_px: float = 15.0, drift: str = "random_walk",
                   seed: int = 0) -> dict:
    """:func:`simulate_drift` on a fresh :func:`make_scene` field with room for the drift.

    Drift spans up to ``max_drift_px`` with sub-pixel parts; the returned dict also holds
    ``kind``.
    """
    margin = int(np.ceil(max_drift_px)) + 8
    field = make_scene(kind, (window + 2 * margin, window + 2 * margin), seed=seed)
    result = simulate_drift(field, n_frames, counts_per_pixel, window=window, step_px=None,
                            seed=seed + 1000, drift=drift, max_drift_px=max_drift_px)
    result["kind"] = kind
    return result


def alignment_error_px(estimated, true) -> float:
    """RMS distance between estimated and true translations after removing a common offset.

    Translations are defined up to a constant (which frame stays put), so the mean
    difference is removed first. Pixels.
    """
    difference = np.asarray(estimated, float) - np.asarray(true, float)
    difference -= difference.mean(axis=0)
    return float(np.sqrt(np.mean(np.sum(difference ** 2, axis=1))))


def registration_noise_limit_px(simulation: dict, upsample_factor: int = 100) -> float:
    """The error of locating each noisy frame in the noise-free field, pixels.

    The floor for any method that must build its reference from the noisy frames, with
    the reference made perfect: each frame, mean-subtracted, is placed in a canvas the
    size of the noise-free field and registered against it with scikit-image's
    ``phase_cross_correlation`` (plain cross-correlation, ``upsample_factor`` 100), in
    two ways: as it is (the matched filter: the noise-free field is the template) and
    filtered as the 'subpixel' method filters by default (an 8 px local background
    removed, the count-based Gaussian smoothing, on frame and field alike). The smaller
    RMS error of the two is returned. The field extends beyond every frame, so no edge
    effect enters: what is left is the noise of the frame alone.
    """
    from scipy import ndimage
    from skimage.registration import phase_cross_correlation

    from ..processing.alignment.background import local_background
    from ..processing.alignment.subpixel import subpixel_smoothing_px

    frames = simulation["frames"]
    sigma = subpixel_smoothing_px(float(np.mean(frames)))

    def filtered(image):
        image = np.asarray(image, dtype=np.float64)
        image = image - local_background(image)
        return ndimage.gaussian_filter(image, sigma)

    top, left = (int(round(v)) for v in simulation["origin"])
    height, width = frames.shape[1:]
    errors = []
    for prepare in (lambda image: np.asarray(image, dtype=np.float64), filtered):
        target = prepare(simulation["field"])
        target -= target.mean()
        estimates = []
        for counts in frames:
            smoothed = prepare(counts)
            canvas = np.zeros_like(target)
            canvas[top:top + height, left:left + width] = smoothed - smoothed.mean()
            shift, _, _ = phase_cross_correlation(target, canvas,
                                                  upsample_factor=upsample_factor,
                                                  normalization=None)
            estimates.append(np.asarray(shift))  # the frame's offset in the field
        errors.append(alignment_error_px(estimates, simulation["drift_px"]))
    return min(errors)



def registration_others_limit_px(simulation: dict, upsample_factor: int = 100) -> float:
    """The error of locating each noisy frame in the mean of the *other* noisy frames,
    placed where they truly are, pixels.

    What a method that builds its reference from the frames can reach at best (its
    reference, perfectly aligned, still carries the other frames' noise, which
    :func:`registration_noise_limit_px` leaves out): registered as that function does
    (plain cross-correlation as it is and filtered as 'subpixel' filters by default;
    the smaller RMS error of the two). The others are moved by Fourier shifts of their
    true offsets onto the field's canvas and averaged per pixel over those covering it.
    """
    from scipy import ndimage
    from skimage.registration import phase_cross_correlation

    from ..processing.alignment.background import local_background
    from ..processing.alignment.subpixel import subpixel_smoothing_px

    frames = simulation["frames"]
    sigma = subpixel_smoothing_px(float(np.mean(frames)))
    top, left = (int(round(v)) for v in simulation["origin"])
    height, width = frames.shape[1:]
    canvas_shape = np.asarray(simulation["field"]).shape
    drift = np.asarray(simulation["drift_px"], dtype=np.float64)

    def filtered(image):
        image = np.asarray(image, dtype=np.float64)
        image = image - local_background(image)
        return ndimage.gaussian_filter(image, sigma)

    def placed(image, offset=None):
        canvas = np.zeros(canvas_shape)
        canvas[top:top + height, left:left + width] = image
        if offset is None:
            return canvas
        moved = ndimage.fourier_shift(np.fft.fft2(canvas), offset)
        return np.real(np.fft.ifft2(moved))

    errors = []
    for prepare in (lambda image: np.asarray(image, dtype=np.float64), filtered):
        prepared = [prepare(counts) for counts in frames]
        aligned = [placed(image, offset) for image, offset in zip(prepared, drift, strict=True)]
        covers = [placed(np.ones((height, width)), offset) for offset in drift]
        total, coverage = np.sum(aligned, axis=0), np.sum(covers, axis=0)
        estimates = []
        for index, image in enumerate(prepared):
            others = coverage - covers[index]
            reference = np.where(others > 0.5, (total - aligned[index])
                                 / np.maximum(others, 0.5), 0.0)
            inside = others > 0.5
            reference[inside] -= reference[inside].mean()
            canvas = placed(image - image.mean())
            shift, _, _ = phase_cross_correlation(reference, canvas,
                                                  upsample_factor=upsample_factor,
                                                  normalization=None)
            estimates.append(np.asarray(shift))
        errors.append(alignment_error_px(estimates, drift))
    return min(errors)
