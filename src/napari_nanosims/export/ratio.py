"""Write derived images: value and sigma as float32 OME-TIFF, and a PNG of the display."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from ..analysis.display import hsi_rgb
from ..analysis.ratios import DerivedImage
from .ometiff import atomic_outputs, remove_stale_partials, write_ome_tiff

__all__ = ["ratio_paths", "write_derived", "auto_range"]


def _safe(expression: str) -> str:
    """A file-name-safe form of an expression: '12C 15N/12C 14N' -> '12C15N_over_12C14N'."""
    text = expression.replace("/", "_over_").replace("*", "x").replace(" ", "")
    return re.sub(r"[^0-9A-Za-z_.+-]", "_", text)[:80]


def ratio_paths(input_path, out_dir, expression: str) -> dict[str, Path]:
    """``<stem>_<expression>.ome.tif`` and ``.png`` in ``out_dir`` (default: beside the input)."""
    source = Path(input_path)
    folder = Path(out_dir) if out_dir is not None else source.parent
    base = f"{source.stem}_{_safe(expression)}"
    return {"image": folder / f"{base}.ome.tif", "display": folder / f"{base}.png"}


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

    The PNG is the OpenMIMS HSI display for ratios and fractions, else a grey ramp; NaN
    pixels are black. Nothing is overwritten unless asked; files appear only when complete.
    """
    from imageio.v3 import imwrite

    existing = [str(p) for p in paths.values() if os.path.lexists(p)]
    if existing and not overwrite:
        raise FileExistsError(f"outputs exist (use --overwrite to replace): "
                              f"{', '.join(existing)}")
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
