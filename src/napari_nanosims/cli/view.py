"""``nanosims view``: napari with the plugin's panel and the files (Qt code in ``_napari``)."""

from __future__ import annotations

import importlib.util
import os
import sys

from . import report

__all__ = ["add_view_command", "no_display_message"]


def no_display_message() -> str | None:
    """Why a window cannot open here (Linux without DISPLAY or WAYLAND_DISPLAY), else None."""
    if not sys.platform.startswith("linux"):
        return None
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    if os.environ.get("QT_QPA_PLATFORM", "").startswith(("offscreen", "minimal")):
        return None
    return ("error: 'nanosims view' opens a window, but there is no display here (neither "
            "DISPLAY nor WAYLAND_DISPLAY is set); run it on a desktop, under "
            "'xvfb-run nanosims view', or use the headless commands "
            "'nanosims info', 'nanosims process' and 'nanosims recipe'")


def _cmd_view(args) -> int:
    message = no_display_message()
    if message:
        print(message, file=sys.stderr)
        return 1
    if importlib.util.find_spec("napari") is None:
        report.error("napari is not installed; install it with "
                     "python -m pip install 'napari-nanosims[napari]' PyQt6")
        return 1
    from .._napari.viewer import open_viewer, run

    open_viewer(args.files)
    run()
    return 0


def add_view_command(sub) -> None:
    """Add the ``view`` sub-command (napari) to the ``nanosims`` parser."""
    view = sub.add_parser("view", help="open napari with the NanoSIMS widgets and files",
                          description="Open napari with the hot-pixel, alignment and header "
                                      "widgets docked and FILEs loaded (the built-in demo when "
                                      "none is given).")
    view.add_argument("files", nargs="*", help=".im files (none: the built-in demo)")
    view.set_defaults(func=_cmd_view)
