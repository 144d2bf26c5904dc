"""Drifting stacks that also deform smoothly, for testing the piecewise alignment.

Frames are cut from a noise-free :func:`~.simulate.make_scene` field along a drifting
path, each pixel displaced further by a smooth pattern (shear, scaling, a local bulge)
that grows linearly over the frames; :func:`patch_errors_px` scores a piecewise
registration patch by patch against what a perfect reference could do.
"""

from __future__ import annotations

import numpy as np

from .simulate import _drift_path, alignment_error_px, make_scene

__all__ = ["DEFORMATIONS", "deformation_field", "simulate_deformation", "patch_errors_px",
           "moves_at_pixels"]


#: The smooth deformations :func:`simulate_deformation` applies.
DEFORMATIONS = ("shear", "scale", "bulge")


def deformation_field(kind: str, shape, amplitude_px: float) -> np.ndarray:
    """A smooth displacement pattern (2, H, W), (rows, columns) in pixels, of largest
    magnitude ``amplitude_px``: ``'shear'`` (columns move with the row), ``'scale'``
    (about the centre) or ``'bulge'`` (outward around a point a third of the way in, at
    most at a sixth of the frame from it, fading away)."""
    if kind not in DEFORMATIONS:
        raise ValueError(f"deformation must be one of {DEFORMATIONS}, not {kind!r}")
    height, width = shape
    yy, xx = np.indices(shape, dtype=np.float64)
    u, v = (yy - (height - 1) / 2) / (height / 2), (xx - (width - 1) / 2) / (width / 2)
    if kind == "shear":
        field = np.stack([np.zeros(shape), u])
    elif kind == "scale":
        field = np.stack([u, v])
    else:
        cy, cx, spread = height / 3, width / 2, min(height, width) / 6
        dy, dx = (yy - cy) / spread, (xx - cx) / spread
        fade = np.exp(0.5 - (dy ** 2 + dx ** 2) / 2)  # |field| peaks at 1, one spread out
        field = np.stack([dy * fade, dx * fade])
    return amplitude_px * field / max(float(np.max(np.hypot(field[0], field[1]))), 1e-12)


def simulate_deformation(kind: str, deformation: str, n_frames: int, counts_per_pixel: float,
                         *, window: int = 128, amplitude_px: float = 3.0,
                         max_drift_px: float = 6.0, seed: int = 0, factor=None) -> dict:
    """A drifting stack that also deforms smoothly, growing linearly over the frames.

    Frame ``k`` shows, at pixel ``p``, the field at ``p + drift_k + f_k D(p)`` (``D``
    from :func:`deformation_field`, ``f_k`` from -1 at the first frame to 1 at the
    last, or ``factor`` (frames,) when given: a deformation with another course over
    the frames), so the move that aligns pixel ``p`` is ``drift_k + f_k D(p)``.

    Returns
    -------
    dict
        As :func:`simulate_scene`, plus ``displacement_px`` (frames, 2, window, window):
        the true move of every pixel (drift included), ``deformation_px`` the pattern
        ``D`` and ``factor`` the ``f_k``.
    """
    from scipy import ndimage

    margin = int(np.ceil(max_drift_px + amplitude_px)) + 8
    field = make_scene(kind, (window + 2 * margin, window + 2 * margin), seed=seed)
    rng = np.random.default_rng(seed + 2000)
    path = _drift_path(rng, n_frames, "random_walk", max_drift_px, None)
    path -= np.median(path, axis=0)
    pattern = deformation_field(deformation, (window, window), amplitude_px)
    if factor is None:
        factor = np.linspace(-1.0, 1.0, n_frames)
    factor = np.asarray(factor, dtype=np.float64)
    if factor.shape != (n_frames,):
        raise ValueError(f"factor must hold one value per frame ({n_frames}); got shape "
                         f"{factor.shape}")
    coefficients = ndimage.spline_filter(field, order=3, mode="nearest")
    yy, xx = np.mgrid[0:window, 0:window].astype(np.float64)
    moves = path[:, :, None, None] + factor[:, None, None, None] * pattern[None]
    truth = np.stack([ndimage.map_coordinates(
        coefficients, [yy + margin + move[0], xx + margin + move[1]], order=3,
        mode="nearest", prefilter=False) for move in moves])
    scale = counts_per_pixel / max(truth.mean(), 1e-12)
    truth = np.maximum(truth * scale, 0.0)
    return dict(frames=rng.poisson(truth).astype(np.uint32), truth=truth, drift_px=path,
                displacement_px=moves, deformation_px=pattern, factor=factor,
                field=field * scale, origin=(margin, margin), kind=kind)


def moves_at_pixels(registration, shape) -> np.ndarray:
    """Every pixel's move in a piecewise registration: each frame's translation plus the
    field there (as the warp uses it: bilinear between the grid points, and beyond the
    outer ones carried on by its share of slope), (frames, 2, H, W) pixels."""
    from ..processing.alignment.warp import displacement_at_pixels

    return registration.translations[:, :, None, None] + np.stack(
        [displacement_at_pixels(d, registration.displacement_grid_px, shape)
         for d in registration.displacement_px])


def patch_errors_px(simulation: dict, registration, side: int | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Per patch of a piecewise registration: its error and its noise limit, pixels.

    The patches are those the registration used: ``side`` px (by default the side it
    chose, read off its grid: the first centre lies half a side in), half a side apart,
    the last flush with the frame's edge. A patch's misregistration is the mean of its
    pixels' residual moves weighted, per axis, by the squared gradient of that frame's
    noise-free content there (how much each pixel tells about a shift; empty
    background weighs nothing). The truth is that weighted mean of the true moves; the
    estimate the same weighted mean of the frame's translation plus the field at every
    pixel (as the warp moves the counts: :func:`moves_at_pixels`). The noise limit is
    what noise alone costs a perfect rigid registration of the patch: the difference
    between locating the noisy patch and locating its noise-free content in
    the noise-free field (a perfect reference, the matched filter). Where the motion
    varies within a patch, a rigid registration is also biased (up to 0.5 px on the
    cells bulge); that bias is model error, not noise, and is left out of the limit.
    Errors are RMS over the frames after removing their common offset.

    Returns
    -------
    (errors, limits) : two numpy.ndarray of shape (patch rows, patch cols)
    """
    from skimage.registration import phase_cross_correlation

    from ..processing.alignment.piecewise import _starts, patch_side_px

    if side is None:
        side = patch_side_px(registration)
    frames, truth = simulation["frames"], simulation["displacement_px"]
    clean = np.asarray(simulation["truth"], dtype=np.float64)
    field = np.asarray(simulation["field"], dtype=np.float64)
    top0, left0 = (int(round(v)) for v in simulation["origin"])
    reach = int(np.ceil(np.abs(truth).max())) + 4  # the noise-free surround searched
    shape = frames.shape[1:]
    information = np.stack([g ** 2 for g in np.gradient(clean, axis=(1, 2))], axis=1)
    ours_per_pixel = moves_at_pixels(registration, shape)
    patch_rows, patch_cols = _starts(shape[0], side), _starts(shape[1], side)
    errors = np.zeros((patch_rows.size, patch_cols.size))
    limits = np.zeros_like(errors)

    def locate(target, images, at_y, at_x):
        located = []
        for image in images:
            canvas = np.zeros_like(target)
            canvas[at_y:at_y + side, at_x:at_x + side] = image - image.mean()
            shift, _, _ = phase_cross_correlation(target, canvas, upsample_factor=100,
                                                  normalization=None)
            located.append(shift)
        return np.asarray(located)

    for i, top in enumerate(patch_rows):
        for j, left in enumerate(patch_cols):
            inside = (slice(None), slice(None), slice(top, top + side), slice(left, left + side))
            weight = information[inside]  # (frames, 2, side, side)
            weight = weight / np.maximum(weight.sum(axis=(2, 3), keepdims=True), 1e-300)
            true = (truth[inside] * weight).sum(axis=(2, 3))
            ours = (ours_per_pixel[inside] * weight).sum(axis=(2, 3))
            low_y, low_x = max(top0 + top - reach, 0), max(left0 + left - reach, 0)
            target = field[low_y:top0 + top + side + reach, low_x:left0 + left + side + reach]
            target = target - target.mean()
            at_y, at_x = top0 + top - low_y, left0 + left - low_x
            noisy = locate(target, frames[inside[0], top:top + side,
                                          left:left + side].astype(np.float64), at_y, at_x)
            noise_free = locate(target, clean[:, top:top + side, left:left + side], at_y, at_x)
            errors[i, j] = alignment_error_px(ours, true)
            limits[i, j] = alignment_error_px(noisy, noise_free)
    return errors, limits
