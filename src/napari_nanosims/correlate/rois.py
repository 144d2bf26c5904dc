"""ROIs of other programs (ImageJ, OpenMIMS, LANS, painted masks) on the NanoSIMS grid."""

from __future__ import annotations

import os

import numpy as np

from .registration import ImageRegistration
from .resample import grid_of, resample

__all__ = ["read_rois"]


def read_rois(path, like, *, registration: ImageRegistration | None = None,
              min_area_px: int = 4, background=None):
    """Read an ROI file into a label image on the NanoSIMS grid, with the ROIs' classes.

    Parameters
    ----------
    path : path-like
        ``.roi`` or ``.zip`` (ImageJ, Fiji, OpenMIMS ``rois.zip``), ``.mat`` (LANS
        ``cells.mat``), ``.png``/``.tif``/``.tiff`` (a mask painted in pure colours, or a
        label image). See :mod:`napari_nanosims.io.roi_files` for how each is read.
    like : Acquisition, Accumulation or (shape, pixel_size_um)
        The NanoSIMS image whose grid the labels are on.
    registration : ImageRegistration, optional
        When the ROIs were drawn on another image (FISH, EM): the registration of that
        image (moving) to the NanoSIMS image. The ROIs are filled on the moving image's
        pixels, then resampled onto ``like``'s grid by nearest neighbour. Without it the
        file must be on ``like``'s pixels: masks and ``cells.mat`` of another size are
        refused, and so are ImageJ ROIs that lie outside it.
    min_area_px : int
        Masks only: regions of fewer pixels are dropped (anti-aliased edges).
    background : str or int, optional
        Masks only: the colour (``'#rrggbb'``) or value that is no ROI (default: the most
        frequent colour; 0 for one-channel images).

    Returns
    -------
    (numpy.ndarray, dict)
        int32 labels on ``like``'s grid (0 = none; ROIs numbered 1, 2... in file order;
        ROIs the registration puts outside the grid are dropped and the rest keep their
        numbers), and ``{roi: class}``: OpenMIMS group names, ImageJ group numbers, a
        mask's colour (``'#rrggbb'``) or value.

    Raises
    ------
    ImFormatError
        A file that is not what its name says, or too large.
    ValueError
        A file drawn on another image without a registration, or one whose image is not
        the registration's moving image.
    """
    from ..io.roi_files import read_roi_labels

    shape, pixel_um = grid_of(like)
    if registration is None:
        return read_roi_labels(path, shape, min_area_px=min_area_px, background=background)
    if not isinstance(registration, ImageRegistration):
        raise ValueError("registration must be an ImageRegistration; got "
                         f"{type(registration).__name__}")
    moving_shape = tuple(registration.moving_shape)
    labels, classes = read_roi_labels(path, moving_shape, min_area_px=min_area_px,
                                      background=background)
    if labels.shape != moving_shape:  # pragma: no cover - read_roi_labels refuses it
        raise ValueError(f"{os.fspath(path)}: not on the registration's moving image")
    on_grid, _ = resample(labels, registration, (shape, pixel_um), labels=True)
    kept = set(np.unique(on_grid[on_grid > 0]).tolist())
    return on_grid.astype(np.int32), {roi: name for roi, name in classes.items()
                                      if roi in kept}
