"""The panel at napari's first-start size (1089x661) and at 1280x1024: every label's text
fits its visible width, each tab's Run button and main result are in sight after Run
without scrolling, and the canvas keeps at least half of a 1280-pixel window.

Runs under Xvfb (pytest --xvfb-backend=xvfb)."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

pytestmark = pytest.mark.gui
napari = pytest.importorskip("napari")

SIZES = [(1089, 661), (1280, 1024)]


def _wait_idle(qtbot, widget, timeout=60_000):
    from napari_nanosims._napari.widgets._common import LayerAdder

    qtbot.waitUntil(lambda: widget._runner.worker is None, timeout=timeout)
    qtbot.waitUntil(lambda: not LayerAdder._active, timeout=timeout)


def _fully_visible(widget) -> bool:
    """True when the whole of ``widget`` is on screen: shown, and not clipped by a
    scroll area, a splitter or the window."""
    if not widget.isVisible() or widget.width() <= 0 or widget.height() <= 0:
        return False
    visible = widget.visibleRegion().boundingRect()
    return visible.width() >= widget.width() - 1 and visible.height() >= widget.height() - 1


def _cut_labels(root) -> list[str]:
    """Texts of the labels and buttons under ``root`` that the user cannot read in full.

    A single-line label is cut when its text is wider than the part of it that is
    visible; a word-wrapped one when it is shorter than the height its text needs at its
    width, or when it is clipped. A check box or push button is cut when its text (and
    box) is wider than the part of it that is visible across."""
    from qtpy.QtWidgets import QLabel

    cut = []
    for label in root.findChildren(QLabel):
        text = label.text()
        if not label.isVisible() or not text.strip() or label.textFormat() == 1:
            continue  # hidden, empty, or rich text (no such labels in our tabs)
        visible = label.visibleRegion().boundingRect()
        if visible.isEmpty():
            continue  # scrolled out of sight: the controls scroll vertically
        metrics = label.fontMetrics()
        if label.wordWrap():
            needed = label.heightForWidth(label.width())
            if needed > label.height() + 1 or visible.height() < label.height() - 1 \
                    or visible.width() < label.width() - 1:
                cut.append(text)
        else:
            widest = max(metrics.horizontalAdvance(line) for line in text.splitlines())
            room = min(label.contentsRect().width(), visible.width())
            if widest > room + 1:
                cut.append(text)
    from qtpy.QtWidgets import QAbstractButton

    for button in root.findChildren(QAbstractButton):
        text = button.text()
        visible = button.visibleRegion().boundingRect()
        if not button.isVisible() or not text.strip() or visible.isEmpty():
            continue  # hidden, no text, or scrolled out of sight
        # the whole button must fit across (its text, its box or its margins)
        needed = button.sizeHint().width() if button.__class__.__name__ == "QCheckBox" \
            else button.fontMetrics().horizontalAdvance(text) + 8
        if needed > min(button.width(), visible.width()) + 1:
            cut.append(text)
    return cut


@pytest.fixture
def small_file(im_factory):
    rng = np.random.default_rng(0)
    counts = rng.poisson(3.0, size=(4, 4, 48, 48)).astype(np.uint16)
    counts[:, :, 10:20, 10:20] += 30  # a "cell" for Find cells
    return im_factory("layout.im", counts=counts, labels=["12C", "13C", "12C 14N", "12C 15N"])


@pytest.mark.parametrize("size", SIZES, ids=["1089x661", "1280x1024"])
def test_every_tab_readable_after_run(make_napari_viewer, qtbot, small_file, size):
    from qtpy.QtWidgets import QApplication

    from napari_nanosims._napari.viewer import open_viewer

    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(*size)
    open_viewer([str(small_file)], viewer=viewer)
    panel = viewer.window.dock_widgets["NanoSIMS (napari-nanosims)"]
    qtbot.waitUntil(lambda: panel.isVisible(), timeout=10_000)
    canvas = viewer.window._qt_viewer.canvas.native
    if size == (1280, 1024):
        # the dock widgets are laid out by the event loop: wait for the canvas's room
        qtbot.waitUntil(lambda: canvas.width() >= 0.5 * window.width(), timeout=10_000)
    assert window.width() == size[0] and window.height() == size[1]

    # every tab's title in sight: no scroll arrows on the tab bar
    bar = panel.tabs.tabBar()
    print(f"tab bar {bar.sizeHint().width()} px, tabs {panel.tabs.width()} px at {size}")
    assert bar.sizeHint().width() <= panel.tabs.width()

    tabs = {"Clean": panel.clean, "Correct": panel.correct, "Align": panel.align,
            "Ratio": panel.ratio, "ROIs": panel.rois, "Correlate": panel.correlate}
    main_results = {"Clean": panel.clean.count_label, "Correct": panel.correct.summary,
                    "Align": panel.align.summary, "Ratio": panel.ratio.result,
                    "ROIs": panel.rois.summary, "Correlate": panel.correlate.summary}
    # an external image (any reader's layer, in µm) for the Correlate tab
    external = viewer.add_image(np.random.default_rng(1).random((60, 70)), name="EM",
                                scale=(0.05, 0.05), units=("µm", "µm"))
    panel.ratio.expression.value = "13C/12C"
    for title, widget in tabs.items():
        panel.tabs.setCurrentIndex([panel.tabs.tabText(i) for i in
                                    range(panel.tabs.count())].index(title))
        if title == "ROIs":
            widget.find_cells()
            _wait_idle(qtbot, widget)
            qtbot.waitUntil(lambda: panel.rois.statistics is not None, timeout=60_000)
        elif title == "Correlate":  # three pairs, applied: the registration's summary
            widget.image.reset_choices()
            widget.image.value = external
            assert widget.pick_landmarks()
            for fixed, moving in (((0.5, 0.5), (0.4, 0.6)), ((3.0, 0.7), (2.9, 0.8)),
                                  ((1.0, 3.1), (0.9, 3.2))):
                widget.add_pair(fixed, moving)
            assert widget.apply() is not None
        else:
            if title == "Ratio":
                widget._debounce.stop()
            widget.run()
        _wait_idle(qtbot, widget)
        QApplication.processEvents()
        assert _fully_visible(widget.run_button.native), f"{title}: Run is out of sight"
        result = main_results[title]
        assert result.value not in ("", "-"), f"{title}: no result shown"
        assert _fully_visible(result.native), f"{title}: its result is out of sight"
        # Qt gives new word-wrapped text its height in later event-loop turns (seconds
        # on a loaded machine): wait for it, then say which labels stay cut
        with contextlib.suppress(TimeoutError):
            qtbot.waitUntil(lambda w=widget: not _cut_labels(w.native), timeout=15_000)
        cut = _cut_labels(widget.native)
        assert not cut, f"{title} at {size}: labels cut: {cut}"
    # the Header tab: the value column is readable
    panel.tabs.setCurrentIndex(panel.tabs.count() - 1)
    viewer.layers.selection.active = next(layer for layer in viewer.layers
                                          if layer.visible and "nanosims" in layer.metadata)
    QApplication.processEvents()
    tree = panel.header.tree
    assert tree.isVisible()
    assert tree.columnWidth(1) >= 80, "the header's value column is too narrow to read"
    assert not _cut_labels(panel.header), "Header tab: labels cut"
    if size == (1280, 1024):
        assert canvas.width() >= 0.5 * window.width()
