"""Drifting stacks that also deform smoothly, for testing the piecewise alignment.

Frames are cut from a noise-free :func:`~.simulate.make_scene` field along a drifting
path, each pixel displaced further by a smooth pattern (shear, scaling, a local bulge)
that grows linearly over the frames; :func:`patch_errors_px` scores a piecewise
registration patch by patch against what a perfect reference could do.
"""

from __future__ import annotations

import numpy as np

from .simulate import _drift_path, alignment_error_px, make_scene

__all__ = ["DEFORMATIONS", "deformation_field", "simulate_deformation", "patch_errors_px"]


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
                         max_drift_px: float = 6.0, seed: int = 0) -> dict:
    """A drifting stack that also deforms smoothly, growing linearly over the frames.

    Frame ``k`` shows, at pixel ``p``, the field at ``p + drift_k + f_k D(p)`` (``D``
    from :func:`deformation_field`, ``f_k`` from -1 at the first frame to 1 at the
    last), so the move that aligns pixel ``p`` is ``drift_k + f_k D(p)``.

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
    factor = np.linspace(-1.0, 1.0, n_frames)
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


def patch_errors_px(simulation: dict, registration, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Per patch of a piecewise registration: its error and its noise limit, pixels.

    A patch's misregistration is what a registration of the patch would still see: the
    mean of its pixels' residual moves weighted, per axis, by the squared gradient of
    the noise-free frame there (how much each pixel tells about a shift; empty
    background weighs nothing). For every patch (``registration.displacement_grid_px``
    centres, ``side`` px) the truth is that weighted mean of the true moves; the
    estimate the same weighted mean of the frame's translation plus the field at every
    pixel (bilinear between the grid points, as the warp moves the counts); the noise
    limit the error of locating each noisy patch in the noise-free field as it is (a
    perfect reference, the matched filter, a rigid patch: what any patch registration
    can reach) against the same weighted truth. Errors are RMS over the frames after
    removing their common offset.

    A field's value at the patch's centre is not compared with the patch's plain mean
    move: where the deformation varies within a patch (a bulge narrower than it) the
    two differ by more than the noise, so that even the true field would score 2-5x
    its limit.

    Returns
    -------
    (errors, limits) : two numpy.ndarray of shape (rows, cols)
    """
    from skimage.registration import phase_cross_correlation

    from ..processing.alignment.warp import displacement_at_pixels

    frames, truth = simulation["frames"], simulation["displacement_px"]
    field = np.asarray(simulation["field"], dtype=np.float64)
    top0, left0 = (int(round(v)) for v in simulation["origin"])
    reach = int(np.ceil(np.abs(truth).max())) + 4  # the noise-free surround searched
    from ..processing.alignment.piecewise import _starts

    rows, cols = registration.displacement_grid_px
    shape = frames.shape[1:]
    patch_rows = _starts(shape[0], side) + (side - 1) / 2.0
    patch_cols = _starts(shape[1], side) + (side - 1) / 2.0
    gradients = np.gradient(np.asarray(simulation["truth"], dtype=np.float64).mean(axis=0))
    information = np.stack([g ** 2 for g in gradients])  # (2, H, W): per axis
    ours_per_pixel = registration.translations[:, :, None, None] + np.stack(
        [displacement_at_pixels(d, (rows, cols), shape) for d in registration.displacement_px])
    errors = np.zeros((patch_rows.size, patch_cols.size))
    limits = np.zeros_like(errors)
    for i, centre_y in enumerate(patch_rows):
        for j, centre_x in enumerate(patch_cols):
            top, left = int(round(centre_y - (side - 1) / 2)), int(round(centre_x - (side - 1) / 2))
            inside = (slice(None), slice(None), slice(top, top + side), slice(left, left + side))
            weight = information[inside[1:]]
            weight = weight / np.maximum(weight.sum(axis=(1, 2), keepdims=True), 1e-300)
            true = (truth[inside] * weight).sum(axis=(2, 3))
            ours = (ours_per_pixel[inside] * weight).sum(axis=(2, 3))
            located = []
            low_y, low_x = max(top0 + top - reach, 0), max(left0 + left - reach, 0)
            target = field[low_y:top0 + top + side + reach, low_x:left0 + left + side + reach]
            target = target - target.mean()
            for counts in frames[:, top:top + side, left:left + side].astype(np.float64):
                canvas = np.zeros_like(target)
                at_y, at_x = top0 + top - low_y, left0 + left - low_x
                canvas[at_y:at_y + side, at_x:at_x + side] = counts - counts.mean()
                shift, _, _ = phase_cross_correlation(target, canvas, upsample_factor=100,
                                                      normalization=None)
                located.append(shift)
            errors[i, j] = alignment_error_px(ours, true)
            limits[i, j] = alignment_error_px(np.asarray(located), true)
    return errors, limits
