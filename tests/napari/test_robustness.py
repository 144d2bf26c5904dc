"""Widgets on files with thousands of tiny frames, and no leaks over repeated runs."""

from __future__ import annotations

import gc
import threading

import numpy as np
import pytest

from napari_nanosims import write_im

pytestmark = pytest.mark.gui
napari = pytest.importorskip("napari")


def _kind_count(viewer, kind):
    return sum(layer.metadata.get("nanosims", {}).get("kind") == kind
               for layer in viewer.layers)


def _run(qtbot, widget, kind, count):
    assert widget.run() is not None
    from napari_nanosims._napari.widgets._common import LayerAdder

    qtbot.waitUntil(lambda: widget._runner.worker is None, timeout=120_000)
    qtbot.waitUntil(lambda: not LayerAdder._active, timeout=60_000)  # every layer added
    assert _kind_count(widget._viewer, kind) == count


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(3000, 3, 16, 16), (1000, 4, 32, 32)])
def test_many_small_frames_complete_in_every_widget(make_napari_viewer, qtbot, tmp_path,
                                                    shape):
    from napari_nanosims._napari.widgets import AlignFramesWidget, CorrectionsWidget, HotPixelWidget

    rng = np.random.default_rng(0)
    data = rng.poisson(3, size=shape).astype(np.uint32)
    labels = ["12C", "13C", "12C 14N", "SE"][-shape[1]:]
    path = write_im(tmp_path / "many.im", data, labels, [12, 13, 26, 0][-shape[1]:], 5, 100)
    viewer = make_napari_viewer()
    viewer.open(path, plugin="napari-nanosims")
    cleaner, aligner = HotPixelWidget(viewer), AlignFramesWidget(viewer)
    corrector = CorrectionsWidget(viewer)
    n_ions = shape[1] - 1
    for _ in range(5):  # every run completes: no silent abort
        _run(qtbot, cleaner, "cleaned", n_ions)
        _run(qtbot, corrector, "corrected", n_ions)
        _run(qtbot, aligner, "aligned sum", shape[1])
    assert viewer.layers[f"cleaned {labels[0]} · many"].data.shape == shape[:1] + shape[2:]


def _live(kind_name):
    gc.collect()
    return sum(type(obj).__name__ == kind_name for obj in gc.get_objects())


@pytest.mark.slow
def test_repeated_runs_leak_no_workers_layers_threads_or_memory(make_napari_viewer, qtbot,
                                                                demo_file):
    import psutil
    from qtpy.QtCore import QCoreApplication, QEvent

    from napari_nanosims._napari.widgets import AlignFramesWidget, HotPixelWidget

    viewer = make_napari_viewer()
    viewer.open(demo_file["path"], plugin="napari-nanosims")
    cleaner, aligner = HotPixelWidget(viewer), AlignFramesWidget(viewer)

    def cycle():
        _run(qtbot, cleaner, "cleaned", 6)
        _run(qtbot, aligner, "aligned sum", 7)
        cleaner.run()  # and a cancelled run each time
        cleaner._runner.cancel()
        qtbot.waitUntil(lambda: cleaner._runner.worker is None, timeout=60_000)
        aligner.run()
        aligner._runner.cancel()
        qtbot.waitUntil(lambda: aligner._runner.worker is None, timeout=60_000)

    def settle():
        """Run the deletions Qt deferred (replaced layers, finished workers) before counting."""
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        QCoreApplication.processEvents()

    for _ in range(3):  # warm up: caches, first allocations, Qt's thread pool
        cycle()
    settle()
    process = psutil.Process()
    rss, threads = process.memory_info().rss, threading.active_count()
    workers, images = _live("GeneratorWorker"), _live("Image")
    for _ in range(20):
        cycle()
    settle()
    assert _live("GeneratorWorker") <= workers
    assert _live("Image") <= images  # replaced layers are freed
    assert len(viewer.layers) == 7 + 6 + 7 + 7 + 1  # raw, cleaned, aligned, sums, coverage
    assert threading.active_count() <= threads
    grown_mib = (process.memory_info().rss - rss) / 2**20
    assert grown_mib < 50, f"RSS grew by {grown_mib:.0f} MiB over 20 cycles"
