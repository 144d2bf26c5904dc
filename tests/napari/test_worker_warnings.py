"""Warnings raised inside a widget's worker reach the user as notifications, once per run."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest

pytestmark = pytest.mark.gui
napari = pytest.importorskip("napari")


def _warning_job(messages, result="done"):
    from napari_nanosims.steps.progress import Progress

    for step, message in enumerate(messages):
        warnings.warn(message, UserWarning, stacklevel=1)
        yield Progress("step", step + 1, len(messages))
    return result


def test_throttled_relays_each_distinct_warning_once():
    from napari_nanosims._napari.widgets._runner import WorkerWarning, throttled
    from napari_nanosims.steps.progress import Progress

    job = throttled(_warning_job(["shift larger than the padding", "other",
                                  "shift larger than the padding"]), threading.Event(),
                    interval_s=0.0)
    items = []
    while True:
        try:
            items.append(next(job))
        except StopIteration as stop:
            assert stop.value == "done"
            break
    relayed = [item.text for item in items if isinstance(item, WorkerWarning)]
    assert relayed == ["shift larger than the padding", "other"]
    assert [item for item in items if isinstance(item, Progress)]  # progress still flows


def test_runner_shows_worker_warnings_as_notifications(qtbot, monkeypatch):
    from magicgui.widgets import ProgressBar, PushButton

    from napari_nanosims._napari.widgets._runner import WorkerRunner

    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_warning", shown.append)
    runner = WorkerRunner(PushButton(), PushButton(), ProgressBar())
    results = []
    for _ in range(2):  # a second run warns again (not swallowed by the once-filter)
        runner.start(_warning_job(["shift larger than the padding"] * 3),
                     description="test", on_returned=results.append)
        qtbot.waitUntil(lambda: runner.worker is None, timeout=10_000)
    assert results == ["done", "done"]
    assert shown == ["shift larger than the padding"] * 2


def test_align_tab_reports_a_shift_beyond_the_padding(make_napari_viewer, qtbot, tmp_path,
                                                      monkeypatch):
    """A real step's warning, raised in the worker thread, reaches the window."""
    from napari_nanosims import write_im
    from napari_nanosims._napari.widgets import AlignFramesWidget

    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_warning", shown.append)
    rng = np.random.default_rng(1)
    scene = np.zeros((64, 64))
    scene[20:30, 20:30] = 40.0
    scene[40:44, 10:50] = 25.0
    frames = [rng.poisson(np.roll(scene, (3 * k, 2 * k), (0, 1))) for k in range(4)]
    data = np.stack([np.stack([f, f]) for f in frames]).astype(np.uint16)
    path = write_im(tmp_path / "drift.im", data, ["12C", "12C 14N"], [12, 26], 5, 100)
    viewer = make_napari_viewer()
    viewer.open(path, plugin="napari-nanosims")
    aligner = AlignFramesWidget(viewer)
    aligner.padding.value = 2  # the drift reaches 9 px
    assert aligner.run() is not None
    qtbot.waitUntil(lambda: aligner._runner.worker is None, timeout=60_000)
    assert any("padding" in message for message in shown), shown
