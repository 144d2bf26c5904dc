"""Take the screenshots in docs/images: the viewer with the demo and each dock widget.

    xvfb-run -a -s "-screen 0 1280x1024x24" python scripts/screenshots.py [OUT_DIR] [WxH]
        [--scene demo|align_piecewise]

WxH is the window size (default 1280x1024; napari's first start is 1089x661). The tabs
are saved as the panel at that size; docs/images holds the 1280x1024 set and
docs/images/small the 1089x661 one. ``--scene`` takes one scene only (default: all):
``demo`` (the viewer, every tab, the ratio and ROI views on the demo file) or
``align_piecewise`` (a simulated deforming stack aligned with the piecewise method: the
displacement field's arrows over the last frame, the Align tab beside them).
"""

from __future__ import annotations

import time
from pathlib import Path

from qtpy.QtWidgets import QApplication

from napari_nanosims._napari.viewer import open_viewer


def settle(seconds: float = 0.5) -> None:
    end = time.time() + seconds
    while time.time() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def wait_for(runner, timeout: float = 120) -> None:
    end = time.time() + timeout
    while runner.worker is not None and time.time() < end:
        settle(0.05)


def wait_for_layers() -> None:
    from napari_nanosims._napari.widgets._common import LayerAdder

    while LayerAdder._active:
        settle(0.05)


def find_layer(viewer, label: str, kind: str):
    """The first layer of ``kind`` ("aligned", "ratio", ...) of the mass ``label``."""
    from napari_nanosims._napari.lookups import nanosims_info

    for layer in viewer.layers:
        info = nanosims_info(layer) or {}
        if info.get("kind") == kind and (label is None or info.get("label") == label):
            return layer
    raise LookupError(f"no {kind} layer of {label}: {[layer.name for layer in viewer.layers]}")


def save_window(viewer, path: Path) -> None:
    """The window with the canvas pasted in from the GL framebuffer (under Xvfb a window
    grab shows a stale canvas)."""
    from imageio.v3 import imwrite
    from qtpy.QtCore import QPoint

    window = viewer.screenshot(canvas_only=False, flash=False)
    canvas = viewer.screenshot(canvas_only=True, flash=False)
    native = viewer.window._qt_viewer.canvas.native
    corner = native.mapTo(viewer.window._qt_window, QPoint(0, 0))
    top, left = corner.y(), corner.x()
    height = min(canvas.shape[0], window.shape[0] - top)
    width = min(canvas.shape[1], window.shape[1] - left)
    window[top:top + height, left:left + width] = canvas[:height, :width]
    imwrite(path, window)


def new_viewer(size: str, paths=()):
    """A shown viewer of ``size`` ('WxH') with the panel docked and ``paths`` opened (the
    demo when empty); returns it and the panel."""
    import napari

    viewer = napari.Viewer(title="napari-nanosims", show=True)
    width, height = (int(v) for v in size.split("x"))
    viewer.window._qt_window.resize(width, height)
    open_viewer(list(paths), viewer=viewer)
    panel = viewer.window.dock_widgets["NanoSIMS (napari-nanosims)"]
    settle(1.0)
    return viewer, panel


def align_piecewise(out: Path, size: str) -> None:
    """The Align tab after a piecewise run on a stack that deforms (a bulge growing to
    3 px), the field's arrows over the last frame: ``align_piecewise.png``."""
    import tempfile

    import numpy as np

    from napari_nanosims.testing.deform import simulate_deformation
    from napari_nanosims.testing.factory import make_im

    sim = simulate_deformation("cells", "bulge", 20, 6.0, window=160, amplitude_px=3.0,
                               seed=5)
    rng = np.random.default_rng(5)
    counts = np.stack([sim["frames"], rng.poisson(0.02 * sim["truth"])],
                      axis=1).astype(np.uint16)
    with tempfile.TemporaryDirectory() as folder:
        path = make_im(Path(folder) / "deforming_cells.im", counts,
                       labels=["12C 14N", "12C 15N"], raster_um=16.0)
        viewer, panel = new_viewer(size, [path])
        titles = [panel.tabs.tabText(i) for i in range(panel.tabs.count())]
        panel.tabs.setCurrentIndex(titles.index("Align"))
        panel.align.method.value = "piecewise (non-rigid)"
        panel.align.run()
        wait_for(panel.align._runner)
        wait_for_layers()
        viewer.dims.set_current_step(0, counts.shape[0] - 1)
        viewer.layers.selection.active = find_layer(viewer, "12C 14N", "aligned")
        viewer.reset_view()
        settle(1.0)
        save_window(viewer, out / "align_piecewise.png")
        viewer.close()


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="docs/images", type=Path)
    parser.add_argument("size", nargs="?", default="1280x1024", help="window size, WxH")
    parser.add_argument("--scene", choices=("demo", "align_piecewise"),
                        help="take one scene only (default: all)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.scene in (None, "demo"):
        demo(args.out, args.size)
    if args.scene in (None, "align_piecewise"):
        align_piecewise(args.out, args.size)
    print("screenshots written to", args.out)


def demo(out: Path, size: str) -> None:
    """The viewer with the demo, every tab, the Ratio and ROIs views."""
    viewer, panel = new_viewer(size)
    panel.clean.show_points.value = True
    settle(1.5)
    panel.clean.run()
    wait_for(panel.clean._runner)
    wait_for_layers()
    panel.tabs.setCurrentIndex(2)
    panel.align.method.value = "sub-pixel"
    panel.align.run()
    wait_for(panel.align._runner)
    wait_for_layers()
    for layer in viewer.layers:
        if "nanosims_overlay" in layer.metadata:
            layer.visible = False
    active = find_layer(viewer, "12C 14N", "aligned")
    viewer.layers.selection.active = active
    viewer.reset_view()
    settle(1.0)
    save_window(viewer, out / "viewer.png")
    titles = [panel.tabs.tabText(i) for i in range(panel.tabs.count())]
    for title, name in (("Clean", "hot_pixels"), ("Correct", "corrections"),
                        ("Align", "align_frames"), ("Ratio", "ratio"),
                        ("Correlate", "correlate"), ("File", "file")):  # ROIs: below
        index = titles.index(title)
        panel.tabs.setCurrentIndex(index)
        settle(0.3)
        panel.grab().save(str(out / f"widget_{name}.png"))
    # the Ratio tab: 15N/14N of the aligned sums, OpenMIMS HSI display, 3 x 3 kernel
    panel.tabs.setCurrentIndex(3)
    ratio = panel.ratio
    ratio.expression.value = "12C15N/12C14N"
    ratio.kernel.value = 3
    ratio.display.value = "OpenMIMS HSI"
    ratio._debounce.stop()
    ratio.run()
    wait_for(ratio._runner)
    wait_for_layers()
    ratio_layer = find_layer(viewer, None, "ratio")
    for layer in viewer.layers:
        layer.visible = layer is ratio_layer
    viewer.layers.selection.active = ratio_layer
    settle(1.0)
    save_window(viewer, out / "ratio.png")
    panel.grab().save(str(out / "widget_ratio.png"))
    # the ROIs tab: cells found on 12C 14N, 15N/14N per cell
    panel.tabs.setCurrentIndex(4)
    rois = panel.rois
    rois.find_cells()
    wait_for(rois._runner)
    end = time.time() + 30
    while rois.statistics is None and time.time() < end:
        settle(0.1)
    wait_for(rois._runner)
    aligned = find_layer(viewer, "12C 14N", "aligned")
    for layer in viewer.layers:
        layer.visible = layer is aligned or layer.__class__.__name__ == "Labels"
    rois.table.selectRow(0)
    settle(1.0)
    save_window(viewer, out / "rois.png")
    panel.grab().save(str(out / "widget_rois.png"))
    viewer.close()


if __name__ == "__main__":
    main()
