"""Write derived images: value and sigma as float32 OME-TIFF, and a PNG of the display."""

from __future__ import annotations

import numpy as np

from ..analysis.display import hsi_rgb
from ..analysis.ratios import DerivedImage
from ._files import atomic_outputs, remove_stale_partials
from .ometiff import write_ome_tiff

__all__ = ["write_derived", "auto_range"]


def auto_range(derived: DerivedImage) -> tuple[float, float]:
    """The 1st and 99th percentiles of the finite values (a display range)."""
    finite = derived.value[np.isfinite(derived.value)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(finite, [1, 99])
    return (float(low), float(high)) if high > low else (float(low), float(low) + 1.0)


def write_derived(derived: DerivedImage, paths: dict, *, value_range=None,
                  overwrite: bool = False) -> dict:
    """Write value and sigma (float32, channels ``<expression>`` and ``sigma``) and a PNG.

    ``paths``: ``image`` and ``display`` (:func:`napari_nanosims.export.names.ratio_outputs`).

    The PNG is the OpenMIMS HSI display for ratios and fractions, else a grey ramp; NaN
    pixels are black. Nothing is overwritten unless asked; files appear only when complete.
    """
    from imageio.v3 import imwrite

    folder = paths["image"].parent
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(folder)
    value_range = value_range or auto_range(derived)
    if derived.numerator is not None:
        display = hsi_rgb(derived, value_range=value_range)
    else:
        grey = np.linspace(0, 1, 256)[:, None] * np.ones((1, 3))
        display = hsi_rgb(derived, value_range=value_range, mode="modulated", colormap=grey)
    with atomic_outputs(paths, overwrite) as temporary:
        write_ome_tiff(temporary["image"], np.stack([derived.value, derived.sigma]).astype(
            np.float32), "CYX", derived.pixel_size_um,
            [derived.expression, f"sigma({derived.expression})"])
        imwrite(temporary["display"], display, extension=".png")
    return paths
