"""A count-conserving warp: every pixel's counts moved along a smooth displacement field.

Each input pixel ``p`` of frame ``k`` sends its counts to ``p + t_k + D_k(p)`` (the
frame's translation plus the field there), split bilinearly between the four pixels
around that point with weights that add up to one. Nothing is resampled, so the total of
every frame and every mass is unchanged (to floating-point rounding) as long as nothing
is pushed past the edge of the output; what is pushed past it is dropped, never wrapped,
as in :func:`~napari_nanosims.processing.alignment.shifts.apply_translations`. A pixel's
variance moves with the squared weights; the coverage (the warped frame of ones) says
how much of a measured pixel each output pixel holds.
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np

from .._frames import check_stack, frame, map_frames, run_to_completion
from .background import interpolation_matrix
from .shifts import _check_padding, _check_translations

__all__ = ["apply_displacements", "iter_apply_displacements", "displacement_at_pixels",
           "grid_weights", "slope_beyond", "affine_share", "displacement_vectors",
           "arrow_scale", "warped_frame", "AFFINE_SHARE_FROM", "AFFINE_SHARE_FULL"]


#: A frame's field continues beyond the outer grid points with its slope in proportion
#: to how much of it a plane explains (R², over the grid points about their mean): none
#: up to AFFINE_SHARE_FROM, all of it from AFFINE_SHARE_FULL (:func:`affine_share`). A
#: shear or a scaling is a plane (1.0): held constant, a third of a patch at each edge
#: lagged the truth and the cells' corner patches were 2.6x their noise limit. A local
#: bulge is not (0.34 on the benchmark's): carried outward by its slope it would grow
#: where it fades. White noise on a 5 x 5 grid explains about 0.08.
AFFINE_SHARE_FROM, AFFINE_SHARE_FULL = 0.5, 0.9


def slope_beyond(centres, length: int) -> np.ndarray:
    """(length, points) float64: what each pixel adds to its :func:`grid_weights` per
    unit of ``slope_share``: its distance beyond the outer point times the weights of
    the least-squares slope (per px) through the points; zeros inside them and under 3
    points (two give a slope as noisy as its ends)."""
    centres = np.asarray(centres, dtype=np.float64)
    if centres.size < 3:
        return np.zeros((length, centres.size))
    pixels = np.arange(length, dtype=np.float64)
    beyond = np.minimum(pixels - centres[0], 0.0) + np.maximum(pixels - centres[-1], 0.0)
    offsets = centres - centres.mean()
    return beyond[:, None] * (offsets / float(np.dot(offsets, offsets)))[None, :]


def grid_weights(centres, length: int, slope_share: float = 0.0) -> np.ndarray:
    """(length, points) float64: each pixel's bilinear weights on the grid points at
    ``centres`` (pixel coordinates, increasing) along one axis.

    Bilinear interpolation is separable: along each axis, every pixel takes two
    neighbouring grid points with weights (1 - f, f) at its fractional grid index (the
    centres need not be evenly spaced: the last patch sits flush with the frame's edge).
    The field at every pixel is then ``rows_weights @ field @ columns_weights.T``.
    Beyond the outer points the field is the outer point's value plus ``slope_share``
    times the least-squares slope through all the points along the axis, times the
    distance (0: held constant; at least 3 points, else constant).
    """
    centres = np.asarray(centres, dtype=np.float64)
    position = (np.zeros(length) if centres.size == 1 else np.interp(
        np.arange(length, dtype=np.float64), centres, np.arange(centres.size, dtype=np.float64)))
    weights = interpolation_matrix(position, centres.size)
    if slope_share:
        weights += float(slope_share) * slope_beyond(centres, length)
    return weights


def affine_share(field: np.ndarray, grid) -> float:
    """How much of its slope a frame's field (2, rows, cols) at the grid points
    ``grid`` carries beyond the outer points (0 to 1; see :data:`AFFINE_SHARE_FROM`):
    from the share of the field about its mean that a plane in the points' pixel
    coordinates explains (R², both components together); 0 under 3 points along
    either axis, and for a field that is constant."""
    field = np.asarray(field, dtype=np.float64)
    rows, cols = (np.asarray(g, dtype=np.float64) for g in grid)
    if rows.size < 3 or cols.size < 3:
        return 0.0
    centred = (field - field.mean(axis=(1, 2), keepdims=True)).reshape(2, -1)
    total = float(np.sum(centred ** 2))
    if not total > 0:
        return 0.0
    plane = np.column_stack([np.repeat(rows - rows.mean(), cols.size),
                             np.tile(cols - cols.mean(), rows.size)])
    coefficients = np.linalg.lstsq(plane, centred.T, rcond=None)[0]
    explained = float(np.sum((plane @ coefficients) ** 2)) / total
    return float(np.clip((explained - AFFINE_SHARE_FROM)
                         / (AFFINE_SHARE_FULL - AFFINE_SHARE_FROM), 0.0, 1.0))


def displacement_at_pixels(field: np.ndarray, grid, shape, slope_share=None) -> np.ndarray:
    """A field given at grid points, interpolated (bilinearly) to every pixel.

    Parameters
    ----------
    field : numpy.ndarray, shape (2, rows, cols)
        (rows, columns) displacement at the grid points, pixels.
    grid : (array, array)
        Pixel coordinates of the grid's rows and columns (increasing).
    shape : (int, int)
        Frame height and width.
    slope_share : float, optional
        How much of its slope the field carries beyond the outer grid points (0: held
        constant there, 1: all of it; :func:`grid_weights`). By default the field's own
        :func:`affine_share`: a shear or a scaling continues to the frame's edges, a
        local bulge is held constant.

    Returns
    -------
    numpy.ndarray, float64, shape (2, height, width)
        The field at every pixel.
    """
    field = np.asarray(field, dtype=np.float64)
    if slope_share is not None and not 0.0 <= float(slope_share) <= 1.0:
        raise ValueError(f"slope_share must be from 0 to 1 (the share of the field's slope "
                         f"carried beyond the outer grid points); got {slope_share!r}")
    share = affine_share(field, grid) if slope_share is None else float(slope_share)
    row_weights = grid_weights(grid[0], shape[0], share)
    column_weights = grid_weights(grid[1], shape[1], share)
    out = np.empty((2,) + tuple(shape))
    for component, values in zip(out, field, strict=True):
        np.matmul(row_weights @ values, column_weights.T, out=component)
    return out


def _splat(images: np.ndarray, destination_y: np.ndarray, destination_x: np.ndarray,
           out: np.ndarray, power: int) -> np.ndarray:
    """Add every pixel of ``images`` (detectors, H, W) at its fractional destination into
    ``out`` (detectors, height, width, float64, C-ordered), which it returns; the two
    destination arrays (float64, H x W) are overwritten.

    The output frame is written in place, the images are read one detector at a time
    and the destinations become their own fractional parts: a frame's temporaries are a
    few images, not copies of its seven detectors (14 MiB each at 512², per frame
    thread, on top of the warped stack)."""
    height, width = out.shape[-2:]
    top = np.floor(destination_y)
    fraction_y = np.subtract(destination_y, top, out=destination_y)
    top = top.astype(np.int64)
    left = np.floor(destination_x)
    fraction_x = np.subtract(destination_x, left, out=destination_x)
    left = left.astype(np.int64)
    # Which of the four pixels around each destination lie inside the output.
    rows_inside = [((top + step) >= 0) & ((top + step) < height) for step in (0, 1)]
    columns_inside = [((left + step) >= 0) & ((left + step) < width) for step in (0, 1)]
    corner = np.multiply(top, width, out=top)  # the flat index of the top-left pixel
    corner += left
    del left
    flat_out = out.reshape(out.shape[0], height * width)  # a view: out is C-ordered
    row_weights = (1.0 - fraction_y, fraction_y)
    column_weights = (1.0 - fraction_x, fraction_x)
    for dy in (0, 1):
        for dx in (0, 1):
            weight = (row_weights[dy] * column_weights[dx]).ravel()
            inside = (rows_inside[dy] & columns_inside[dx]).ravel() & (weight > 0)
            target = corner.ravel()[inside] + (dy * width + dx)
            weight = weight[inside] ** power
            for detector, image in enumerate(images):
                flat_out[detector] += np.bincount(target, image.ravel()[inside] * weight,
                                                  minlength=height * width)
    return out


def _warped(images: np.ndarray, translation, displacement: np.ndarray, grid, origin: int,
            out: np.ndarray, power: int) -> np.ndarray:
    """Add one frame (detectors, H, W) moved by its translation plus its field into
    ``out`` (detectors, height, width, float64 zeros), which it returns."""
    height, width = images.shape[-2:]
    # Each pixel's destination: its place plus the translation plus the field there.
    destination = displacement_at_pixels(displacement, grid, (height, width))
    destination[0] += (np.arange(height) + (origin + translation[0]))[:, None]
    destination[1] += (np.arange(width) + (origin + translation[1]))[None, :]
    return _splat(images, destination[0], destination[1], out, power)


def warped_frame(images: np.ndarray, translation, displacement, grid, *, power: int = 1
                 ) -> np.ndarray:
    """One frame (detectors, H, W) warped and kept at its own size, float64.

    The frame :func:`iter_apply_displacements` with ``crop`` gives, value for value:
    ``translation`` (rows, columns) and ``displacement`` (2, rows, cols) are that
    frame's, pixels; ``power`` 2 moves a variance with the squared weights.
    """
    return _warped(images, translation, np.asarray(displacement, dtype=np.float64), grid, 0,
                   np.zeros(images.shape, np.float64), power)


def iter_apply_displacements(data, translations, displacement_px, grid, padding=8, *,
                             crop: bool = False, variance: bool = False
                             ) -> Generator[int, None, np.ndarray]:
    """Generator form of :func:`apply_displacements`: yields frames done, returns the result."""
    data = check_stack(data)
    padding = _check_padding(padding, data.shape)
    translations = _check_translations(data, translations)
    n_frames, n_detectors, height, width = data.shape
    displacement_px = np.asarray(displacement_px, dtype=np.float64)
    if displacement_px.ndim != 4 or displacement_px.shape[:2] != (n_frames, 2):
        raise ValueError(f"displacement_px must have shape ({n_frames}, 2, rows, cols); got "
                         f"{displacement_px.shape}")
    if not np.all(np.isfinite(displacement_px)):
        raise ValueError("displacement_px must be finite numbers of pixels")
    out_shape = (height, width) if crop else (height + 2 * padding, width + 2 * padding)
    origin = 0 if crop else padding
    out = np.zeros((n_frames, n_detectors) + out_shape, np.float64)
    power = 2 if variance else 1

    def work(index):
        _warped(np.asarray(frame(data, index)), translations[index], displacement_px[index],
                grid, origin, out[index], power)
        return index

    for index in map_frames(work, n_frames):
        yield index + 1
    return out


def apply_displacements(data, translations, displacement_px, grid, padding=8, *,
                        crop: bool = False, variance: bool = False) -> np.ndarray:
    """Move every pixel of every frame by its translation plus a smooth displacement field.

    Parameters
    ----------
    data : array_like, shape (frames, detectors, height, width)
        Counts (or, with ``variance``, their variances); never modified.
    translations : array_like, shape (frames, 2)
        (rows, columns) per frame, pixels.
    displacement_px : array_like, shape (frames, 2, rows, cols)
        The displacement beyond the translation at the grid points, pixels
        (``FrameRegistration.displacement_px`` of ``method='piecewise'``); bilinear
        between them and, beyond the outer ones, carried on by each frame's
        :func:`affine_share` of its slope (:func:`displacement_at_pixels`).
    grid : (array, array)
        Pixel coordinates of the grid's rows and columns
        (``FrameRegistration.displacement_grid_px``).
    padding : int
        Zeros added around every frame, pixels (ignored with ``crop``).
    crop : bool
        Keep the frames' own size.
    variance : bool
        ``data`` holds variances: moved with the squared weights.

    Returns
    -------
    numpy.ndarray, float64, shape (frames, detectors, H', W')
        Each pixel's counts split bilinearly between the four pixels around its
        destination (weights adding up to one): every frame's and every mass's total is
        unchanged to rounding unless content is pushed past the output's edge (dropped).
    """
    return run_to_completion(iter_apply_displacements(
        data, translations, displacement_px, grid, padding, crop=crop, variance=variance))


def _field_of(registration) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """A registration's field (frames, 2, rows, cols) and grid, checked."""
    field = getattr(registration, "displacement_px", None)
    grid = getattr(registration, "displacement_grid_px", None)
    if field is None or grid is None:
        raise ValueError("registration has no displacement field (method='piecewise' only)")
    field = np.asarray(field, dtype=np.float64)
    rows, cols = (np.asarray(g, dtype=np.float64).reshape(-1) for g in grid)
    if field.ndim != 4 or field.shape[1:] != (2, rows.size, cols.size):
        raise ValueError(f"displacement_px must have shape (frames, 2, {rows.size}, "
                         f"{cols.size}) to match its grid; got {field.shape}")
    return field, (rows, cols)


def displacement_vectors(registration, scale: float = 1.0) -> np.ndarray:
    """A piecewise registration's displacement field as arrows: one per patch centre per
    frame that kept a field.

    Parameters
    ----------
    registration : FrameRegistration
        With ``displacement_px`` and ``displacement_grid_px`` (``method='piecewise'``).
    scale : float
        Multiplier of the arrows' length (1: the displacement itself, pixels).

    Returns
    -------
    numpy.ndarray, float64, shape (n, 2, 3)
        ``[:, 0]`` the arrow's start, (frame, row, column): the patch centre in the
        frame's pixels; ``[:, 1]`` its direction, (0, rows, columns): the displacement
        beyond the frame's translation times ``scale``, pixels. Frames whose field is 0
        everywhere (they moved rigidly) have no arrows; frame by frame, rows then columns.

    Raises
    ------
    ValueError
        When the registration has no field, or ``scale`` is not a positive number.
    """
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a positive number; got {scale}")
    field, (rows, cols) = _field_of(registration)
    frames = np.flatnonzero(np.any(field != 0, axis=(1, 2, 3)))
    frame_of, row_of, col_of = np.meshgrid(frames, rows, cols, indexing="ij")
    starts = np.stack([frame_of, row_of, col_of], axis=-1).reshape(-1, 3)
    moves = np.moveaxis(field[frames], 1, -1).reshape(-1, 2) * float(scale)
    directions = np.column_stack([np.zeros(len(moves)), moves])
    return np.stack([starts.astype(np.float64), directions], axis=1)


def arrow_scale(registration, cells: float = 1.0) -> float:
    """How much to lengthen the field's arrows so that they can be seen: the largest of
    1, 2, 5, 10, 20, 50, ... that keeps the longest arrow within ``cells`` grid steps
    (the spacing of the patch centres); 1 when the field is already that long, or 0.

    Displacements are often a fraction of a pixel while the patch centres lie tens of
    pixels apart: drawn as they are, the arrows would be dots.
    """
    field, grid = _field_of(registration)
    longest = float(np.max(np.hypot(field[:, 0], field[:, 1]), initial=0.0))
    steps = [float(g[1] - g[0]) for g in grid if g.size > 1]
    if longest == 0 or not steps:
        return 1.0
    room = cells * min(steps) / longest
    if room <= 1:
        return 1.0
    decade = 10.0 ** np.floor(np.log10(room))
    return float(max(m * decade for m in (1, 2, 5) if m * decade <= room))
