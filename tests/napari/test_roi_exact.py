"""The ROIs tab measures what the library measures on the same steps.

After Clean, Correct (dead time, EM yield) and a sub-pixel Align in the window, the ROI
table, depth profile and exported table must equal :func:`roi_table` and
:func:`depth_profile` on ``open_acquisition -> clean_hot_pixels -> correct_dead_time ->
correct_em_yield -> align_frames(method='subpixel')``: exact counts mapped back into the
unshifted frames, the dispersion test on raw counts. Layers rebuilt from their pixels
alone cannot give that (no translations, no raw counts), so the tabs' results must be
found again from their layers; edited or removed layers must fall back, with a note.
"""

from __future__ import annotations

import gc
import json
import weakref

import numpy as np
import pandas as pd
import pytest

from napari_nanosims import (
    align_frames,
    clean_hot_pixels,
    correct_dead_time,
    correct_em_yield,
    depth_profile,
    open_acquisition,
    roi_table,
)

pytestmark = pytest.mark.gui
napari = pytest.importorskip("napari")

EXPRESSIONS = ["12C15N/12C14N", "100*12C15N/(12C15N+12C14N)"]
COMPARED = ["value", "sigma", "chi2", "dof", "p_value", "mswd", "sigma_inflated",
            "n_pixels", "area_um2", "centroid_y_um", "centroid_x_um"]


@pytest.fixture
def drifting_cells(im_factory) -> str:
    """Write five homogeneous cells (one 15N fraction each) drifting 0.37, -0.29 px per frame.

    Rates per pixel and frame: 12C 14N 40 in cells, 2 outside; 12C 15N 38 * fraction in
    cells, 0.1 outside; SE 30 and 10. Poisson counts, seeded; EM yield 70 % in the header.
    """
    rng = np.random.default_rng(17)
    n_frames, size, radius = 8, 64, 6.5
    drift = np.array([0.37, -0.29])[None, :] * np.arange(n_frames)[:, None]
    centres = np.array([[15, 15], [15, 46], [46, 17], [47, 47], [31, 31]], float)
    fractions = np.array([0.05, 0.08, 0.12, 0.05, 0.20])
    yy, xx = np.indices((size, size)) + 0.5  # pixel centres
    dy = yy[None, None] - (centres[:, 0][None, :, None, None] + drift[:, 0, None, None, None])
    dx = xx[None, None] - (centres[:, 1][None, :, None, None] + drift[:, 1, None, None, None])
    inside = dy ** 2 + dx ** 2 <= radius ** 2  # (frames, cells, height, width)
    in_any = inside.any(axis=1)
    rate_14n = 2.0 + 38.0 * in_any
    rate_15n = 0.1 + (inside * (38.0 * fractions)[None, :, None, None]).sum(axis=1)
    rate_se = 10.0 + 20.0 * in_any
    counts = rng.poisson(np.stack([rate_14n, rate_15n, rate_se], axis=1)).astype(np.uint32)
    return im_factory("drift.im", counts, labels=["12C 14N", "12C 15N", "SE"],
                      masses_amu=[26.003, 27.0, 0.0], raster_um=10.0, dwell_time_us=1000,
                      em_yields_percent=[70.0] * 7)


def _cells(shape) -> np.ndarray:
    """ROI labels on the aligned image: discs of radius 5 around the cells' mean place."""
    centres = np.array([[15, 15], [15, 46], [46, 17], [47, 47], [31, 31]], float)
    centres += np.array([0.37, -0.29]) * 3.5  # the drift of the middle frame
    yy, xx = np.indices(shape) + 0.5
    labels = np.zeros(shape, np.int32)
    for number, (cy, cx) in enumerate(centres, start=1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= 5.0 ** 2] = number
    return labels


def _run(qtbot, widget, timeout=60_000):
    from napari_nanosims._napari.widgets._common import LayerAdder

    assert widget.run() is not None
    qtbot.waitUntil(lambda: widget._runner.worker is None, timeout=timeout)
    qtbot.waitUntil(lambda: not LayerAdder._active, timeout=timeout)


def _sorted(table: pd.DataFrame) -> pd.DataFrame:
    return table.sort_values(["quantity", "roi"]).reset_index(drop=True)


def _assert_same_table(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    got, expected = _sorted(got), _sorted(expected)
    assert list(got.quantity) == list(expected.quantity)
    assert list(got.roi) == list(expected.roi)
    for column in COMPARED:
        np.testing.assert_allclose(got[column].to_numpy(float),
                                   expected[column].to_numpy(float), rtol=1e-9, atol=0,
                                   equal_nan=True, err_msg=column)
    assert list(got.exact_counts) == list(expected.exact_counts)


def test_rois_tab_after_subpixel_alignment_equals_the_library(make_napari_viewer, qtbot,
                                                              drifting_cells, tmp_path,
                                                              monkeypatch):
    from napari_nanosims._napari.widgets import (
        AlignFramesWidget,
        CorrectionsWidget,
        HotPixelWidget,
        RoiWidget,
    )

    shown = []
    monkeypatch.setattr("napari.utils.notifications.show_warning", shown.append)
    path = drifting_cells
    viewer = make_napari_viewer()
    viewer.open(path, plugin="napari-nanosims")
    cleaner, corrector = HotPixelWidget(viewer), CorrectionsWidget(viewer)
    aligner, rois = AlignFramesWidget(viewer), RoiWidget(viewer)
    _run(qtbot, cleaner)
    corrector.dead_time.value, corrector.em_yield.value = True, True
    _run(qtbot, corrector)
    aligner.method.value = "sub-pixel"
    _run(qtbot, aligner)

    # the same steps with the library
    # 8 frames: the Clean tab applies the short-stack rule, 1.5 / frames (a pixel hot in
    # one frame only is cleaned)
    cleaned = clean_hot_pixels(open_acquisition(path), max_repeat_fraction=1.5 / 8)
    corrected = correct_em_yield(correct_dead_time(cleaned))
    aligned = align_frames(corrected, method="subpixel")
    assert np.ptp(aligned.translations[:, 0]) > 2  # a real sub-pixel drift
    labels = _cells(aligned.shape[2:])
    expected = roi_table(aligned, labels, EXPRESSIONS)
    assert expected.exact_counts.all()

    layer = viewer.add_labels(labels, name="cells")
    rois._debounce.stop()
    rois.roi_layer.reset_choices()
    rois.roi_layer.value = layer
    rois.expressions.value = "; ".join(EXPRESSIONS)
    shown.clear()
    _run(qtbot, rois)
    assert rois.statistics is not None
    assert rois.statistics.exact_counts.all()  # False when built from layer pixels
    _assert_same_table(rois.statistics, expected)
    assert not any("approximate" in message for message in shown)
    assert "on the aligned layers" in rois.summary.value
    assert "exact counts" in rois.summary.value
    # the depth profile of the first expression, frame by frame
    profile = depth_profile(aligned, labels, EXPRESSIONS[0])
    pd.testing.assert_frame_equal(rois.profile.reset_index(drop=True), profile,
                                  check_exact=False, rtol=1e-9)
    # the exported table is the measured one
    written = rois.export_table(tmp_path / "table.csv")
    exported = pd.read_csv(written[0])
    assert exported.exact_counts.all()
    _assert_same_table(exported.drop(columns="file"), expected)
    sidecar = json.loads(written[1].read_text())
    assert "aligned" in sidecar["measured"]
    # what was measured: the aligned stacks, every frame (the sums' history goes on with
    # exclude_frames and sum_frames)
    assert [h["step"] for h in sidecar["history"]] == [
        "remove_hot_pixels", "correct_dead_time", "correct_em_yield", "align_frames"]

    # An aligned layer given other pixels: its result no longer applies. The window falls
    # back to the layers' pixels, and says that the errors are approximate.
    from napari_nanosims._napari.widgets._common import RESULTS, acquisition_from_layers
    from napari_nanosims._napari.widgets.rois import SOURCE_KINDS

    result = acquisition_from_layers(viewer, rois.file.value, SOURCE_KINDS)
    assert RESULTS.holds(result) and result.unaligned is not None
    released = weakref.ref(result)
    del result
    edited = viewer.layers["aligned 12C 15N · drift"]
    edited.data = np.array(edited.data)
    shown.clear()
    _run(qtbot, rois)
    assert not rois.statistics.exact_counts.any()
    assert any("approximate" in message for message in shown)
    assert "the result behind them is gone" in rois.summary.value
    assert "approximate" in rois.summary.value

    # Removing the aligned layers: the aligned result is released, and the tab measures
    # the corrected layers, exactly as the library does on the corrected acquisition.
    for old in [layer for layer in viewer.layers
                if layer.metadata.get("nanosims", {}).get("kind") == "aligned"]:
        viewer.layers.remove(old)
    gc.collect()
    assert released() is None  # the registry held it; nothing holds it now
    shown.clear()
    _run(qtbot, rois)
    assert "on the corrected layers" in rois.summary.value
    _assert_same_table(rois.statistics, roi_table(corrected, labels, EXPRESSIONS))
    assert rois.statistics.exact_counts.all()
    assert not any("approximate" in message for message in shown)


def test_remembered_results_are_released_with_their_layers(make_napari_viewer, qtbot,
                                                           drifting_cells):
    """Closing the file's layers leaves nothing of its results in the registry."""
    from napari_nanosims._napari.widgets import CorrectionsWidget, HotPixelWidget
    from napari_nanosims._napari.widgets._common import RESULTS, acquisition_from_layers

    path = drifting_cells
    viewer = make_napari_viewer()
    viewer.open(path, plugin="napari-nanosims")
    cleaner, corrector = HotPixelWidget(viewer), CorrectionsWidget(viewer)
    before = len(RESULTS)
    _run(qtbot, cleaner)
    corrector.em_yield.value = True
    _run(qtbot, corrector)
    acquisition_id = corrector.file.value
    corrected = acquisition_from_layers(viewer, acquisition_id, ("corrected", "cleaned"))
    # the corrected layers give back the tab's result: its raw counts and variance
    assert RESULTS.holds(corrected) and corrected.raw_counts is not None
    assert corrected.variance is not None
    assert len(RESULTS) == before + 2  # cleaned and corrected
    reference = weakref.ref(corrected)
    del corrected
    viewer.layers.clear()
    assert len(RESULTS) == before
    gc.collect()
    assert reference() is None  # nothing else kept the result alive
