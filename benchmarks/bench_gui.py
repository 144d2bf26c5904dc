"""How long the Qt event loop is blocked while the widgets run and add their results.

A 5 ms QTimer ticks on the GUI thread; the longest gap between two ticks is the longest
time the window could not repaint or react. Measured on the demo (20 frames x 7 masses x
256 x 256) for hot-pixel removal and for alignment (whole-pixel and sub-pixel), on the
first run (layers are added) and on a re-run (our layers get the new data). Two sessions,
each in a fresh process (so that the first run is the process's first): ``nanosims view``
(the panel, its files opened by it) and a plain napari window whose file is opened by
napari and whose widgets are created afterwards, as from the Plugins menu.

    xvfb-run -a python benchmarks/bench_gui.py [--repeat 3] [--app view|plain]

The goal is under 200 ms; the floor is napari's own work for one layer (its vispy visual
or its controls, each built in a turn of its own) or the canvas's one scene update.
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import time

APPS = {"view": "nanosims view", "plain": "plain napari + widgets"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (worst kept)")
    parser.add_argument("--app", choices=sorted(APPS), default=None,
                        help="measure one session in this process (default: each in its own)")
    args = parser.parse_args()
    if args.app is None:
        for app in APPS:
            subprocess.run([sys.executable, __file__, "--repeat", str(args.repeat),
                            "--app", app], check=True)
        print("goal: longest stall < 200 ms")
        return

    import napari
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from napari_nanosims._cache import demo_path
    from napari_nanosims._napari.widgets import AlignFramesWidget, HotPixelWidget
    from napari_nanosims._napari.widgets._common import LayerAdder

    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))

    def run(widget) -> tuple[float, float]:
        ticks.clear()
        started = time.perf_counter()
        timer.start()
        widget.run()
        while widget._runner.worker is not None or LayerAdder._active:
            QApplication.processEvents()
            time.sleep(0.001)
        timer.stop()
        gaps = [b - a for a, b in itertools.pairwise(ticks)] or [0.0]
        return max(gaps) * 1000, (time.perf_counter() - started)

    from napari_nanosims._napari.viewer import open_viewer

    def new_viewer(app: str):
        if app == "nanosims view":
            viewer = open_viewer([str(demo_path())], show=True)
            panel = viewer.window.dock_widgets["NanoSIMS (napari-nanosims)"]
            return viewer, panel.clean, panel.align
        viewer = napari.Viewer(show=True)
        viewer.open(str(demo_path()), plugin="napari-nanosims")
        return viewer, HotPixelWidget(viewer), AlignFramesWidget(viewer)

    def measure(app: str, method: str) -> dict[str, tuple[float, float]]:
        worst: dict[str, tuple[float, float]] = {}
        for _ in range(args.repeat):
            viewer, cleaner, aligner = new_viewer(app)
            aligner.method.value = {"sequential": "whole pixel (openformat)",
                                    "subpixel": "sub-pixel"}[method]
            for _ in range(20):
                QApplication.processEvents()
                time.sleep(0.01)
            for label, widget in (("remove hot pixels", cleaner), (f"align ({method})", aligner),
                                  ("remove hot pixels, re-run", cleaner),
                                  (f"align ({method}), re-run", aligner)):
                stall, wall = run(widget)
                if label not in worst or stall > worst[label][0]:
                    worst[label] = (stall, wall)
            viewer.close()
        return worst

    app = APPS[args.app]
    print(f"\n{app}")
    print(f"{'case':44s} {'longest stall (ms)':>19s} {'wall time (s)':>14s}")
    for method in ("sequential", "subpixel"):
        for label, (stall, wall) in measure(app, method).items():
            if method == "subpixel" and label.startswith("remove"):
                continue
            print(f"{label:44s} {stall:19.0f} {wall:14.2f}", flush=True)


if __name__ == "__main__":
    main()
