"""Publication figures of derived images: the image with a colour bar (quantity, unit,
range) and a scale bar in µm, drawn with matplotlib (the optional extra ``figures``).

No pyplot: a :class:`matplotlib.figure.Figure` with its own Agg canvas, so that figures
can be drawn in worker threads (the napari Ratio tab) without touching a GUI backend.
"""

from __future__ import annotations

import math

import numpy as np

from ..analysis.display import hsi_rgb, openmims_colour_table
from ..analysis.ratios import DerivedImage

__all__ = ["FIGURE_DISPLAYS", "quantity_label", "scale_bar_length_um", "write_ratio_figure"]

#: ``'colormap'``: the values through a colormap (masked pixels black);
#: ``'hsi'``: the OpenMIMS HSI display (hue: the ratio, brightness: the denominator).
FIGURE_DISPLAYS = ("colormap", "hsi")
_IMAGE_PX = 512  # the image is drawn at least this many figure pixels wide or tall
_DPI = 100


def quantity_label(derived: DerivedImage) -> str:
    """``'13C/12C (ratio)'``, ``'delta(...) (per mil)'``: the colour bar's title."""
    return f"{derived.expression} ({derived.unit or 'ratio'})"


def scale_bar_length_um(field_um: float) -> float:
    """The longest of 1, 2, 5 x 10^k µm that is at most a quarter of the field width."""
    if not (np.isfinite(field_um) and field_um > 0):
        raise ValueError(f"the field width must be a positive number of µm, not {field_um!r}")
    target = field_um / 4
    power = 10.0 ** math.floor(math.log10(target))
    return max(step * power for step in (1, 2, 5) if step * power <= target * (1 + 1e-9))


def _hsi_colormap():
    from matplotlib.colors import ListedColormap

    return ListedColormap(openmims_colour_table(np.linspace(0, 65535, 256)), name="hsi")


def write_ratio_figure(derived: DerivedImage, path, *, value_range, display: str = "colormap",
                       colormap: str = "cividis") -> dict:
    """Write ``derived`` as a PNG figure with a colour bar and a scale bar in µm.

    Parameters
    ----------
    derived : DerivedImage
        The image (its ``pixel_size_um`` sets the scale bar).
    path : path-like
        The PNG written (the caller chooses a temporary name; see ``export/_files.py``).
    value_range : (float, float)
        Values at the ends of the colour bar (unscaled, in the image's unit).
    display : {'colormap', 'hsi'}
        ``'colormap'``: the value through ``colormap``, masked (NaN) pixels black.
        ``'hsi'``: the OpenMIMS HSI display (ratios and fractions only) with the HSI hue
        scale as its colour bar.
    colormap : str
        A matplotlib colormap name, for ``'colormap'``.

    Returns
    -------
    dict
        ``label`` (colour-bar title), ``range``, ``scale_bar_um``, ``display``, and the
        pixel boxes ``(row0, row1, col0, col1)`` of ``image``, ``colorbar`` and
        ``scale_bar`` in the PNG (rows from the top).
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    if display not in FIGURE_DISPLAYS:
        raise ValueError(f"display must be one of {FIGURE_DISPLAYS}, not {display!r}")
    low, high = (float(v) for v in value_range)
    if not (np.isfinite(low) and np.isfinite(high)) or high <= low:
        raise ValueError(f"value_range must be two finite numbers, low < high; got "
                         f"{value_range!r}")
    height, width = derived.value.shape
    zoom = max(1.0, _IMAGE_PX / max(height, width))
    image_w, image_h = width * zoom / _DPI, height * zoom / _DPI  # inches
    margin, bar_w, bar_space = 0.15, 0.25, 1.6  # colour bar, its ticks and its title
    fig_w, fig_h = margin + image_w + 0.2 + bar_w + bar_space, image_h + 2 * margin
    figure = Figure(figsize=(fig_w, fig_h), dpi=_DPI, facecolor="white")
    FigureCanvasAgg(figure)
    axes = figure.add_axes((margin / fig_w, margin / fig_h, image_w / fig_w, image_h / fig_h))
    norm = Normalize(low, high)
    if display == "hsi":
        if derived.numerator is None:
            raise ValueError(f"the HSI display needs a ratio or fraction; "
                             f"{derived.expression!r} is neither (use display='colormap')")
        cmap = _hsi_colormap()
        axes.imshow(hsi_rgb(derived, value_range=(low, high)), interpolation="nearest")
    else:
        cmap = colormaps[colormap].with_extremes(bad="black")
        axes.imshow(np.ma.masked_invalid(derived.value), cmap=cmap, norm=norm,
                    interpolation="nearest")
    axes.set_axis_off()
    # the scale bar: white with a black outline (readable on any colour), bottom left
    length_um = scale_bar_length_um(width * derived.pixel_size_um)
    length_px = length_um / derived.pixel_size_um
    thick = max(height / 60, 1.0)
    x0, y0 = width * 0.05 - 0.5, height * 0.95 - 0.5 - thick
    axes.add_patch(Rectangle((x0, y0), length_px, thick, facecolor="white",
                             edgecolor="black", linewidth=0.5))
    axes.text(x0 + length_px / 2, y0 - thick * 0.6, f"{length_um:g} µm", color="white",
              ha="center", va="bottom", fontsize=11, fontweight="bold")
    bar_axes = figure.add_axes(((margin + image_w + 0.2) / fig_w, margin / fig_h,
                                bar_w / fig_w, image_h / fig_h))
    colorbar = figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=bar_axes)
    colorbar.set_ticks(np.linspace(low, high, 5))  # type: ignore[arg-type]  # an array works
    colorbar.ax.tick_params(labelsize=9)
    label = quantity_label(derived)
    colorbar.set_label(label, fontsize=10)
    canvas = figure.canvas
    canvas.draw()
    total_h = canvas.get_width_height()[1]

    def box(extent):
        (x_a, y_a), (x_b, y_b) = extent.get_points()
        return (round(total_h - y_b), round(total_h - y_a), round(x_a), round(x_b))

    corners = axes.transData.transform([(x0, y0), (x0 + length_px, y0 + thick)])
    rows, cols = sorted(total_h - corners[:, 1]), sorted(corners[:, 0])
    scale_box = (round(rows[0]), round(rows[1]), round(cols[0]), round(cols[1]))
    figure.savefig(path, format="png", dpi=_DPI, facecolor="white")
    return {"label": label, "range": (low, high), "scale_bar_um": length_um,
            "display": display, "image": box(axes.get_window_extent()),
            "colorbar": box(bar_axes.get_window_extent()), "scale_bar": scale_box}
