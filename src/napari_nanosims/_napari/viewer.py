"""A napari viewer with the plugin's panel docked and files opened (``nanosims view``)."""

from __future__ import annotations

import gc
import sys

__all__ = ["open_viewer", "run", "PANEL"]

PANEL = "NanoSIMS"
#: Width of napari's layer controls and layer list beside the canvas (pixels).
LAYER_COLUMN_PX = 320  # napari's layer controls need no less


def open_viewer(paths, *, show: bool = True, viewer=None):
    """A napari viewer with the plugin's panel docked and ``paths`` opened (the demo if empty).

    Uses ``viewer`` when given, else creates one. The panel (Clean, Align and Header tabs)
    is docked first so that the files open into the canvas size they will keep, and the
    view is reset once the window is laid out, so the whole image is in view. Returns the
    viewer. Files that cannot be opened are reported on standard error.
    """
    import napari
    from qtpy.QtCore import QTimer

    from .._cache import demo_path

    paths = list(paths) or [str(demo_path())]
    if viewer is None:
        viewer = napari.Viewer(title="napari-nanosims", show=show)
    # On the right, where napari docks every plugin (also when the panel is opened from
    # the Plugins menu): it gets the window's full height, so at napari's first-start
    # size every tab shows its controls, Run and its result without scrolling.
    dock, _ = viewer.window.add_plugin_dock_widget("napari-nanosims", PANEL, tabify=False)
    for path in paths:
        try:
            viewer.open(path, plugin="napari-nanosims")
        except Exception as exc:  # napari wraps reader errors in its own types
            print(f"error: {path}: {exc}", file=sys.stderr)
    _arrange(viewer, dock)
    QTimer.singleShot(0, lambda: _arrange(viewer, dock))  # again once the window is laid out
    # napari's start-up objects live as long as the window; frozen, Python's full garbage
    # collections skip them and take 30-70 ms instead of 150-250 ms, which would otherwise
    # stall the window while results are added (benchmarks/bench_gui.py).
    gc.freeze()
    return viewer


def _arrange(viewer, dock) -> None:
    """Keep napari's layer column narrow so the canvas keeps over half of the width;
    fit the image in view."""
    from qtpy.QtCore import Qt

    try:
        qt_window, qt_viewer = viewer.window._qt_window, viewer.window._qt_viewer
        left = [qt_viewer.dockLayerControls, qt_viewer.dockLayerList]
        qt_window.resizeDocks(left, [LAYER_COLUMN_PX] * 2, Qt.Orientation.Horizontal)
    except (AttributeError, RuntimeError):  # napari renamed its docks, or the window is gone
        return
    viewer.reset_view()


def run() -> None:
    """Start napari's event loop (returns when the last window closes)."""
    import napari

    napari.run()
