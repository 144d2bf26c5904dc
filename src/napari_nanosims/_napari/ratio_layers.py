"""Qt-free building of ratio layers: the presets of a file's masses, and the value, sigma
and display (HSI, hue-modulated) layer data of a derived image. The Ratio tab runs these in
its worker and adds the results."""

from __future__ import annotations

import numpy as np

from ..analysis.display import hsi_rgb
from ..analysis.ratios import STANDARDS
from ..export.ratio import auto_range
from .layers import derived_layer_data
from .lookups import KIND_DISPLAY, KIND_RATIO, KIND_SIGMA, NOT_A_CHANNEL

__all__ = ["DISPLAYS", "COLORMAP", "PAIRS", "presets", "ratio_layer_tuples"]

DISPLAYS = ("colormap", "OpenMIMS HSI", "hue-modulated")
COLORMAP = "cividis"  # perceptually uniform, readable by colour-blind viewers
# Isotope pairs with their usual standard: (rare, common, standard name)
PAIRS = (("12C 15N", "12C 14N", "AIR 15N/14N"), ("13C", "12C", "VPDB 13C/12C"),
         ("12C 13C", "12C2", "VPDB 13C/12C"), ("18O", "16O", "VSMOW 18O/16O"),
         ("2H", "1H", "VSMOW 2H/1H"), ("34S", "32S", "VCDT 34S/32S"))


def presets(labels) -> list[tuple[str, str]]:
    """(title, expression) presets for the masses of a file: ratio, fraction, delta."""
    found = []
    squeeze = {"".join(label.split()): label for label in labels}
    for rare, common, standard in PAIRS:
        a, b = "".join(rare.split()), "".join(common.split())
        if a in squeeze and b in squeeze:
            value = STANDARDS[standard]
            if rare == "12C 13C":  # dimers: 12C13C/12C2 = 2 x 13C/12C
                # With a 13C atom fraction f, dimers form as 12C13C ~ 2f(1-f) (two
                # arrangements) and 12C2 ~ (1-f)**2, so 12C13C/(12C13C+2*12C2) = f.
                found += [(f"{a}/{b}", f"{a}/{b}"), ("13C/12C from dimers", f"{a}/(2*{b})"),
                          ("at-% 13C from dimers", f"100*{a}/({a}+2*{b})"),
                          (f"delta vs {standard}", f"delta({a}/(2*{b}), {value})")]
            else:
                found += [(f"{a}/{b}", f"{a}/{b}"), (f"at-% {a}", f"100*{a}/({a}+{b})"),
                          (f"delta vs {standard}", f"delta({a}/{b}, {value})")]
    return found


def _hsi_colormap():
    """The OpenMIMS HSI colour table as a napari colormap (for the colour bar)."""
    from napari.utils.colormaps import Colormap

    from ..analysis.display import openmims_colour_table

    colours = openmims_colour_table(np.linspace(0, 65535, 256).astype(np.int64))
    return Colormap(np.column_stack([colours, np.ones(256)]), name="openmims-hsi")


def ratio_layer_tuples(info, state, derived, total, settings):
    """Value, sigma and RGB display layer tuples (computed in the worker)."""
    value_range = settings["value_range"] or auto_range(derived)
    base = dict(info, detector_index=NOT_A_CHANNEL[KIND_RATIO], label=derived.expression)
    two_d = dict(state, colormap=COLORMAP, blending="translucent", visible=True)
    history = [record.to_dict() for record in derived.history]
    value = derived_layer_data(dict(base), two_d, derived.value[None], KIND_RATIO, history,
                               two_d=True)
    value = (derived.value, dict(value[1], contrast_limits=value_range), "image")
    tuples = []
    if settings["display"] == "colormap":
        tuples.append(value)
    else:
        if settings["display"] == "OpenMIMS HSI" and derived.numerator is not None:
            rgb = hsi_rgb(derived, value_range=value_range)
            # the value layer below the colours carries the colour bar: give it the same
            # colours (the HSI table sampled at 256 points)
            value[1]["colormap"] = _hsi_colormap()
        else:
            intensity = np.nansum(total.counts, axis=0)
            rgb = hsi_rgb(derived, value_range=value_range, mode="modulated",
                          colormap=settings.get("lut", np.linspace(0, 1, 256)[:, None]
                                                * np.ones((1, 3))),
                          intensity=intensity)
        # the value stays visible under the opaque colours: its value is under the cursor
        # and its colour bar (same colours, same range) is on the canvas
        tuples.append(value)
        display = derived_layer_data(dict(base, detector_index=NOT_A_CHANNEL[KIND_DISPLAY]),
                                     dict(two_d),
                                     rgb[None], KIND_DISPLAY, history, two_d=True)
        kwargs = dict(display[1])
        for key in ("colormap", "contrast_limits"):
            kwargs.pop(key, None)
        kwargs["rgb"] = True
        tuples.append((rgb, kwargs, "image"))
    if settings["show_sigma"]:
        sigma = derived_layer_data(dict(base, detector_index=NOT_A_CHANNEL[KIND_SIGMA]),
                                   dict(two_d, visible=False),
                                   derived.sigma[None], KIND_SIGMA, history, two_d=True)
        tuples.append((derived.sigma, sigma[1], "image"))
    return derived, tuples, value_range
