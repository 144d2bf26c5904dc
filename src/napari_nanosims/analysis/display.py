"""Colour displays of derived images: the OpenMIMS HSI mapping and hue modulation.

The OpenMIMS mapping follows ``../shared/docs/analysis.md`` section 5.1 step by step
(thresholds, intensity with its transparency modes, a 65 536-entry colour table); the
result is an (H, W, 3) uint8 image. Display only: the values stay in the DerivedImage.
"""

from __future__ import annotations

import numbers

import numpy as np

from .._checks import short_repr
from .ratios import DerivedImage

__all__ = ["hsi_rgb", "openmims_colour_table", "TRANSPARENCY_MODES"]

TRANSPARENCY_MODES = {0: "max", 1: "numerator", 2: "denominator", 3: "min", 4: "mean",
                      5: "sum", 6: "norm"}
_TABLE_SIZE = 65536


def openmims_colour_table(h) -> np.ndarray:
    """Colours (N, 3) in 0..1 for hue indices ``h`` (0..65535) of the OpenMIMS HSI table."""
    h = np.asarray(h, dtype=np.float64)
    theta = h * 2 * np.pi / 65535 - np.pi
    u, v = 128 * np.cos(theta), 128 * np.sin(theta)
    root6 = np.sqrt(6.0)
    a = np.clip(160 - u / root6 + v * root6 / 2, 0, 255)
    b = np.clip(160 - u / root6 - v * root6 / 2, 0, 255)
    g = np.clip(160 + u * root6 / 3, 0, 255)
    red = a / 255 * np.where(h < 16384, h / 16384, 1.0)
    return np.stack([red, g / 255, b / 255], axis=-1)


def _intensity_index(image, display_range):
    image = np.asarray(image, dtype=np.float64)
    low, high = display_range if display_range is not None else (np.nanmin(image),
                                                                 np.nanmax(image))
    # OpenMIMS multiplies before dividing (255 * (x - min) / (max - min)): the other order
    # rounds 255 down to 254 at the top of the range
    if high > low:
        return np.floor(255.0 * (image - np.floor(low)) / (high - low))
    return np.floor(image - np.floor(low))


def _openmims(derived, value_range, intensity, transparency, thresholds, rgb_range,
              intensity_ranges):
    numerator, denominator = intensity if intensity is not None else (derived.numerator,
                                                                      derived.denominator)
    if numerator is None or denominator is None:
        raise ValueError("the OpenMIMS display needs the numerator and denominator images: "
                         "pass intensity=(N, D) for an expression that is not a ratio")
    if transparency not in TRANSPARENCY_MODES:
        raise ValueError(f"transparency must be one of {sorted(TRANSPARENCY_MODES)}; "
                         f"got {transparency!r}")
    n_range, d_range = intensity_ranges or (None, None)
    i_n = _intensity_index(numerator, n_range)
    i_d = _intensity_index(denominator, d_range)
    i = {0: np.maximum(i_n, i_d), 1: i_n, 2: i_d, 3: np.minimum(i_n, i_d),
         4: np.floor((i_n + i_d) / 2), 5: i_n + i_d,
         6: np.floor(np.sqrt(i_n ** 2 + i_d ** 2))}[transparency]
    rgb_min, rgb_max = rgb_range
    if rgb_max == rgb_min:
        rgb_max = rgb_min + 1
    level = np.clip(np.floor((i - rgb_min) * 255 / (rgb_max - rgb_min)), 0, 255)
    low, high = value_range
    if high <= 0:
        high = 1.0
    value = derived.value
    with np.errstate(invalid="ignore"):
        h = np.where(value <= low, 0, np.where(value >= high, 65535, np.floor(
            (value - low) * 65535 / (high - low))))
    colours = openmims_colour_table(np.nan_to_num(h).astype(np.int64))
    rgb = np.floor(colours * level[..., None])
    shown = (np.asarray(numerator) > thresholds[0]) & (np.asarray(denominator) > thresholds[1])
    shown &= np.isfinite(value) & np.isfinite(level)
    return np.where(shown[..., None], rgb, 0).astype(np.uint8)


def _modulated(derived, value_range, intensity, colormap, intensity_range, background):
    lut = np.asarray(colormap, dtype=np.float64)
    if lut.ndim != 2 or lut.shape[1] not in (3, 4) or len(lut) < 2:
        raise ValueError("colormap must be an (N, 3) or (N, 4) table of colours in 0..1 "
                         "(in napari: a layer colormap's .colors)")
    lut = lut[:, :3]
    low, high = value_range
    scaled = np.clip((derived.value - low) / (high - low), 0, 1) if high > low else \
        np.zeros_like(derived.value)
    index = np.nan_to_num(np.round(scaled * (len(lut) - 1))).astype(np.int64)
    rgb = lut[index]
    if intensity is not None:
        intensity = np.asarray(intensity, dtype=np.float64)
        i_low, i_high = intensity_range if intensity_range is not None else (
            np.nanmin(intensity), np.nanmax(intensity))
        modulator = np.clip((intensity - i_low) / (i_high - i_low), 0, 1) \
            if i_high > i_low else np.ones_like(intensity)
        modulator = np.nan_to_num(modulator)[..., None]
        rgb = rgb * modulator if background == "black" else 1 - (1 - rgb) * modulator
    missing = ~np.isfinite(derived.value)
    rgb[missing] = 0.0 if background == "black" else 1.0
    return np.round(rgb * 255).astype(np.uint8)


def _pair(value, name: str, increasing: bool = False) -> tuple[float, float]:
    """``value`` as two finite numbers (``low < high`` when ``increasing``), or a
    ValueError naming ``name``: text, None, booleans and other shapes are refused."""
    numbers_ok = isinstance(value, (list, tuple, np.ndarray)) and len(value) == 2 and all(
        isinstance(v, (numbers.Real, np.number)) and not isinstance(v, (bool, np.bool_))
        for v in value)
    if numbers_ok:
        low, high = (float(v) for v in value)
        if np.isfinite(low) and np.isfinite(high) and (high > low or not increasing):
            return low, high
    order = ", low < high" if increasing else ""
    raise ValueError(f"{name} must be two finite numbers{order}; got {short_repr(value)}")


def hsi_rgb(derived: DerivedImage, *, value_range, intensity=None, mode: str = "openmims",
            transparency: int = 2, thresholds=(0.0, 0.0), rgb_range=(0, 255),
            intensity_ranges=None, colormap=None, intensity_range=None,
            background: str = "black") -> np.ndarray:
    """An (H, W, 3) uint8 colour display of a derived image.

    Parameters
    ----------
    derived : DerivedImage
        The values to show (a ratio for the OpenMIMS mode).
    value_range : (float, float)
        Values mapped to the two ends of the colours (unscaled, in the image's unit).
    intensity : array or (N, D) pair, optional
        ``'openmims'``: the numerator and denominator images (default: the derived
        image's own). ``'modulated'``: the image whose brightness modulates the hue
        (default: none, plain colours).
    mode : {'openmims', 'modulated'}
        ``'openmims'`` reproduces OpenMIMS's HSI display: pixels with ``N <= T_num`` or
        ``D <= T_den`` black, intensity by ``transparency`` (0 max, 1 N, 2 D, 3 min,
        4 mean, 5 sum, 6 norm), its 65 536-colour table. ``'modulated'`` maps the values
        through ``colormap`` and multiplies by the clipped intensity (LANS-style), NaN
        black (or white with ``background='white'``).
    transparency, thresholds, rgb_range, intensity_ranges
        OpenMIMS's settings (defaults as in OpenMIMS: 2, (0, 0), (0, 255), data ranges).
    colormap : (N, 3) array
        For ``'modulated'``: colours in 0..1, e.g. a napari colormap's ``.colors``.
    intensity_range : (float, float), optional
        For ``'modulated'``: intensity mapped to 0..1 (default: its data range).
    """
    low, high = _pair(value_range, "value_range", increasing=True)
    if mode == "openmims":
        thresholds = _pair(thresholds, "thresholds")
        rgb_range = _pair(rgb_range, "rgb_range")
        if intensity_ranges is not None:
            if not isinstance(intensity_ranges, (list, tuple)) or len(intensity_ranges) != 2:
                raise ValueError("intensity_ranges must be None or two ranges (numerator, "
                                 f"denominator), each None or (low, high); got "
                                 f"{short_repr(intensity_ranges)}")
            intensity_ranges = tuple(None if r is None else _pair(r, "intensity_ranges")
                                     for r in intensity_ranges)
        return _openmims(derived, (low, high), intensity, transparency, thresholds,
                         rgb_range, intensity_ranges)
    if mode == "modulated":
        if colormap is None:
            raise ValueError("mode='modulated' needs a colormap: an (N, 3) table of colours")
        if background not in ("black", "white"):
            raise ValueError(f"background must be 'black' or 'white', not {background!r}")
        if intensity_range is not None:
            intensity_range = _pair(intensity_range, "intensity_range")
        return _modulated(derived, (low, high), intensity, colormap, intensity_range,
                          background)
    raise ValueError(f"mode must be 'openmims' or 'modulated', not {mode!r}")
