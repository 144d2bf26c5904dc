"""npe2 reader for isotope (spot) files, ``.is``, and the tables and text the spot view
shows (no Qt at import).

A spot file holds counts of a few masses at one spot over cycles, not an image, so the
reader adds no layer: it docks the "NanoSIMS spots" widget (``widgets/spots_view.py``)
in the viewer, gives it the files and returns npe2's "nothing to add" value ``[(None,)]``.
napari does not hand a reader its viewer (napari#2202), so the reader takes the active
window's viewer (``napari.current_viewer()``): with several napari windows open, spot
files open in the one last active.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence

import numpy as np

from ..analysis.spots import SpotRatio, correct_isotope, spot_ratio
from ..io.isotope import open_isotope, sniff_is
from ..model.isotope import IsotopeMeasurement

__all__ = ["get_spots_reader", "read_spot_files", "open_spot_files", "cycle_table",
           "default_ratio", "spot_summary", "summary_text", "SPOTS_WIDGET", "PLUGIN_NAME"]

PLUGIN_NAME = "napari-nanosims"
#: The widget's display name in napari.yaml (its dock's title and Plugins menu entry).
SPOTS_WIDGET = "NanoSIMS spots"
SPOT_SUFFIXES = (".is",)


def _paths(path: str | os.PathLike | Sequence) -> list[str]:
    return [os.fspath(path)] if isinstance(path, (str, os.PathLike)) else [
        os.fspath(p) for p in path]


def get_spots_reader(path: str | list[str]) -> Callable | None:
    """Return the spot reader when every path is a Cameca isotope file, else None.

    Sniffs the file type (26) in the first bytes; never raises.
    """
    try:
        paths = _paths(path)
        if paths and all(p.lower().endswith(SPOT_SUFFIXES) and sniff_is(p) for p in paths):
            return read_spot_files
    except Exception:  # noqa: BLE001 - a reader that cannot tell must say no, not fail
        return None
    return None


def open_spot_files(paths: Sequence[str]) -> tuple[list[IsotopeMeasurement], list[str]]:
    """Open every file; return the measurements and one line per problem (a file that
    could not be read, an aborted analysis), each naming its file."""
    measurements, problems = [], []
    for path in paths:
        name = os.path.basename(path)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                measurements.append(open_isotope(path))
        except (ValueError, OSError) as exc:  # ImFormatError is a ValueError
            text = str(exc)
            problems.append(text if name in text else f"{name}: {text}")
            continue
        for warning in caught:
            text = str(warning.message)
            problems.append(text if name in text else f"{name}: {text}")
    return measurements, problems


def read_spot_files(path: str | list[str], stack: bool = False) -> list[tuple]:
    """Show ``.is`` files in the viewer's "NanoSIMS spots" dock; add no layer.

    Files that cannot be read are named in one notification (the others are shown).

    Returns
    -------
    list
        ``[(None,)]``: npe2's value for "read, nothing to add".

    Raises
    ------
    ValueError
        When no napari window is open to show the table in (scripts: use
        :func:`~napari_nanosims.open_isotope` and :func:`~napari_nanosims.spot_table`).
    """
    paths = _paths(path)
    viewer = _current_viewer()
    if viewer is None or getattr(viewer, "window", None) is None:
        raise ValueError(
            f"{', '.join(os.path.basename(p) for p in paths)}: a spot file (.is) opens as "
            "a table in the napari window, and no window is open; in Python use "
            "napari_nanosims.open_isotope and spot_table, or `nanosims spots` on the "
            "command line")
    measurements, problems = open_spot_files(paths)
    if measurements:
        _, widget = viewer.window.add_plugin_dock_widget(PLUGIN_NAME, SPOTS_WIDGET)
        widget.add_measurements(measurements)
    if problems:
        _notify("error" if not measurements else "warning", "\n".join(problems))
    return [(None,)]


def _current_viewer():
    try:
        from napari import current_viewer
    except ImportError:  # pragma: no cover - napari is there when napari calls us
        return None
    return current_viewer()


def _notify(kind: str, message: str) -> None:
    from napari.utils.notifications import show_error, show_warning

    (show_error if kind == "error" else show_warning)(message)


# -- what the view shows (no Qt) ---------------------------------------------------------
def cycle_table(measurement: IsotopeMeasurement):
    """One row per cycle: ``cycle`` (1-based, as Cameca numbers them), ``block``
    (1-based), ``time_s`` (of the first mass) and the counts of every mass: the values
    of Cameca's text export, in columns named by the masses' labels; a Faraday cup's
    column, ``'<label> (FC)'``, holds the cup's reading, not ions (see
    :meth:`~napari_nanosims.IsotopeMeasurement.fc_cps`).

    Returns
    -------
    pandas.DataFrame
    """
    import pandas as pd

    n = measurement.n_cycles
    columns = {"cycle": np.arange(1, n + 1), "block": measurement.block_of_cycle() + 1,
               "time_s": (measurement.times_s[:, 0] if measurement.n_masses
                          else np.zeros(n))}
    for k, label in enumerate(measurement.labels):
        # Two masses with one label (a repeated species) keep both columns apart.
        name = f"{label} (FC)" if measurement.fc_background[k] is not None else label
        name = name if name not in columns else f"{name} ({k + 1})"
        columns[name] = measurement.counts[:, k]
    return pd.DataFrame(columns)


def default_ratio(measurement: IsotopeMeasurement) -> tuple[str, str]:
    """The first ratio set up in the analysis, else second mass over first."""
    if measurement.ratios:
        return measurement.ratios[0]
    labels = measurement.labels
    return (labels[1], labels[0]) if len(labels) > 1 else (labels[0], labels[0])


def spot_summary(measurement: IsotopeMeasurement, numerator: str, denominator: str, *,
                 dead_time: bool = True, exclude_outliers: bool = False) -> SpotRatio:
    """The whole-run ratio ``numerator/denominator`` as ``nanosims spots`` computes it
    (dead time corrected unless ``dead_time`` is False)."""
    corrected = correct_isotope(measurement, dead_time=dead_time)
    return spot_ratio(corrected, f"{numerator}/{denominator}",
                      exclude_outliers=exclude_outliers)


def summary_text(measurement: IsotopeMeasurement, result: SpotRatio | None) -> str:
    """The lines the view shows under the ratio chooser (plain text, word-wrapped)."""
    if result is None or measurement.n_cycles == 0:
        return (f"{measurement.name}: no cycles (header only: "
                f"{', '.join(measurement.labels)}).")
    used = len(result.cycles)
    flagged = np.flatnonzero(result.outliers) + 1
    outliers = (f"{len(flagged)} outlier cycle{'s' if len(flagged) != 1 else ''} "
                f"(> {result.threshold_sigma:.2f} σ)")
    if len(flagged):
        shown = ", ".join(str(c) for c in flagged[:10])
        outliers += f": {shown}{', ...' if len(flagged) > 10 else ''}"
    if np.isfinite(result.mswd):
        mswd = f"MSWD {result.mswd:.3g} (p = {result.p_value:.3g})"
    else:  # a cycle without counts of one mass has no Poisson error
        mswd = "MSWD n/a (cycles with 0 counts)"
    return "\n".join([
        f"{result.expression} = {result.ratio:.6g} ± {result.poisson_se:.2g} (Poisson)",
        f"SE of cycles: {result.cycle_se:.2g}" if np.isfinite(result.cycle_se)
        else "SE of cycles: n/a (one cycle)",
        f"{mswd}, {used} of {measurement.n_cycles} cycles",
        outliers])
