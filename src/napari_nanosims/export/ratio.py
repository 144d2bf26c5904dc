"""Write derived images: value and sigma as float32 OME-TIFF, and a PNG figure of the
display (colour bar and scale bar; :mod:`.figure`)."""

from __future__ import annotations

import warnings
from importlib.util import find_spec

import numpy as np

from .._errors import FigureWarning
from ..analysis.display import hsi_rgb
from ..analysis.ratios import DerivedImage
from ._files import atomic_outputs, remove_stale_partials
from .ometiff import write_ome_tiff

__all__ = ["write_derived", "auto_range", "plain_display"]


def auto_range(derived: DerivedImage) -> tuple[float, float]:
    """The 1st and 99th percentiles of the finite values (a display range)."""
    finite = derived.value[np.isfinite(derived.value)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(finite, [1, 99])
    return (float(low), float(high)) if high > low else (float(low), float(low) + 1.0)


def plain_display(derived: DerivedImage, value_range, display: str = "colormap",
                  colormap: str = "cividis") -> np.ndarray:
    """The (H, W, 3) uint8 display, one pixel per image pixel: OpenMIMS HSI for
    ``display='hsi'``, else ``colormap`` (a grey ramp without matplotlib); NaN black."""
    if display == "hsi":
        if derived.numerator is None:
            raise ValueError(f"the HSI display needs a ratio or fraction; "
                             f"{derived.expression!r} is neither (use display='colormap')")
        return hsi_rgb(derived, value_range=value_range)
    if find_spec("matplotlib") is not None:
        from matplotlib import colormaps

        lut = colormaps[colormap](np.linspace(0, 1, 256))[:, :3]
    else:
        lut = np.linspace(0, 1, 256)[:, None] * np.ones((1, 3))
    return hsi_rgb(derived, value_range=value_range, mode="modulated", colormap=lut)


def write_derived(derived: DerivedImage, paths: dict, *, value_range=None,
                  overwrite: bool = False, display: str = "colormap", figure: bool = True,
                  colormap: str = "cividis") -> dict:
    """Write value and sigma (float32, channels ``<expression>`` and ``sigma``) and a PNG.

    ``paths``: ``image`` and ``display`` (:func:`napari_nanosims.export.names.ratio_outputs`).

    The PNG is a figure (:func:`napari_nanosims.export.figure.write_ratio_figure`): the
    image in ``colormap`` (``display='colormap'``) or the OpenMIMS HSI display
    (``display='hsi'``, ratios and fractions), a colour bar titled with the expression
    and its unit, ticked from the low to the high end of ``value_range`` (default: 1st
    to 99th percentile), and a scale bar in µm; masked (NaN) pixels are black. With
    ``figure=False``, or without matplotlib (``pip install napari-nanosims[figures]``;
    a :class:`FigureWarning` says so), the PNG holds the display pixels only, one per
    image pixel. Nothing is overwritten unless asked; files appear only when complete.
    """
    from imageio.v3 import imwrite

    folder = paths["image"].parent
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(folder)
    value_range = value_range or auto_range(derived)
    if display == "hsi" and derived.numerator is None:
        raise ValueError(f"the HSI display needs a ratio or fraction; {derived.expression!r} "
                         "is neither (use the colormap display)")
    if figure and find_spec("matplotlib") is None:
        warnings.warn("matplotlib is not installed: the PNG has no colour bar and no scale "
                      "bar (pip install 'napari-nanosims[figures]')", FigureWarning,
                      stacklevel=2)
        figure = False
    with atomic_outputs(paths, overwrite) as temporary:
        write_ome_tiff(temporary["image"], np.stack([derived.value, derived.sigma]).astype(
            np.float32), "CYX", derived.pixel_size_um,
            [derived.expression, f"sigma({derived.expression})"])
        if figure:
            from .figure import write_ratio_figure

            write_ratio_figure(derived, temporary["display"], value_range=value_range,
                               display=display, colormap=colormap)
        else:
            imwrite(temporary["display"], plain_display(derived, value_range, display,
                                                        colormap), extension=".png")
    return paths
