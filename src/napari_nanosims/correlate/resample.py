"""An external image or label image put onto the NanoSIMS pixel grid through a
registration."""

from __future__ import annotations

import numpy as np

from .registration import ImageRegistration

__all__ = ["resample", "grid_of"]

#: The most pixels of a NanoSIMS grid (a 4096 x 4096 raster); more is not a NanoSIMS image.
MAX_GRID_PIXELS = 4096 * 4096


def grid_of(like) -> tuple[tuple[int, int], float]:
    """(height, width) and pixel size (µm) of ``like``: an ``Acquisition``, an
    ``Accumulation`` or a ``(shape, pixel_size_um)`` pair."""
    if isinstance(like, tuple) and len(like) == 2 and not hasattr(like, "shape"):
        shape, pixel = like
    elif hasattr(like, "coverage") and hasattr(like, "frames"):  # an Accumulation
        shape, pixel = like.coverage.shape, like.pixel_size_um
    elif hasattr(like, "header") and hasattr(like, "shape"):  # an Acquisition
        shape, pixel = like.shape[2:], like.pixel_size_um
    else:
        raise ValueError("like must be an Acquisition, an Accumulation or a (shape, "
                         f"pixel_size_um) pair; got {type(like).__name__}")
    try:
        shape = tuple(int(v) for v in shape)
        pixel = float(pixel)
    except (TypeError, ValueError):
        raise ValueError(f"like: shape {shape!r} and pixel size {pixel!r} must be numbers"
                         ) from None
    if len(shape) != 2 or min(shape) < 1 or shape[0] * shape[1] > MAX_GRID_PIXELS:
        raise ValueError(f"like: (height, width) {shape} is not a NanoSIMS image size")
    if not np.isfinite(pixel) or pixel <= 0:
        raise ValueError(f"like: pixel size {pixel} µm must be a positive number")
    return shape, pixel


def _moving_pixels(registration: ImageRegistration, shape, pixel_um: float) -> np.ndarray:
    """(2, height, width): where the centre of every grid pixel lies in the moving image,
    in moving pixels (rows, columns)."""
    rows, columns = np.indices(shape, dtype=np.float64) * pixel_um
    points = np.stack([rows.ravel(), columns.ravel()], axis=1)
    moving_um = registration.inverse(points)
    return (moving_um / registration.moving_pixel_um).T.reshape(2, *shape)


def resample(moving, registration: ImageRegistration, like, *, labels: bool | None = None):
    """Put a moving image or label image onto the pixel grid of ``like``.

    Parameters
    ----------
    moving : array_like, (height, width)
        The external image (its pixels as registered: ``registration.moving_pixel_um``),
        or a label image on it (cells segmented on FISH, say).
    registration : ImageRegistration
        Moving µm -> fixed µm.
    like : Acquisition, Accumulation or (shape, pixel_size_um)
        The NanoSIMS grid: its (height, width) and pixel size.
    labels : bool, optional
        Nearest neighbour (labels keep their whole values) or linear interpolation.
        Default: labels for integer and boolean images, linear for others.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        The resampled image on ``like``'s grid (labels: the moving dtype, 0 outside the
        moving image; intensities: float64, NaN outside), and the coverage: the fraction
        of each grid pixel's neighbourhood inside the moving image (1 inside, 0 outside,
        between at the edge), float64.

    An intensity image much finer than the grid is smoothed first (Gaussian of sigma
    ``(f - 1) / 2`` moving pixels, ``f`` the ratio of the pixel sizes), as
    ``skimage.transform.rescale`` does against aliasing. Labels are sampled at the grid
    pixels' centres, as they are.
    """
    from scipy import ndimage

    array = np.asarray(moving)
    if array.ndim != 2 or array.dtype.kind not in "biuf":
        raise ValueError(f"moving must be a 2-D image of numbers; got {array.dtype} of "
                         f"shape {array.shape}")
    if not isinstance(registration, ImageRegistration):
        raise ValueError("registration must be an ImageRegistration (register_images or "
                         f"ImageRegistration.load); got {type(registration).__name__}")
    if tuple(array.shape) != tuple(registration.moving_shape):
        raise ValueError(f"moving has shape {array.shape}, the registration's moving image "
                         f"{tuple(registration.moving_shape)}: not the image registered")
    shape, pixel_um = grid_of(like)
    if labels is None:
        labels = array.dtype.kind in "biu"
    where = _moving_pixels(registration, shape, pixel_um)
    # What a linear interpolation of ones with zeros outside gives, per axis exactly:
    # 1 between the outermost pixels' centres, falling to 0 one pixel beyond them.
    coverage = np.ones(shape)
    for axis, size in enumerate(array.shape):
        position = where[axis]
        coverage *= np.clip(np.minimum(position + 1.0, size - position), 0.0, 1.0)
    if labels:
        result = ndimage.map_coordinates(array, where, order=0, mode="constant", cval=0,
                                         output=array.dtype if array.dtype.kind != "b"
                                         else np.uint8)
        return result.astype(array.dtype, copy=False), coverage
    values = array.astype(np.float64)
    # A grid pixel spans this many moving pixels (the matrix may scale µm too).
    factor = pixel_um / registration.moving_pixel_um / float(
        np.sqrt(abs(np.linalg.det(registration.matrix[:2, :2]))))
    if factor > 1.5:
        values = ndimage.gaussian_filter(values, (factor - 1) / 2, mode="nearest")
    result = ndimage.map_coordinates(values, where, order=1, mode="constant", cval=np.nan)
    return np.where(coverage > 0, result, np.nan), coverage
