"""Take the screenshots in docs/images: the viewer with the demo and each dock widget.

    xvfb-run -a -s "-screen 0 1400x1000x24" python scripts/screenshots.py [OUT_DIR]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from qtpy.QtWidgets import QApplication

from napari_nanosims.cli import open_viewer


def settle(seconds: float = 0.5) -> None:
    end = time.time() + seconds
    while time.time() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def wait_for(runner, timeout: float = 120) -> None:
    end = time.time() + timeout
    while runner.worker is not None and time.time() < end:
        settle(0.05)


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/images")
    out.mkdir(parents=True, exist_ok=True)
    viewer = open_viewer([], show=True)
    viewer.window._qt_window.resize(1400, 950)
    docks = viewer.window.dock_widgets
    hot = docks["Remove hot pixels (napari-nanosims)"]
    align = docks["Align frames (napari-nanosims)"]
    header = docks["NanoSIMS header (napari-nanosims)"]
    settle(1.0)
    hot.show_points.value = True
    settle(1.5)
    hot.run()
    wait_for(hot._runner)
    align.method.value = "sub-pixel"
    align.run()
    wait_for(align._runner)
    stem = Path(viewer.layers[0].metadata["nanosims"]["source_path"]).stem
    for layer in viewer.layers:
        layer.visible = layer.name == f"{stem} 12C 14N (aligned sum)"
    viewer.layers.selection.active = viewer.layers[f"{stem} 12C 14N (aligned sum)"]
    header.search.setText("")
    settle(1.0)
    viewer.window.screenshot(str(out / "viewer.png"), canvas_only=False, flash=False)
    for name, widget in (("hot_pixels", hot), ("align_frames", align), ("header", header)):
        native = getattr(widget, "native", widget)
        native.grab().save(str(out / f"widget_{name}.png"))
    print("screenshots written to", out)
    viewer.close()


if __name__ == "__main__":
    main()
